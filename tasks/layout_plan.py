"""The pure layer of `setup`: inventory -> the bash program that lays out seed 001's hierarchy on a host, and
the compose facts (external networks) the program reports -> what is still to do. No SSH here.

Every step is idempotent and says whether it created something or found it there, so a second run changes
nothing and says so.
"""
from __future__ import annotations

import json
import posixpath

from dataclasses import dataclass, field

from . import plan
from .inventory import Host, Legacy, System


def apps(system: System) -> list[str]:
    """The system's apps (the stacks whose image the tool pins): each gets data/uploads/<app> and data/logs/<app>."""
    return [s.name for s in system.stacks if s.image]


def hierarchy_steps(host: Host, system: System) -> list[str]:
    """`ensure_dir` calls for seed 001's folders: shared by setup and migrate-layout."""
    base = host.base(system)
    dirs = [(posixpath.join(host.root, "infra", "letsencrypt"), "")]
    dirs += [(posixpath.join(base, d), "") for d in ["data/backups"] + [f"data/{kind}/{app}" for kind in
                                                                            ("uploads", "logs") for app in apps(system)]]
    dirs += [(posixpath.join(base, "state"), "700"), (posixpath.dirname(posixpath.join(base, system.secrets)), "700")]
    return [f"ensure_dir {plan.q(path)} {plan.q(mode)}" for path, mode in dirs]


def setup_program(host: Host, system: System) -> str:
    """Create what is missing of the hierarchy, the .env files from their examples, and report the rest."""
    base = host.base(system)
    body = hierarchy_steps(host, system)
    for s in system.stacks:
        compose = posixpath.join(base, s.compose)
        body.append(f"ensure_env {plan.q(s.name)} {plan.q(compose)}")
    body.append(f"check_token_file {plan.q(posixpath.join(base, system.secrets))}")
    return plan.program([], body, LIBRARY)


def networks_program(names: list[str]) -> str:
    """Create the external Docker networks the compose files declare (seed 000: the forgotten step)."""
    return plan.program([], [f"ensure_network {plan.q(n)}" for n in names], LIBRARY)


def external_networks(configs: list[str]) -> list[str]:
    """Names of the networks declared ``external`` in `docker compose config --format json` outputs."""
    names = []
    for raw in configs:
        try:
            cfg = json.loads(raw)
        except ValueError:
            continue
        for key, net in (cfg.get("networks") or {}).items():
            if isinstance(net, dict) and net.get("external"):
                ext = net["external"]
                name = net.get("name") or (ext.get("name") if isinstance(ext, dict) else None) or key
                if name not in names:
                    names.append(name)
    return names


def copies(host: Host, system: System, legacy: Legacy) -> list[tuple[str, str, str]]:
    """(name, old path, new path) of everything migrate-layout copies, in order (seed 001, steps 1-2)."""
    base = host.base(system)
    out = [("repo", legacy.repo, posixpath.join(base, "repo"))]
    if legacy.letsencrypt:
        out.append(("letsencrypt", legacy.letsencrypt, posixpath.join(host.root, "infra", "letsencrypt")))
    for kind in ("uploads", "logs"):
        if getattr(legacy, kind):
            out.append((kind, getattr(legacy, kind), posixpath.join(base, "data", kind)))
    return out


def _migration_head(host: Host, system: System, legacy: Legacy) -> list[str]:
    base = host.base(system)
    return [plan.q_assign("BASE", base), plan.q_assign("ROOT", host.root), plan.q_assign("STATE", plan.state_dir(host, system)),
            plan.q_assign("OLD_REPO", legacy.repo), plan.q_assign("SYSTEM", system.name), plan.q_assign("ACTION", "migrate-layout"),
            "VOLUMES=(" + " ".join(plan.q(v) for v in legacy.volumes) + ")",
            "COPIES=(" + " ".join(plan.q(f"{n}\t{src}\t{dst}") for n, src, dst in copies(host, system, legacy)) + ")"]


def survey_program(host: Host, system: System, legacy: Legacy) -> str:
    """Read-only: is it migrated, what would be refused, what runs from the old paths and with which images."""
    return plan.program(_migration_head(host, system, legacy), ["survey"], LIBRARY + MIGRATE)


@dataclass
class OldProject:
    """A compose project running from the old repo, as `docker ps` labels describe it."""
    name: str
    workdir: str
    files: str
    images: dict = field(default_factory=dict)   # service -> (image reference, tag@digest or "")


def old_projects(lines: list[str]) -> list[OldProject]:
    """Parse survey's ``old PROJECT WORKDIR FILES SERVICE REF PIN`` lines (tab-separated)."""
    projects: dict[str, OldProject] = {}
    for line in lines:
        name, workdir, files, service, ref, pin = (line.split("\t") + [""] * 6)[:6]
        proj = projects.setdefault(name, OldProject(name, workdir, files))
        proj.images[service] = (ref, pin)
    return list(projects.values())


def resume_facts(data: dict, projects: list[OldProject], pins: dict) -> tuple[list[OldProject], dict]:
    """Old projects and pins from an interrupted run's saved plan, for what no longer runs (its old stacks
    may already be down): what runs now wins."""
    running = {p.name for p in projects}
    saved_projects = [OldProject(*(line.split("\t") + ["", ""])[:3]) for line in data.get("saved-old", [])]
    saved_pins = dict(line.split(" ", 1) for line in data.get("saved-pin", []))
    return projects + [p for p in saved_projects if p.name not in running], {**saved_pins, **pins}


def stack_pins(host: Host, system: System, legacy: Legacy, projects: list[OldProject]) -> dict[str, str]:
    """The tag@digest each app stack ran under the old layout: the new stacks come up with the same images.
    A stack is matched to the old project that ran from the same folder of the repo."""
    pins = {}
    for stack in system.stacks:
        if not stack.image:
            continue
        folder = posixpath.dirname(posixpath.relpath(stack.compose, "repo"))
        repo = plan.image_repo(host, stack)
        for proj in projects:
            if posixpath.relpath(proj.workdir, legacy.repo) == folder:
                for ref, pin in proj.images.values():
                    if ref.startswith(repo + ":") and pin:
                        pins[stack.name] = pin
    return pins


def migrate_program(host: Host, system: System, legacy: Legacy, projects: list[OldProject], pins: dict,
                    intent: plan.Intent) -> str:
    """Copy and verify, stop the old stacks, start the new ones in order on the same images, health-gate,
    check the volumes; on failure the old stacks come back. Markers in state/migration make it resumable."""
    base = host.base(system)
    head = _migration_head(host, system, legacy) + [
        plan.q_assign("RELEASE", intent.release),
        plan.q_assign("TAG", intent.tag), plan.q_assign("BY", intent.by), plan.q_assign("META", plan.json_meta(intent)),
        plan.q_assign("EXPECT_HISTORY", ""),
        "OLD_PROJECTS=(" + " ".join(plan.q(f"{p.name}\t{p.workdir}\t{p.files}") for p in projects) + ")"]
    saved = [f"pin {name} {pin}" for name, pin in pins.items()] + [f"old {p.name}\t{p.workdir}\t{p.files}" for p in projects]
    body = ["begin", "migrated_already", "lock_take", "preflight_or_die",
            f"printf '%s\\n' {' '.join(plan.q(x) for x in saved)} | atomic_write \"$STATE/migration/plan\"", "copy_all"]
    body += hierarchy_steps(host, system)
    moved = [(src, dst) for name, src, dst in copies(host, system, legacy) if name != "repo"]
    for s in system.stacks:  # seed 001 step 4: the .env values that point into the old folders
        env = posixpath.join(posixpath.dirname(posixpath.join(base, s.compose)), ".env")
        body += [f"repoint_env {plan.q(env)} {plan.q(src)} {plan.q(dst)}" for src, dst in moved]
    for s in system.stacks:
        body.append(plan.stack_step(host, system, s))
        if s.name in pins:
            body.append(f"NEW[{s.name}]={plan.q(pins[s.name])}")
    body.append("switch_over")
    return plan.program(head, body, LIBRARY + MIGRATE)


def remove_old_program(host: Host, system: System, legacy: Legacy) -> str:
    """After a completed migration, delete the old copies the migration kept (an explicit operator request)."""
    return plan.program(_migration_head(host, system, legacy), ["remove_old"], LIBRARY + MIGRATE)


LIBRARY = r"""
# ensure_dir PATH MODE: create PATH (and parents, 755 as the seed's mkdir -p) if missing; MODE (if given) is enforced
ensure_dir() {
  if [ -d "$1" ]; then
    if [ -n "$2" ] && [ "$(stat -c %a "$1")" != "$2" ]; then chmod "$2" "$1"; say "data fixed $1 mode $2"
    else say "data exists $1"; fi
  else
    (umask 022; mkdir -p "$1") && { [ -z "$2" ] || chmod "$2" "$1"; } && say "data created $1" || die 1 "cannot create $1"
  fi
}
# ensure_env STACK COMPOSE: .env from .env_example when missing (never overwritten); report its placeholders
ensure_env() {
  local dir; dir=$(dirname "$2")
  [ -f "$2" ] || { say "data missing-compose $1 $2"; return 0; }
  if [ ! -f "$dir/.env" ] && [ -f "$dir/.env_example" ]; then
    cp "$dir/.env_example" "$dir/.env.tmp.$$" && chmod 600 "$dir/.env.tmp.$$" && mv "$dir/.env.tmp.$$" "$dir/.env" \
      && say "data created $dir/.env"
  elif [ -f "$dir/.env" ]; then
    say "data exists $dir/.env"
  fi
  # only the keys leave the host, never the values (they are credentials)
  [ ! -f "$dir/.env" ] || sed -n -E "s/^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=[\"']?(change[-_ ]?me[^\"']*|xxx+|todo|<[^>]*>|your[-_][^\"']*|\\.\\.\\.)?[\"']?[[:space:]]*$/\2/Ip" "$dir/.env" \
    | while read -r key; do say "data placeholder $dir/.env $key"; done
  local cfg
  cfg=$(cd "$dir" && IMAGE_TAG=inspect docker compose -f "$2" config --no-interpolate --format json 2>/dev/null | tr -d '\n')
  [ -z "$cfg" ] || say "data compose $cfg"
}
check_token_file() {
  if [ ! -f "$1" ]; then say "data token missing $1"
  else say "data token $(stat -c %a "$1") $1"; fi
}
ensure_network() {
  if docker network inspect "$1" >/dev/null 2>&1; then say "data exists network $1"
  else docker network create "$1" >/dev/null && say "data created network $1" || die 1 "cannot create network $1"; fi
}
"""

MIGRATE = r"""
# manifest DIR: one hash over every entry's type, mode, owner, size, link target, name and file checksums
manifest() {
  (cd "$1" && { find . -printf '%y %m %U:%G %s %l %p\n' | LC_ALL=C sort
                find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum; }) | sha256sum | cut -d' ' -f1
}
only_empty_dirs() { [ -z "$(find "$1" -mindepth 1 -not -type d -print -quit 2>/dev/null)" ]; }
migrated_already() {
  if [ -f "$STATE/migration/done" ]; then
    RESULT=noop; say "info $SYSTEM is already on the new layout ($(cat "$STATE/migration/done")): nothing to do"
    say "data migrated yes"; exit 0
  fi
}
# preflight: every reason to refuse, as @@data refuse lines (survey reports them, the migration dies on them)
preflight() {
  local entry name src dst need=0 avail
  lock_holder
  if [ "${HOLDING:-0}" != 1 ] && [ -n "$LOCK_INFO" ]; then
    if resumable_lock "$LOCK_INFO"; then say "info resuming an interrupted migration ($LOCK_INFO)"
    else say "data refuse a deploy lock is held: $LOCK_INFO"; fi
  fi
  for entry in "${COPIES[@]}"; do
    IFS=$'\t' read -r name src dst <<< "$entry"
    if [ ! -d "$src" ]; then
      [ -f "$STATE/migration/copied-$name" ] || say "data refuse the old $name folder $src is missing"
      continue
    fi
    need=$(( need + $(du -sb "$src" | cut -f1) ))
    if [ -e "$dst" ] && ! [ -d "$dst" ]; then say "data refuse $dst exists and is not a folder"
    elif [ -d "$dst" ] && ! only_empty_dirs "$dst" && [ "$(manifest "$dst")" != "$(manifest "$src")" ]; then
      say "data refuse $dst already holds other content than $src: move it aside first"
    fi
  done
  local probe=$BASE; while [ ! -d "$probe" ]; do probe=$(dirname "$probe"); done
  avail=$(df -B1 --output=avail "$probe" | tail -n 1 | tr -d ' ')
  say "data space need=$need avail=$avail"
  [ $(( need + need / 10 + 1048576 )) -le "$avail" ] || say "data refuse not enough free disk under $probe: the copies need $need bytes (+10%), $avail are free"
  local v
  for v in "${VOLUMES[@]}"; do
    docker volume inspect "$v" >/dev/null 2>&1 || say "data refuse the named volume $v does not exist"
  done
}
survey() {
  [ ! -f "$STATE/migration/done" ] || { say "data migrated yes"; return 0; }
  preflight
  local c
  for c in $(docker ps -q); do
    docker inspect --format '{{index .Config.Labels "com.docker.compose.project"}}	{{index .Config.Labels "com.docker.compose.project.working_dir"}}	{{index .Config.Labels "com.docker.compose.project.config_files"}}	{{index .Config.Labels "com.docker.compose.service"}}	{{.Config.Image}}	{{.Image}}' "$c"
  done | while IFS=$'\t' read -r project workdir files service ref id; do
    case "$workdir/" in "$OLD_REPO"/*) ;; *) continue ;; esac
    local digest tag pin=""
    digest=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$id" | sed -n "s|^${ref%:*}@||p" | head -n 1)
    tag=${ref##*:}; case $ref in *@*) tag=${ref#*:}; tag=${tag%@*} ;; esac
    [ -n "$digest" ] && [ "$tag" != "$ref" ] && pin="$tag@$digest"
    printf '@@data old %s\t%s\t%s\t%s\t%s\t%s\n' "$project" "$workdir" "$files" "$service" "$ref" "$pin"
  done
  # an interrupted run saved what it found before it changed anything
  [ ! -f "$STATE/migration/plan" ] || sed 's/^/@@data saved-/' "$STATE/migration/plan"
  local v
  for v in "${VOLUMES[@]}"; do say "data volume $v $(docker volume inspect --format '{{.CreatedAt}} {{.Mountpoint}}' "$v" 2>/dev/null)"; done
}
preflight_or_die() {
  local refusals; refusals=$(preflight | sed -n 's/^@@data refuse //p')
  [ -z "$refusals" ] || die 16 "refused before changing anything: $(printf '%s' "$refusals" | paste -sd ';' | sed 's/;/; /g')"
  mkdir -p "$STATE/migration"
}
copy_all() {
  local entry name src dst want
  for entry in "${COPIES[@]}"; do
    IFS=$'\t' read -r name src dst <<< "$entry"
    say "step copy $name: $src -> $dst (verified: names, modes, owners, sizes, links, sha256)"
    if [ -f "$STATE/migration/copied-$name" ] && [ -d "$dst" ]; then say ok; continue; fi
    want=$(manifest "$src")
    if [ -d "$dst" ] && ! only_empty_dirs "$dst"; then
      [ "$(manifest "$dst")" = "$want" ] || die 16 "$dst holds other content than $src"
    else
      rm -rf "$dst.migrating"; mkdir -p "$(dirname "$dst")"
      cp -a "$src" "$dst.migrating" || die 1 "copying $src failed: nothing old was touched"
      [ "$(manifest "$dst.migrating")" = "$want" ] || die 1 "the copy of $src differs from it: nothing old was touched"
      [ ! -d "$dst" ] || find "$dst" -depth -type d -empty -delete
      mv "$dst.migrating" "$dst" || die 1 "cannot move the verified copy to $dst"
    fi
    now | atomic_write "$STATE/migration/copied-$name"
    say ok
  done
}
# repoint_env ENV OLD NEW: values equal to OLD or under OLD/ now point under NEW (reported, key by key)
repoint_env() {
  [ -f "$1" ] || return 0
  local keys; keys=$(grep -E "^[A-Za-z_][A-Za-z0-9_]*=[\"']?$2(/|[\"']?$)" "$1" | cut -d= -f1 | paste -sd ' ')
  [ -n "$keys" ] || return 0
  local mode; mode=$(stat -c %a "$1")
  sed -E "s#^([A-Za-z_][A-Za-z0-9_]*=[\"']?)$2(/|[\"']?$)#\1$3\2#" "$1" | atomic_write "$1"
  chmod "$mode" "$1"
  say "info $1: $keys now point under $3"
}
old_down() {
  local entry project workdir files
  for entry in "${OLD_PROJECTS[@]}"; do
    IFS=$'\t' read -r project workdir files <<< "$entry"
    say "step stop stopping the old stack $project (from $workdir)"
    docker compose -p "$project" down >/dev/null 2>&1 || say "fail could not take $project down"
  done
}
old_up() {
  local entry project workdir files args f
  for entry in "${OLD_PROJECTS[@]}"; do
    IFS=$'\t' read -r project workdir files <<< "$entry"
    say "step restore starting the old stack $project again"
    args=(); IFS=, read -ra f <<< "$files"; for x in "${f[@]}"; do args+=(-f "$x"); done
    (cd "$workdir" && docker compose -p "$project" "${args[@]}" up -d --wait --wait-timeout 120 >/dev/null 2>&1) \
      && say ok || say "fail $project did not come back"
  done
}
remove_old() {
  [ -f "$STATE/migration/done" ] || die 16 "the migration of $SYSTEM is not complete: the old copies stay"
  local entry name src dst
  for entry in "${COPIES[@]}"; do
    IFS=$'\t' read -r name src dst <<< "$entry"
    [ -d "$src" ] || continue
    [ -f "$STATE/migration/copied-$name" ] && [ -d "$dst" ] || die 16 "$name was never copied to $dst: keeping $src"
    say "step remove removing the old $name copy $src"
    rm -rf "$src" && say ok
  done
}
volumes_state() { local v; for v in "${VOLUMES[@]}"; do docker volume inspect --format '{{.Name}} {{.CreatedAt}} {{.Mountpoint}}' "$v"; done; }
switch_over() {
  local vol_before t_down t_up; vol_before=$(volumes_state)
  t_down=$(date +%s%N)
  old_down
  if apply; then
    t_up=$(date +%s%N)
    [ "$(volumes_state)" = "$vol_before" ] || { say "fail named volumes changed"; }
    say "data downtime_ms $(( (t_up - t_down) / 1000000 ))"
    say "data volumes $(volumes_state | tr '\n' ';')"
    record good; write_current
    printf '%s downtime %sms\n' "$(now)" "$(( (t_up - t_down) / 1000000 ))" | atomic_write "$STATE/migration/done"
    RESULT=ok; say ok
    return 0
  fi
  say "info the new stacks failed: taking them down and bringing the old ones back"
  local s; for s in "${STACKS[@]}"; do docker compose -p "${SPEC_PROJECT[$s]}" down >/dev/null 2>&1; done
  old_up
  record failed
  RESULT=rolled-back
  die 13 "the new stacks failed their health gate; the old stacks run again from the old paths, which still hold everything"
}
"""
