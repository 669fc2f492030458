"""The pure layer of `setup`: inventory -> the bash program that lays out seed 001's hierarchy on a host, and
the compose facts (external networks) the program reports -> what is still to do. No SSH here.

Every step is idempotent and says whether it created something or found it there, so a second run changes
nothing and says so.
"""
from __future__ import annotations

import json
import posixpath

from . import plan
from .inventory import Host, System


def apps(system: System) -> list[str]:
    """The system's apps (the stacks whose image the tool pins): each gets data/uploads/<app> and data/logs/<app>."""
    return [s.name for s in system.stacks if s.image]


def setup_program(host: Host, system: System) -> str:
    """Create what is missing of the hierarchy, the .env files from their examples, and report the rest."""
    base = host.base(system)
    dirs = [(posixpath.join(host.root, "infra", "letsencrypt"), "")]
    dirs += [(posixpath.join(base, d), "") for d in ["data/backups"] + [f"data/{kind}/{app}" for kind in
                                                                            ("uploads", "logs") for app in apps(system)]]
    dirs += [(posixpath.join(base, "state"), "700"), (posixpath.dirname(posixpath.join(base, system.secrets)), "700")]
    body = [f"ensure_dir {plan.q(path)} {plan.q(mode)}" for path, mode in dirs]
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
