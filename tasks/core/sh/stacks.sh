# shellcheck shell=bash
# Stacks: their declaration (add_stack: compose file, project, health, the apps each pins) and their .env files:
# the release's pins written in, placeholders left from a template refused.
# Globals: STACKS (declared order), SPEC_* (each stack's settings; SPEC_APPS its "app=VARIABLE" words), PINS
# (images.sh).
# shellcheck disable=SC2034,SC2154  # globals shared across files; TAG (the release's label), RELEASE, STATE, PIN_RE and R_* come from the program's head

# is_compose STACK / is_binary STACK / does STACK up|pin|check: a stack of another kind than compose (add_binary
# in binary.sh, on_swarm in swarm_stacks.sh) names the functions that bring it up, pin it and check it in
# SPEC_DOES, so a program carries them only when it has one.
is_compose() { [ "${SPEC_KIND[$1]:-}" = compose ]; }
is_binary() { [ "${SPEC_KIND[$1]:-}" = binary ]; }
does() { "${SPEC_DOES[$1:$2]}" "$1" "${@:3}"; }

# add_stack NAME COMPOSE ENV PROJECT WAIT HEALTH APPS SCALE: declare a stack (in order) for apply and restore.
# ENV is the .env beside COMPOSE that compose reads and the tool pins releases in (SPEC_COMPOSE[NAME:env]).
# APPS are the images it pins as "app=VARIABLE" words: one variable per image line of its compose file, so no
# image is ever given another one's digest. SCALE: "service=replicas" words, given to every `up`.
add_stack() {
  declare -gA SPEC_KIND SPEC_COMPOSE SPEC_PROJECT SPEC_WAIT SPEC_HEALTH SPEC_APPS SPEC_SCALE SPEC_DOES
  STACKS+=("$1")
  SPEC_KIND[$1]=compose
  SPEC_COMPOSE[$1]=$2; SPEC_COMPOSE[$1:env]=$3; SPEC_PROJECT[$1]=$4; SPEC_WAIT[$1]=$5; SPEC_HEALTH[$1]=$6
  SPEC_APPS[$1]=$7; SPEC_SCALE[$1]=${8:-}
}

# compose STACK ARGS...: `docker compose ARGS` on STACK's project and compose file.
compose() { docker compose -p "${SPEC_PROJECT[$1]}" -f "${SPEC_COMPOSE[$1]}" "${@:2}"; }

# stack_service STACK SERVICE: SERVICE is a service of STACK's compose file (""; its only one), said as
# STACK_SERVICE; refused otherwise (R_REFUSED), naming the services it has (fab logs --service, fab exec).
stack_service() {
  local services
  services=$(compose "$1" config --services 2>&1) \
    || die "$R_FAILED" "cannot read the services of $1: $(printf '%s' "$services" | tail -n 1)"
  STACK_SERVICE=$2
  if [ -z "$2" ]; then
    [ "$(grep -c . <<< "$services")" = 1 ] \
      || die "$R_REFUSED" "stack $1 has several services: name one with --service ($(paste -s -d ' ' <<< "$services"))"
    STACK_SERVICE=$services
  fi
  grep -qxF -- "$STACK_SERVICE" <<< "$services" \
    || die "$R_REFUSED" "stack $1 has no service $2 (it has: $(paste -s -d ' ' <<< "$services"))"
}

# start_first STACK DRAIN BATCH [VOLUME...]: STACK changes start-first (rollout: start-first in hosts.yml):
# new containers beside the old, the old drained out of the proxy for DRAIN seconds before they stop, BATCH
# replicas at a time (0: all); the named VOLUMEs old and new may both write.
start_first() {
  declare -gA SPEC_DRAIN SPEC_BATCH SPEC_SHARED
  SPEC_DRAIN[$1]=$2; SPEC_BATCH[$1]=$3; SPEC_SHARED[$1]=" ${*:4} "
}

# is_start_first STACK: STACK changes start-first.
is_start_first() { declare -gA SPEC_DRAIN; [ -n "${SPEC_DRAIN[$1]:-}" ]; }

# nginx_pool STACK SERVICE FOLDER UPSTREAM=PORT...: STACK's start-first services sit behind nginx (compose
# service SERVICE), which reaches each UPSTREAM through the `upstream UPSTREAM` block the tool writes to
# FOLDER/UPSTREAM.conf (rollout.nginx in hosts.yml); only the UPSTREAMs roll start-first.
nginx_pool() {
  declare -gA SPEC_NGINX SPEC_POOL_DIR SPEC_UPSTREAMS
  SPEC_NGINX[$1]=$2; SPEC_POOL_DIR[$1]=$3; SPEC_UPSTREAMS[$1]=" ${*:4} "
}

# rolls STACK SERVICE: SERVICE of STACK changes start-first (every service of a start-first stack, or only
# nginx's upstreams when nginx is in front).
rolls() {
  declare -gA SPEC_NGINX SPEC_UPSTREAMS
  is_start_first "$1" || return 1
  [ -n "${SPEC_NGINX[$1]:-}" ] || return 0
  [[ ${SPEC_UPSTREAMS[$1]} == *" $2="* ]]
}

# stack_pins STACK new|previous: STACK_PINS becomes "VARIABLE=PIN" for each app of STACK, from this release or
# from the previous good one (state/current); fails, saying why, when one is damaged or a previous one missing.
# An app this release has no pin for (migrate-layout found no running image) keeps its .env line as it is.
stack_pins() {
  local word app pin
  STACK_PINS=()
  for word in ${SPEC_APPS[$1]}; do
    app=${word%%=*}
    if [ "$2" = new ]; then pin=${PINS[$app]:-}; else pin=$(current_pin "$app"); fi
    if [ -z "$pin" ] && [ "$2" = new ]; then continue; fi
    [ -n "$pin" ] || { say "info no $2 pin for $app"; return 1; }
    valid_pin "$pin" || { say "info the $2 pin of $app is damaged: not used"; return 1; }
    STACK_PINS+=("${word#*=}=$pin")
  done
}


# placeholder_keys ENVFILE [VALUES]: the keys whose values are still placeholders (change-me, xxx, <...>,
# your-..., or one of the VALUES lines hosts.yml lists), once each. Only the keys leave the host, never the
# values: they are credentials.
placeholder_keys() {
  { sed -n -E "s/^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=[\"']?(change[-_ ]?me[^\"']*|xxx+|todo|<[^>]*>|your[-_][^\"']*|\\.\\.\\.)?[\"']?[[:space:]]*$/\2/Ip" "$1"
    [ -z "${2:-}" ] || listed_keys "$1" "$2"; } | sort -u
}

# env_keys FILE: the keys an env file sets (KEY=... or export KEY=...), once each, in order.
env_keys() { sed -n -E 's/^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=.*/\2/p' "$1" | awk '!seen[$0]++'; }

# listed_keys ENVFILE VALUES: the keys of ENVFILE whose value is one of the VALUES lines.
listed_keys() {
  local key keys
  mapfile -t keys < <(env_keys "$1")
  for key in "${keys[@]}"; do
    ! grep -qxF -- "$(env_value "$1" "$key")" <<< "$2" || printf '%s\n' "$key"
  done
}

# env_template DIR [NAME]: the example a stack's .env is made from: NAME (hosts.yml's env_template), else
# .env_example (seed 001) or .env.docker (seed 002).
env_template() {
  local name names=(.env_example .env.docker)
  [ -z "${2:-}" ] || names=("$2")
  for name in "${names[@]}"; do
    if [ -f "$1/$name" ]; then printf '%s/%s' "$1" "$name"; return 0; fi
  done
  return 1
}

# check_placeholders [WHAT...]: before anything is pulled or stopped,
# refuse a stack whose .env still holds a placeholder its template gives (seed 001's change-me passwords would
# go into PostgreSQL for good). Keys are named, values never leave the host.
check_placeholders() {
  say "step env checking the stacks' .env files for placeholders left from their templates"
  placeholders_left "$@"
  [ -z "$PLACEHOLDERS_LEFT" ] || die "$R_REFUSED" "still placeholders from the .env templates:$PLACEHOLDERS_LEFT: fill them in on the host (or --allow-placeholders): nothing was changed"
}

# placeholders_left [WHAT...]: PLACEHOLDERS_LEFT, " STACK:KEY" for each key of a stack's .env that still holds
# the placeholder its template gives. The words give a stack's configured template (WHAT template:STACK=NAME)
# and the values hosts.yml lists as placeholders for it (WHAT value:STACK=VALUE).
placeholders_left() {
  local s env example key word
  declare -A named=() listed=()
  PLACEHOLDERS_LEFT=""
  for word in "$@"; do
    case $word in
      template:*) word=${word#template:}; named[${word%%=*}]=${word#*=} ;;
      value:*) word=${word#value:}; listed[${word%%=*}]+=${word#*=}$'\n' ;;
    esac
  done
  for s in "${STACKS[@]}"; do
    ! is_binary "$s" || continue
    env=${SPEC_COMPOSE[$s:env]}
    example=$(env_template "$(dirname "$env")" "${named[$s]:-}") || continue
    [ -f "$env" ] || continue
    while read -r key; do
      [ -n "$(env_value "$example" "$key")" ] && [ "$(env_value "$env" "$key")" = "$(env_value "$example" "$key")" ] \
        && PLACEHOLDERS_LEFT+=" $s:$key"
    done < <(placeholder_keys "$example" "${listed[$s]:-}")
  done
}

# env_lines_but ENVFILE [VARIABLE...]: ENVFILE's lines but the ones that set a VARIABLE or
# COMPOSE_PROJECT_NAME (the lines the tool writes); nothing for a file that does not exist.
env_lines_but() {
  local owned=COMPOSE_PROJECT_NAME var
  [ -f "$1" ] || return 0
  for var in "${@:2}"; do owned+="|$var"; done
  grep -v -E "^($owned)=" "$1" || [ $? = 1 ]
}

# pin_env ENVFILE PROJECT [VARIABLE=PIN...]: the release is kept in the stack's .env, which compose reads on
# every `up`, so it survives a reboot and an operator's manual `docker compose up -d`. Other lines, the owner and
# the mode stay (a new .env is mode 600). COMPOSE_PROJECT_NAME is written only where compose would otherwise
# pick another project (seed 001's ems/container and sms/container would both be "container"), or where the
# line is there already: a service with `env_file: .env` gets every line in its environment, so a line added
# to an adopted PostgreSQL's .env would recreate it.
pin_env() {
  local env=$1 project=$2 own=""
  shift 2
  if [ "$(default_project "$env")" != "$project" ] || grep -q '^COMPOSE_PROJECT_NAME=' "$env" 2>/dev/null; then
    own="COMPOSE_PROJECT_NAME=$project"
  fi
  atomic_write "$env" pinned_env "$env" "$own" "$@"
}

# pinned_env ENVFILE OWN [VARIABLE=PIN...]: pin_env's new .env: ENVFILE's lines but the tool's own, then the
# pins and OWN (fails when ENVFILE cannot be read: the .env then stays as it is).
pinned_env() {
  local line vars=()
  for line in "${@:3}"; do vars+=("${line%%=*}"); done
  env_lines_but "$1" "${vars[@]}" || return 1
  [ $# -le 2 ] || printf '%s\n' "${@:3}"
  [ -z "$2" ] || printf '%s\n' "$2"
}

# default_project FILE: the project compose names a stack after when nothing says otherwise: the name of the
# folder FILE is in, lower case, without what a project name cannot hold.
default_project() {
  local name
  name=$(basename "$(dirname "$1")" | tr '[:upper:]' '[:lower:]' | tr -cd 'a-z0-9_-')
  while [[ $name == [_-]* ]]; do name=${name:1}; done
  printf '%s' "$name"
}

# pin_stack STACK new|previous: write STACK's .env with its apps' pins (none: only the project name); a
# binary stack's live path is switched instead.
# Returns 2 when a pin is missing or damaged (nothing written), 1 when the .env cannot be written.
pin_stack() {
  ! is_binary "$1" || { does "$1" pin "$2"; return; }
  stack_pins "$1" "$2" || return 2
  pin_env "${SPEC_COMPOSE[$1:env]}" "${SPEC_PROJECT[$1]}" "${STACK_PINS[@]}"
}
