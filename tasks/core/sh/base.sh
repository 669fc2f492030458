# shellcheck shell=bash
# The protocol and the building blocks every program uses. Programs talk back in lines:
#   @@step NAME text   a step starts          @@ok / @@fail text   it ends
#   @@info text        worth showing          @@error text         the program gives up (then exits non-zero)
#   @@data KEY {json}  a fact for the tool    @@text KEY line      one line of a file (the release history)
# Exit codes (R_*) and the variables the functions read are assigned in the program's head, by Python.
# shellcheck disable=SC2034,SC2154  # globals shared across files; META, ACTION, STATE and the R_* codes come from the program's head

# say TEXT: one protocol line. It never fails: once the operator's connection is gone, writes fail, and the
# program must still finish (health gate, restore, unlock) rather than stop at its next report.
say() { printf '@@%s\n' "$*" 2>/dev/null || true; }

# die CODE MESSAGE: the program gives up with MESSAGE (an @@error line) and exit CODE (one of the R_*).
die() {
  local code=$1; shift
  SAID_ERROR=1
  say "error $*"
  exit "$code"
}

# run STEP ARGS: one step of the program's body. A step that is not a function of the library, or that fails
# without saying why, stops the program: nothing after it runs (fail closed).
run() {
  declare -F "$1" >/dev/null || die "$R_FAILED" "the program calls '$1', which its library does not define (a bug in the tool)"
  "$@" || die "$R_FAILED" "step $1 failed (exit $?) without saying why"
}

now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

# json_str VALUE: VALUE as a JSON string (other control characters become spaces).
json_str() {
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/\\n}; s=${s//$'\r'/\\r}; s=${s//$'\t'/\\t}
  s=${s//[[:cntrl:]]/ }
  printf '"%s"' "$s"
}

# data KEY [NAME VALUE]...: one @@data line whose value is a JSON object of strings.
data() {
  local key=$1 out="" sep=""; shift
  while [ $# -ge 2 ]; do out+="$sep$(json_str "$1"):$(json_str "$2")"; sep=","; shift 2; done
  printf '@@data %s {%s}\n' "$key" "$out" 2>/dev/null || true
}

# data_json KEY JSON: one @@data line whose value is JSON the shell did not build field by field: a release's
# config (also its record in releases.jsonl) and a backup's manifest.json (programs/reports.py's JSON kinds).
data_json() { printf '@@data %s %s\n' "$1" "$2" 2>/dev/null || true; }

# after_prefix PREFIX: the rest of each line of stdin that starts with PREFIX, compared as text (never as a
# regular expression: a '.' in a name is a dot, not any character).
after_prefix() {
  local line
  while IFS= read -r line; do [[ $line != "$1"* ]] || printf '%s\n' "${line#"$1"}"; done
  return 0
}

# atomic_write FILE COMMAND [ARG...]: FILE becomes what COMMAND prints, through a temporary file in the same
# folder that is flushed and then renamed over FILE, only when COMMAND succeeds and the write did: otherwise FILE
# is as it was and it returns 1. (It runs the command itself: a pipe into it could not see its producer fail,
# and `{ head -c 100 f; false; } | ...` replaced a file with a truncated one.) A FILE that exists keeps its owner
# and mode (an operator's .env owned by opc stays theirs); a new one is the writer's, mode 600.
atomic_write() {
  local file=$1 tmp
  shift
  tmp=$(mktemp "$file.tmp.XXXXXX") || return 1
  if "$@" > "$tmp"; then
    [ ! -e "$file" ] || { chown --reference="$file" "$tmp" 2>/dev/null; chmod --reference="$file" "$tmp"; }
    sync "$tmp" 2>/dev/null
    mv -f "$tmp" "$file" && return 0
  fi
  rm -f "$tmp"
  return 1
}

# env_value FILE KEY: KEY's value in an env file (the last one; quotes and CR removed). A caller keeps it in a
# variable: printf is a builtin, so the value is in no process's arguments.
env_value() {
  local line value=""
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line#"${line%%[![:space:]]*}"}; line=${line#export }
    case $line in "$2="*) value=${line#*=} ;; esac
  done < "$1"
  value=${value%$'\r'}; value=${value#[\"\']}; value=${value%[\"\']}
  printf '%s' "$value"
}

# in_words WORD [WORD...]: the first WORD is one of the others.
in_words() { local word=$1; shift; [[ " $* " == *" $word "* ]]; }

# append_line FILE LINE: FILE rewritten atomically with LINE at its end.
append_line() { atomic_write "$1" file_and_line "$1" "$2"; }

# file_and_line FILE LINE: FILE's content (none when it does not exist) and LINE after it.
file_and_line() { if [ -f "$1" ]; then cat "$1" || return 1; fi; printf '%s\n' "$2"; }

# disk_room NEED PATH: ROOM_AVAIL, the free bytes of the filesystem PATH is on (or would be: its nearest
# existing folder), reported with NEED; fails when NEED bytes, 10% and 1 MiB more would not fit.
disk_room() {
  local probe=$2
  while [ ! -d "$probe" ]; do probe=$(dirname "$probe"); done
  ROOM_AVAIL=$(df -B1 --output=avail "$probe" | tail -n 1 | tr -d ' ')
  data space need "$1" avail "$ROOM_AVAIL"
  [ $(( $1 + $1 / 10 + 1048576 )) -le "$ROOM_AVAIL" ]
}

# docker_room: the free bytes of the filesystem under Docker's root, DOCKER_ROOM (and DOCKER_ROOT), also
# said (@@data docker_room): before and after a prune, what it freed is measured, not added up from image sizes
# (images share layers); before the pulls, what a deploy has room for. Both empty when docker cannot say.
docker_room() {
  DOCKER_ROOM=""
  DOCKER_ROOT=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null) && [ -d "$DOCKER_ROOT" ] || return 0
  DOCKER_ROOM=$(df -B1 --output=avail "$DOCKER_ROOT" | tail -n 1 | tr -d ' ')
  [[ $DOCKER_ROOM =~ ^[0-9]+$ ]] || { DOCKER_ROOM=""; return 0; }
  data docker_room path "$DOCKER_ROOT" bytes "$DOCKER_ROOM"
}

# begin: a program that changes the host starts here: its state folder, and an audit line however it ends.
begin() {
  mkdir -p "$STATE" || die "$R_FAILED" "cannot create $STATE"
  AUDIT=1
}

# need_docker: the docker CLI is on the host; a bare one is refused with what installs it.
need_docker() {
  command -v docker >/dev/null 2>&1 \
    || die "$R_REFUSED" "docker is not installed on this host: 'fab bootstrap' installs Docker Engine and the Compose v2 plugin"
}

# on_exit CODE (the EXIT trap): release a lock this program took (a fleet run frees its own at its end), remove its
# temporary files once the background jobs writing into them (TMP_WRITERS) ended, write the audit
# line, and turn an exit that said nothing (an unbound variable, a killed command) into an @@error. A program
# that fails first runs its EXIT_HOOKS (undo what it changed before its release went live); every program
# then its DONE_HOOKS (a swarm system's state stored in the swarm), before its lock goes.
on_exit() {
  local code=$1
  [ "$code" = 0 ] || [ "$SAID_ERROR" = 1 ] || say "error the remote program stopped unexpectedly (exit $code)"
  local hook
  [ "$code" = 0 ] || for hook in "${EXIT_HOOKS[@]}"; do "$hook"; done
  for hook in "${DONE_HOOKS[@]}"; do "$hook"; done
  [ "$HOLDING" = 1 ] && [ -z "${FLEET:-}" ] && rm -rf "$STATE/lock"
  [ "${#TMP_WRITERS[@]}" = 0 ] || wait "${TMP_WRITERS[@]}" 2>/dev/null   # (background jobs writing into them)
  [ "${#TMP_FILES[@]}" = 0 ] || rm -rf "${TMP_FILES[@]}"
  [ "$AUDIT" = 1 ] || return 0
  printf '{%s,"task":"%s","result":"%s","exit":%d,"seconds":%d,"at":"%s"}\n' \
    "$META" "$ACTION" "$RESULT" "$code" "$(( $(date +%s) - T0 ))" "$(now)" >> "$STATE/audit.jsonl"
}
