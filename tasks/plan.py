"""The pure layer: inventory + intent -> the exact bash program a host runs. No SSH here.

Each task sends one program on the SSH channel's standard input (``bash -s``), so a whole deploy costs one
remote command (about two round trips) instead of one per step. The program is wrapped in ``{ ... }`` so bash
reads all of it before running any of it (a dropped connection cannot cut it in half), and it ignores SIGHUP and
SIGPIPE so that, once started, it finishes and releases its lock even if the operator's laptop goes away.

Every value from the operator or the inventory enters as a ``shlex.quote``d shell variable assignment at the
top, after validation; the library below never interpolates anything else. The program talks back with lines
``@@step NAME text`` (a step starts), ``@@ok`` / ``@@fail text`` (it ends), ``@@info text``, ``@@error text``
(the program gives up) and ``@@data KEY VALUE`` (see remote.Progress); all
other output is docker's own and is kept for the log. The GHCR token is read from the secrets file by bash
builtins and handed to ``docker login --password-stdin`` through a pipe: it is in no argv and no output.
"""
from __future__ import annotations

import json
import posixpath
import re
import shlex
from dataclasses import dataclass

from .errors import BAD_INPUT, ToolError
from .inventory import Host, Stack, System

# OCI distribution spec: a tag is [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
PIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}@sha256:[0-9a-f]{64}$")

# Remote exit codes of the programs below (mapped to the tool's own exit codes in remote.py).
DEFAULT_GITHUB_API = "https://api.github.com"
R_LOCKED, R_LOGIN, R_PULL, R_ROLLED_BACK, R_BROKEN, R_CONFLICT, R_SECRETS = 10, 11, 12, 13, 14, 15, 16


def check_tag(tag: str) -> str:
    """``tag`` if it is a valid OCI tag; a clear error otherwise (before anything remote runs)."""
    if not isinstance(tag, str) or not TAG.fullmatch(tag):
        raise ToolError(f"{tag!r} is not a valid image tag (letters, digits, _ . -, at most 128, "
                        "not starting with . or -)", BAD_INPUT)
    return tag


def image_repo(host: Host, stack: Stack) -> str:
    """The full repository of ``stack``'s image on ``host``: relative names go to the host's registry."""
    first = stack.image.split("/", 1)[0]
    if "/" in stack.image and ("." in first or ":" in first or first == "localhost"):
        return stack.image
    return f"{host.registry.server}/{stack.image}"


@dataclass(frozen=True)
class Intent:
    """What the operator asked for, with who and when, as recorded in history and audit."""
    action: str                 # deploy | rollback
    release: str                # new release id
    tag: str
    by: str
    origin: str
    pins: dict | None = None    # rollback: stack -> tag@digest to restore; deploy: None (pull the tag)
    history_sha: str | None = None  # rollback: the history it was chosen from must not have changed


def q(value) -> str:
    return shlex.quote(str(value))


def q_assign(name: str, value) -> str:
    return f"{name}={q(value)}"


def state_dir(host: Host, system: System) -> str:
    """The tool's own state on the VPS: beside data/, outside repo/, so a re-clone cannot lose it."""
    return posixpath.join(host.base(system), "state")


def project(system: System, stack: Stack) -> str:
    """The compose project of a stack: <system>-<stack> (the seed's ems/container and sms/container folders
    would otherwise both be project "container")."""
    return f"{system.name}-{stack.name}"


def stack_step(host: Host, system: System, stack: Stack) -> str:
    """The ``stack`` call that declares one stack (compose file, project, tag variable, wait, health) to the
    library's apply/restore."""
    compose = posixpath.join(host.base(system), stack.compose)
    return (f"stack {q(stack.name)} {q(compose)} {q(project(system, stack))} {q(stack.tag_var if stack.image else '')} "
            f"{q(stack.wait)} {q(stack.health or '')}")


def selected_stacks(system: System, only: list[str] | None) -> list[Stack]:
    """The system's stacks in their configured order, limited to ``only`` when given (unknown names refused)."""
    if only:
        known = {s.name for s in system.stacks}
        unknown = [s for s in only if s not in known]
        if unknown:
            raise ToolError(f"system {system.name} has no stack {', '.join(unknown)} (stacks: {', '.join(known)})",
                            BAD_INPUT)
    return [s for s in system.stacks if not only or s.name in only]


def github_api(configured: str | None, host: Host) -> str:
    """Where to ask GitHub about the token: the inventory's github_api, else api.github.com for ghcr.io
    (other registries' passwords are not GitHub tokens: empty means do not ask)."""
    return configured or (DEFAULT_GITHUB_API if host.registry.server == "ghcr.io" else "")


def deploy_program(host: Host, system: System, stacks: list[Stack], intent: Intent, api: str = "") -> str:
    """The whole deploy (or rollback) of ``system`` on ``host``: lock, login, pull, record, up in order, health
    gate, restore the previous good release on failure, record, unlock, audit."""
    base = host.base(system)
    head = [
        q_assign("BASE", base), q_assign("STATE", state_dir(host, system)),
        q_assign("SECRETS", posixpath.join(base, system.secrets)),
        q_assign("REGISTRY", host.registry.server), q_assign("REGISTRY_USER", host.registry.username),
        q_assign("ACTION", intent.action), q_assign("RELEASE", intent.release), q_assign("TAG", intent.tag),
        q_assign("BY", intent.by), q_assign("ORIGIN", intent.origin), q_assign("SYSTEM", system.name),
        q_assign("EXPECT_HISTORY", intent.history_sha or ""), q_assign("META", json_meta(intent)),
        q_assign("GITHUB_API", api),
    ]
    body = ["begin", "lock_take", "check_history", "check_secrets", "registry_login"]
    for s in stacks:
        if s.image:
            pin = (intent.pins or {}).get(s.name)
            body.append(f"fetch {q(s.name)} {q(image_repo(host, s))} {q(pin or '')}")
    if host.registry.logout:  # compose cannot pull once logged out: fetch the other stacks' missing images now
        for s in stacks:
            if not s.image:
                body.append(f"fetch_stack {q(s.name)} {q(posixpath.join(base, s.compose))} {q(project(system, s))}")
        body.append("registry_logout")
    body.append("record deploying")
    body += [stack_step(host, system, s) for s in stacks]
    body.append("finish")
    return program(head, body)


def read_state_program(host: Host, system: System) -> str:
    """Read-only: the release history (with its checksum), the current pins and the lock, for rollback,
    releases and status."""
    head = [q_assign("STATE", state_dir(host, system))]
    return program(head, ["show_state"])


def status_program(host: Host, system: System) -> str:
    """Read-only: the running release, the lock, what runs in each stack and the secrets file's age."""
    base = host.base(system)
    head = [q_assign("STATE", state_dir(host, system)), q_assign("SECRETS", posixpath.join(base, system.secrets))]
    body = ["show_current"]
    for s in system.stacks:
        body.append(f"show_stack {q(s.name)} {q(posixpath.join(base, s.compose))} {q(project(system, s))}")
    body.append("show_secrets")
    return program(head, body)


def unlock_program(host: Host, system: System) -> str:
    """Remove the deploy lock deliberately (a stale one: the deploy that held it is gone)."""
    return program([q_assign("STATE", state_dir(host, system))], ["lock_break"])


TOKEN = re.compile(r"[A-Za-z0-9_.-]{8,255}")


def check_token(token: str) -> str:
    """A token that is safe to write as ``export GITHUB_TOKEN=...`` (the seed's update.sh sources that file,
    so a token with shell characters would run as code). The error never repeats the value."""
    if not isinstance(token, str) or not TOKEN.fullmatch(token):
        raise ToolError("the new token is not a token (8-255 letters, digits, _ . -; no spaces, quotes or newlines)",
                        BAD_INPUT)
    return token


def rotate_program(host: Host, system: System, intent: Intent) -> str:
    """Replace the token file only after the new token (read from stdin, after this program) logged in for
    real with a throw-away docker config; the old file and login stay exactly as they were otherwise."""
    base = host.base(system)
    head = [q_assign("STATE", state_dir(host, system)), q_assign("SECRETS", posixpath.join(base, system.secrets)),
            q_assign("REGISTRY", host.registry.server), q_assign("REGISTRY_USER", host.registry.username),
            q_assign("ACTION", "rotate-token"), q_assign("SYSTEM", system.name), q_assign("META", json_meta(intent))]
    return program(head, ["begin", "rotate_token"])


def token_check_program(host: Host, system: System, github_api: str) -> str:
    """Read-only: the token file's mode and age, whether it logs in now (throw-away docker config), and what
    the GitHub API says of it (expiry, scopes), asked from the VPS so the token stays there."""
    base = host.base(system)
    head = [q_assign("STATE", state_dir(host, system)), q_assign("SECRETS", posixpath.join(base, system.secrets)),
            q_assign("REGISTRY", host.registry.server), q_assign("REGISTRY_USER", host.registry.username),
            q_assign("GITHUB_API", github_api)]
    return program(head, ["token_check"])


def json_meta(intent: Intent) -> str:
    """The fixed part of the history and audit records, JSON-encoded on this side (no shell escaping games)."""
    return json.dumps({"release": intent.release, "tag": intent.tag, "action": intent.action,
                       "by": intent.by, "from": intent.origin}, separators=(",", ":"))[1:-1]


def program(head: list[str], body: list[str], extra: str = "") -> str:
    """Assignments, then the library (plus ``extra`` functions), then the calls, all inside one { } block."""
    return "{\n" + LIBRARY + extra + "\n".join(head) + "\n" + "\n".join(body) + "\nexit 0\n}\n"


# The bash library every program starts with. Kept in one place so the dry-run shows exactly what runs.
LIBRARY = r"""set -u -o pipefail
umask 077
trap '' HUP PIPE
T0=$(date +%s)
say() { printf '@@%s\n' "$*"; }
die() { local code=$1; shift; say "error $*"; exit "$code"; }
now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
# write FILE from stdin: temporary file in the same folder, flushed, then renamed over FILE
atomic_write() { local tmp; tmp=$(mktemp "$1.tmp.XXXXXX") && cat > "$tmp" && sync "$tmp" 2>/dev/null; mv -f "$tmp" "$1"; }
append_line() { { [ ! -f "$1" ] || cat "$1"; printf '%s\n' "$2"; } | atomic_write "$1"; }
begin() {
  mkdir -p "$STATE" || die 1 "cannot create $STATE"
  HOLDING=0; RESULT=refused; declare -gA NEW=()
  trap 'finish_trap $?' EXIT
}
finish_trap() {
  local code=$1
  [ "$HOLDING" = 1 ] && rm -rf "$STATE/lock"
  printf '{%s,"task":"%s","result":"%s","exit":%d,"seconds":%d,"at":"%s"}\n' \
    "$META" "$ACTION" "$RESULT" "$code" "$(( $(date +%s) - T0 ))" "$(now)" >> "$STATE/audit.jsonl"
}
# lock_holder: sets LOCK_INFO ("" when free, else the holder's info) and LOCK_STALE=1 when its process is gone
lock_holder() {
  LOCK_STALE=0; LOCK_INFO=
  [ -d "$STATE/lock" ] || return 0
  LOCK_INFO=$(cat "$STATE/lock/info" 2>/dev/null || echo "holder unknown")
  local pid; pid=$(printf '%s' "$LOCK_INFO" | sed -n 's/.*, pid \([0-9]*\))$/\1/p')
  if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then LOCK_STALE=1; fi
}
# a lock left by a migration that died (killed, host rebooted) is taken over by the next migration only
resumable_lock() { [ "$LOCK_STALE" = 1 ] && [ "$ACTION" = migrate-layout ] && case $1 in *"(migrate-layout "*) true ;; *) false ;; esac; }
lock_take() {
  say "step lock taking the deploy lock"
  if ! mkdir "$STATE/lock" 2>/dev/null; then
    lock_holder
    if resumable_lock "$LOCK_INFO"; then
      say "info taking over the lock of an interrupted migration: $LOCK_INFO"
    elif [ "$LOCK_STALE" = 1 ]; then
      die 10 "another deploy holds the lock of $SYSTEM: $LOCK_INFO; its process is gone, so the lock is stale: 'fab unlock --force' releases it"
    else
      die 10 "another deploy holds the lock of $SYSTEM: $LOCK_INFO"
    fi
  fi
  HOLDING=1
  printf '%s since %s (%s %s, release %s, pid %s)\n' "$BY" "$(now)" "$ACTION" "$TAG" "$RELEASE" "$$" | atomic_write "$STATE/lock/info"
}
check_history() {
  [ -z "$EXPECT_HISTORY" ] && return 0
  local sum; sum=$(cat "$STATE/releases.jsonl" 2>/dev/null | sha256sum | cut -d' ' -f1)
  [ "$sum" = "$EXPECT_HISTORY" ] || die 15 "the release history of $SYSTEM changed since it was read; run the command again"
}
check_secrets() {
  say "step secrets checking $SECRETS"
  [ -f "$SECRETS" ] || die 16 "secrets file $SECRETS is missing: create it with 'export GITHUB_TOKEN=...' (chmod 600)"
  local mode dmode; mode=$(stat -c %a "$SECRETS"); dmode=$(stat -c %a "$(dirname "$SECRETS")")
  [ "${mode: -2}" = 00 ] || die 16 "secrets file $SECRETS is readable by others (mode $mode): chmod 600 it"
  [ "${dmode: -2}" = 00 ] || die 16 "secrets folder $(dirname "$SECRETS") is open to others (mode $dmode): chmod 700 it"
}
# The token goes from the file to docker's stdin through bash builtins only: no argv, no output.
read_token() {
  local line; GITHUB_TOKEN=
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      "export GITHUB_TOKEN="*|"GITHUB_TOKEN="*) GITHUB_TOKEN=${line#*GITHUB_TOKEN=} ;;
    esac
  done < "$1"
  GITHUB_TOKEN=${GITHUB_TOKEN%$'\r'}; GITHUB_TOKEN=${GITHUB_TOKEN#[\"\']}; GITHUB_TOKEN=${GITHUB_TOKEN%[\"\']}
  [ -n "$GITHUB_TOKEN" ]
}
registry_login() {
  say "step login logging in to $REGISTRY as $REGISTRY_USER (token from the secrets file)"
  read_token "$SECRETS" || die 16 "secrets file $SECRETS has no 'export GITHUB_TOKEN=...' line"
  local out
  if ! out=$(printf '%s' "$GITHUB_TOKEN" | docker login "$REGISTRY" -u "$REGISTRY_USER" --password-stdin 2>&1); then
    unset GITHUB_TOKEN
    die 11 "docker login to $REGISTRY failed: $(printf '%s' "$out" | tail -n 1)"
  fi
  probe_token_start
  unset GITHUB_TOKEN
  chmod 600 "$HOME/.docker/config.json" 2>/dev/null || true
}
fetch_stack() {
  say "step pull $1: missing images of its compose file"
  local out; out=$(docker compose -p "$3" -f "$2" pull --quiet --policy missing 2>&1) \
    || die 12 "pull of the $1 stack's images failed: $(printf '%s' "$out" | tail -n 1)"
}
registry_logout() {
  say "step logout docker logout $REGISTRY (registry.logout: the stored credentials go)"
  docker logout "$REGISTRY" >/dev/null 2>&1 || true
}
# Ask GitHub about the token while the deploy runs (no added latency); reported at the end.
PROBE=
probe_token_start() {
  [ -n "${GITHUB_API:-}" ] || return 0
  PROBE=$(mktemp)
  (printf 'Authorization: token %s\n' "$GITHUB_TOKEN" | curl -sS -m 8 -o /dev/null -D - -H @- "$GITHUB_API/user" > "$PROBE" 2>/dev/null) &
}
probe_token_report() {
  [ -n "$PROBE" ] || return 0
  wait
  api_headers < "$PROBE"
  rm -f "$PROBE"
}
api_headers() {
  tr -d '\r' | sed -n 's/^[Hh][Tt][Tt][Pp][^ ]* \([0-9]*\).*/@@data api_status \1/p;
    s/^[Gg]it[Hh]ub-[Aa]uthentication-[Tt]oken-[Ee]xpiration: */@@data api_expiry /p; s/^[Xx]-[Oo][Aa]uth-[Ss]copes: */@@data api_scopes /p'
}
# fetch STACK REPO [PIN]: make the image present; a deploy pulls the tag, a rollback the recorded digest.
fetch() {
  local stack=$1 repo=$2 pin=$3 out digest
  if [ -n "$pin" ]; then
    say "step pull $stack: $repo@${pin#*@} (recorded digest of ${pin%@*})"
    if ! docker image inspect "$repo@${pin#*@}" >/dev/null 2>&1; then
      out=$(docker pull "$repo@${pin#*@}" 2>&1) || die 12 "pull of $repo@${pin#*@} failed: $(printf '%s' "$out" | tail -n 1)"
    fi
    NEW[$stack]=$pin
  else
    say "step pull $stack: $repo:$TAG"
    out=$(docker pull "$repo:$TAG" 2>&1) || die 12 "pull of $repo:$TAG failed: $(printf '%s' "$out" | tail -n 1)"
    digest=$(printf '%s\n' "$out" | sed -n 's/^Digest: \(sha256:[0-9a-f]\{64\}\)$/\1/p' | tail -n 1)
    [ -n "$digest" ] || digest=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$repo:$TAG" \
      | sed -n "s|^$repo@\(sha256:[0-9a-f]\{64\}\)\$|\1|p" | head -n 1)
    [ -n "$digest" ] || die 12 "no digest for $repo:$TAG after the pull"
    NEW[$stack]=$TAG@$digest
  fi
  say "data pin $stack ${NEW[$stack]}"
}
images_json() {
  local s sep="" out=""
  for s in "${!NEW[@]}"; do out+="$sep\"$s\":\"${NEW[$s]}\""; sep=","; done
  printf '{%s}' "$out"
}
record() {
  append_line "$STATE/releases.jsonl" "$(printf '{%s,"state":"%s","at":"%s","images":%s}' "$META" "$1" "$(now)" "$(images_json)")"
}
# set_pins ENVFILE VAR VALUE PROJECT: the tag is kept in the stack's .env, which compose reads on every
# `up`, so the pinned release survives a reboot and an operator's manual `docker compose up -d`.
set_pins() {
  local env=$1 var=$2 value=$3 project=$4 mode=600
  [ -f "$env" ] && mode=$(stat -c %a "$env")
  { [ ! -f "$env" ] || grep -v -E "^($var|COMPOSE_PROJECT_NAME)=" "$env"
    [ -z "$var" ] || printf '%s=%s\n' "$var" "$value"
    printf 'COMPOSE_PROJECT_NAME=%s\n' "$project"; } | atomic_write "$env"
  chmod "$mode" "$env"
}
# up STACK COMPOSE PROJECT WAIT HEALTH: bring one stack up and gate on compose health and the HTTP check.
up() {
  local stack=$1 compose=$2 project=$3 wait=$4 health=$5 out i
  out=$(docker compose -p "$project" -f "$compose" up -d --remove-orphans --wait --wait-timeout "$wait" 2>&1)
  local rc=$?
  printf '%s\n' "$out"
  [ $rc = 0 ] || { say "fail $stack: $(printf '%s' "$out" | grep -v '^ *Container\|^ *Network\|^ *Volume' | tail -n 1)"; return 1; }
  [ -z "$health" ] && return 0
  for i in 1 2 3 4 5 6 7 8 9 10; do
    if curl -fsS -o /dev/null --max-time 5 "$health" 2>/dev/null || wget -q -O /dev/null -T 5 "$health" 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  say "fail $stack: $health did not answer 2xx"; return 1
}
STACKS=()
stack() {
  local name=$1 compose=$2 project=$3 var=$4 wait=$5 health=$6
  STACKS+=("$name")
  SPEC_COMPOSE[$name]=$compose; SPEC_PROJECT[$name]=$project; SPEC_VAR[$name]=$var
  SPEC_WAIT[$name]=$wait; SPEC_HEALTH[$name]=$health
}
declare -A SPEC_COMPOSE=() SPEC_PROJECT=() SPEC_VAR=() SPEC_WAIT=() SPEC_HEALTH=()
env_of() { printf '%s/.env' "$(dirname "${SPEC_COMPOSE[$1]}")"; }
# apply: pin and bring up every stack in order; on the first failure stop and return 1.
apply() {
  local s
  for s in "${STACKS[@]}"; do
    say "step up $s: docker compose up --wait (${SPEC_WAIT[$s]}s)${SPEC_HEALTH[$s]:+, then ${SPEC_HEALTH[$s]}}"
    if [ -n "${SPEC_VAR[$s]}" ] && [ -n "${NEW[$s]:-}" ]; then
      set_pins "$(env_of "$s")" "${SPEC_VAR[$s]}" "${NEW[$s]}" "${SPEC_PROJECT[$s]}"
    else
      set_pins "$(env_of "$s")" "" "" "${SPEC_PROJECT[$s]}"
    fi
    up "$s" "${SPEC_COMPOSE[$s]}" "${SPEC_PROJECT[$s]}" "${SPEC_WAIT[$s]}" "${SPEC_HEALTH[$s]}" || return 1
  done
}
# restore: put back the previous good pins (from the state's current file) of every stack we changed.
restore() {
  local s pin ok=0
  [ -f "$STATE/current" ] || { say "info no previous good release to restore"; return 1; }
  for s in "${STACKS[@]}"; do
    [ -n "${SPEC_VAR[$s]}" ] && [ -n "${NEW[$s]:-}" ] || continue
    pin=$(sed -n "s/^pin $s //p" "$STATE/current")
    [ -n "$pin" ] || { say "info no previous good pin for $s"; ok=1; continue; }
    say "step restore $s: back to $pin"
    set_pins "$(env_of "$s")" "${SPEC_VAR[$s]}" "$pin" "${SPEC_PROJECT[$s]}"
    up "$s" "${SPEC_COMPOSE[$s]}" "${SPEC_PROJECT[$s]}" "${SPEC_WAIT[$s]}" "${SPEC_HEALTH[$s]}" || ok=1
  done
  return $ok
}
write_current() {
  local s pin
  { printf 'release %s\ntag %s\n' "$RELEASE" "$TAG"
    [ ! -f "$STATE/current" ] || grep '^pin ' "$STATE/current" | while read -r _ s pin; do
      [ -n "${NEW[$s]:-}" ] || printf 'pin %s %s\n' "$s" "$pin"; done
    for s in "${!NEW[@]}"; do printf 'pin %s %s\n' "$s" "${NEW[$s]}"; done; } | atomic_write "$STATE/current"
}
finish() {
  if apply; then
    record good; write_current; RESULT=ok
    probe_token_report
    say ok
    return 0
  fi
  record failed
  say "info health gate failed: restoring the previous good release"
  if restore; then
    say ok
    local prev; prev=$(sed -n 's/^tag //p' "$STATE/current")
    RESULT=rolled-back
    die 13 "$TAG failed its health gate; the previous good release $prev is back and healthy"
  fi
  RESULT=broken
  die 14 "$TAG failed its health gate and the previous good release could not be restored: look at the host now"
}
show_state() {
  say "data history_sha $(cat "$STATE/releases.jsonl" 2>/dev/null | sha256sum | cut -d' ' -f1)"
  echo "@@history-begin"; cat "$STATE/releases.jsonl" 2>/dev/null; echo "@@history-end"
  show_current
}
# show_current: the running release and the lock (what status needs, without the whole history)
show_current() {
  [ -f "$STATE/current" ] && sed 's/^/@@current /' "$STATE/current"
  [ -d "$STATE/lock" ] && say "data lock $(cat "$STATE/lock/info" 2>/dev/null || echo 'holder unknown')"
  return 0
}
show_stack() {
  local out
  out=$(docker compose -p "$3" -f "$2" ps -a --format json 2>/dev/null | tr -d '\n')
  say "data stack $1 ${out:-[]}"
}
show_secrets() {
  if [ -f "$SECRETS" ]; then say "data secrets $(stat -c '%a %Y' "$SECRETS")"; else say "data secrets missing"; fi
  [ ! -f "$STATE/token-rotated" ] || say "data rotated $(cat "$STATE/token-rotated")"
}
# try_login CONFIG_DIR: docker login with the token read by read_token, into a throw-away config (the real login is untouched)
try_login() {
  local out
  out=$(printf '%s' "$GITHUB_TOKEN" | DOCKER_CONFIG=$1 docker login "$REGISTRY" -u "$REGISTRY_USER" --password-stdin 2>&1) \
    || { LOGIN_ERROR=$(printf '%s' "$out" | tail -n 1); return 1; }
}
rotate_token() {
  local dir tmp cfg; dir=$(dirname "$SECRETS")
  TMP_FILES=()
  trap 'rm -rf "${TMP_FILES[@]}"; finish_trap $?' EXIT
  say "step receive reading the new token from the SSH channel"
  IFS= read -r GITHUB_TOKEN || die 16 "no token arrived on standard input: nothing was changed"
  [ -n "$GITHUB_TOKEN" ] || die 16 "an empty token arrived: nothing was changed"
  if [ -d "$dir" ]; then
    local dmode; dmode=$(stat -c %a "$dir")
    [ "${dmode: -2}" = 00 ] || die 16 "secrets folder $dir is open to others (mode $dmode): chmod 700 it"
  else
    mkdir -p -m 700 "$dir" || die 16 "cannot create $dir"
  fi
  say "step write writing it to a temporary file (umask 077) beside $SECRETS"
  tmp=$(mktemp "$dir/.github.new.XXXXXX") && TMP_FILES+=("$tmp") || die 1 "cannot create a temporary file in $dir"
  printf 'export GITHUB_TOKEN=%s\n' "$GITHUB_TOKEN" > "$tmp" && sync "$tmp" 2>/dev/null
  say "step prove docker login to $REGISTRY with the new token (throw-away docker config)"
  cfg=$(mktemp -d) && TMP_FILES+=("$cfg")
  try_login "$cfg" || { unset GITHUB_TOKEN; die 11 "the new token was refused by $REGISTRY ($LOGIN_ERROR): the old token file and login are unchanged"; }
  say "step replace renaming it over $SECRETS (mode 600)"
  chmod 600 "$tmp" && mv -f "$tmp" "$SECRETS" || die 1 "could not rename the new token file into place"
  unset GITHUB_TOKEN
  now | atomic_write "$STATE/token-rotated"
  registry_login
  RESULT=ok
  say ok
}
token_check() {
  if [ ! -f "$SECRETS" ]; then say "data file missing"; return 0; fi
  say "data file $(stat -c '%a %Y' "$SECRETS") $(stat -c %a "$(dirname "$SECRETS")")"
  [ -f "$STATE/token-rotated" ] && say "data rotated $(cat "$STATE/token-rotated")"
  read_token "$SECRETS" || { say "data login no-token-line"; return 0; }
  local cfg; cfg=$(mktemp -d)
  if try_login "$cfg"; then say "data login ok"; else say "data login failed $LOGIN_ERROR"; fi
  rm -rf "$cfg"
  local headers
  headers=$(printf 'Authorization: token %s\n' "$GITHUB_TOKEN" | curl -sS -m 10 -o /dev/null -D - -H @- "$GITHUB_API/user" 2>/dev/null) \
    || { unset GITHUB_TOKEN; say "data api unreachable"; return 0; }
  unset GITHUB_TOKEN
  printf '%s\n' "$headers" | api_headers
}
lock_break() {
  if [ -d "$STATE/lock" ]; then
    say "info removing the lock held by $(cat "$STATE/lock/info" 2>/dev/null || echo 'holder unknown')"
    rm -rf "$STATE/lock"
  else
    say "info no lock was held"
  fi
}
"""
