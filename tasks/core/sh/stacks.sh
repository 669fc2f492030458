# shellcheck shell=bash
# Images and stacks: pull by tag or by recorded digest, pin the release in each stack's .env, bring the stacks
# up in order behind the health gate, and put the previous good release back when the gate fails.
# Globals: PINS (app -> tag@digest of this release; an app is one image the tool pins, named in hosts.yml),
# STACKS (declared order), SPEC_* (each stack's settings; SPEC_APPS its "app=VARIABLE" words).
# shellcheck disable=SC2034,SC2154  # globals shared across files; TAG (the release's label), RELEASE, STATE, PIN_RE and R_* come from the program's head

# valid_pin VALUE: VALUE is tag@sha256:digest (PIN_RE, the tool's own grammar, comes with the program). Every
# pin that reaches PINS or a .env is checked: one read back from a file may be damaged.
valid_pin() { [[ $1 =~ ^${PIN_RE}$ ]]; }

# use_pin APP TAG@DIGEST: the image this release runs for APP.
use_pin() {
  valid_pin "$2" || die "$R_FAILED" "refusing a damaged pin for $1: $2"
  declare -gA PINS
  PINS[$1]=$2
  data pin app "$1" pin "$2"
}

# digest_of_pull REPO TAG: the digest a `docker pull` reported (stdin), else the one the image store knows.
digest_of_pull() {
  local digest
  digest=$(sed -n 's/^Digest: \(sha256:[0-9a-f]\{64\}\)$/\1/p' | tail -n 1)
  [ -n "$digest" ] || digest=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$1:$2" \
    | sed -n "s|^$1@\(sha256:[0-9a-f]\{64\}\)\$|\1|p" | head -n 1)
  [ -n "$digest" ] && printf '%s\n' "$digest"
}

# pull_image REPO TAG PIN: make an image present and print the pin it runs as. With a TAG, pull it (a
# re-pushed tag is picked up) and pin the digest it has now; with a PIN (a rollback, or an app this deploy
# keeps), the recorded digest. Fails with docker's last line on stderr.
pull_image() {
  local repo=$1 tag=$2 pin=$3 out digest
  if [ -n "$pin" ]; then
    docker image inspect "$repo@${pin#*@}" >/dev/null 2>&1 && { printf '%s\n' "$pin"; return 0; }
    out=$(docker pull "$repo@${pin#*@}" 2>&1) || { printf 'pull of %s failed: %s\n' "$repo@${pin#*@}" "$(printf '%s' "$out" | tail -n 1)" >&2; return 1; }
    printf '%s\n' "$pin"
  else
    out=$(docker pull "$repo:$tag" 2>&1) || { printf 'pull of %s failed: %s\n' "$repo:$tag" "$(printf '%s' "$out" | tail -n 1)" >&2; return 1; }
    digest=$(printf '%s\n' "$out" | digest_of_pull "$repo" "$tag") || { printf 'no digest for %s after the pull\n' "$repo:$tag" >&2; return 1; }
    printf '%s@%s\n' "$tag" "$digest"
  fi
}

# add_image APP REPO TAG PIN: an image this release runs (see pull_image), in WANTED; fetched by fetch_images.
add_image() { WANTED+=("$1" "$2" "$3" "$4"); }

# pull_line I REPO TAG PIN: pull_image as one line on stdout, "I ok PIN" or "I failed MESSAGE" (one short write
# to a pipe, so lines of pulls running at once never mix).
pull_line() {
  local out
  if out=$(pull_image "$2" "$3" "$4" 2>&1); then printf '%s ok %s\n' "$1" "${out##*$'\n'}"
  else out=${out##*$'\n'}; printf '%s failed %.300s\n' "$1" "${out:-the pull of $2 failed}"; fi
}

# fetch_images: every added image made present at once (docker pulls in parallel), then pinned in order. The
# pulls answer through a pipe, not files: a full disk under STATE is no reason to refuse an image. Fail-closed:
# an image without its "ok" line (its pull killed) is a failed pull; the first failed one in order stops the
# program, and nothing that runs has changed yet.
fetch_images() {
  local i n what="" pin failed="" status rest
  local -a got=() why=()
  [ -n "${WANTED[*]:-}" ] || return 0
  for (( i = 0; i < ${#WANTED[@]}; i += 4 )); do
    pin=${WANTED[i+3]}
    what+="${what:+, }${WANTED[i]}: ${WANTED[i+1]}"
    if [ -n "$pin" ]; then what+="@${pin#*@} (recorded digest of ${pin%@*})"; else what+=":${WANTED[i+2]}"; fi
  done
  say "step pull $what"
  while read -r n status rest; do
    if [ "$status" = ok ]; then got[n]=$rest; else why[n]=$rest; fi
  done < <(for (( i = 0; i < ${#WANTED[@]}; i += 4 )); do
             pull_line "$((i / 4))" "${WANTED[i+1]}" "${WANTED[i+2]}" "${WANTED[i+3]}" &
           done; wait)
  for (( i = 0; i < ${#WANTED[@]}; i += 4 )); do
    [ -n "${got[i/4]:-}" ] || die "$R_PULL" "${why[i/4]:-the pull of ${WANTED[i+1]} failed}"
  done
  for (( i = 0; i < ${#WANTED[@]}; i += 4 )); do use_pin "${WANTED[i]}" "${got[i/4]}"; done
}

# fetch_stack STACK COMPOSE PROJECT: pull the missing images of a stack the tool does not pin (before a logout).
fetch_stack() {
  say "step pull $1: missing images of its compose file"
  local out; out=$(docker compose -p "$3" -f "$2" pull --quiet --policy missing 2>&1) \
    || die "$R_PULL" "pull of the $1 stack's images failed: $(printf '%s' "$out" | tail -n 1)"
}

# is_binary STACK / does STACK up|pin|check: a stack of another kind (add_binary, in binary.sh) names the
# functions that bring it up, pin it and check it in SPEC_DOES, so a program carries them only when it has one.
is_binary() { [ "${SPEC_KIND[$1]:-}" = binary ]; }
does() { "${SPEC_DOES[$1:$2]}" "$1" "${@:3}"; }

# add_stack NAME COMPOSE PROJECT WAIT HEALTH APPS SCALE: declare a stack (in order) for apply and restore. APPS
# are the images it pins as "app=VARIABLE" words: one variable per image line of its compose file, so no image
# is ever given another one's digest. SCALE: "service=replicas" words, given to every `up`.
add_stack() {
  declare -gA SPEC_KIND SPEC_COMPOSE SPEC_PROJECT SPEC_WAIT SPEC_HEALTH SPEC_APPS SPEC_SCALE SPEC_DOES
  STACKS+=("$1")
  SPEC_KIND[$1]=compose
  SPEC_COMPOSE[$1]=$2; SPEC_PROJECT[$1]=$3; SPEC_WAIT[$1]=$4; SPEC_HEALTH[$1]=$5; SPEC_APPS[$1]=$6
  SPEC_SCALE[$1]=${7:-}
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

env_of() { printf '%s/.env' "$(dirname "${SPEC_COMPOSE[$1]}")"; }

# placeholder_keys ENVFILE [VALUES]: the keys whose values are still placeholders (change-me, xxx, <...>,
# your-..., or one of the VALUES lines hosts.yml lists), once each. Only the keys leave the host, never the
# values: they are credentials.
placeholder_keys() {
  { sed -n -E "s/^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=[\"']?(change[-_ ]?me[^\"']*|xxx+|todo|<[^>]*>|your[-_][^\"']*|\\.\\.\\.)?[\"']?[[:space:]]*$/\2/Ip" "$1"
    [ -z "${2:-}" ] || listed_keys "$1" "$2"; } | sort -u
}

# listed_keys ENVFILE VALUES: the keys of ENVFILE whose value is one of the VALUES lines.
listed_keys() {
  local key keys
  mapfile -t keys < <(sed -n -E 's/^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=.*/\2/p' "$1")
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

# check_placeholders [template:STACK=NAME | value:STACK=VALUE ...]: before anything is pulled or stopped,
# refuse a stack whose .env still holds a placeholder its template gives (seed 001's change-me passwords would
# go into PostgreSQL for good). Keys are named, values never leave the host. The words give a stack's
# configured template and the values hosts.yml lists as placeholders for it.
check_placeholders() {
  say "step env checking the stacks' .env files for placeholders left from their templates"
  local s env example key found="" word
  declare -A named=() listed=()
  for word in "$@"; do
    case $word in
      template:*) word=${word#template:}; named[${word%%=*}]=${word#*=} ;;
      value:*) word=${word#value:}; listed[${word%%=*}]+=${word#*=}$'\n' ;;
    esac
  done
  for s in "${STACKS[@]}"; do
    ! is_binary "$s" || continue
    env=$(env_of "$s")
    example=$(env_template "$(dirname "$env")" "${named[$s]:-}") || continue
    [ -f "$env" ] || continue
    while read -r key; do
      [ -n "$(env_value "$example" "$key")" ] && [ "$(env_value "$env" "$key")" = "$(env_value "$example" "$key")" ] \
        && found+=" $s:$key"
    done < <(placeholder_keys "$example" "${listed[$s]:-}")
  done
  [ -z "$found" ] || die "$R_REFUSED" "still placeholders from the .env templates:$found: fill them in on the host (or --allow-placeholders): nothing was changed"
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
# every `up`, so it survives a reboot and an operator's manual `docker compose up -d`. Other lines and the mode
# stay.
pin_env() {
  local env=$1 project=$2 mode=600 line vars=()
  shift 2
  for line in "$@"; do vars+=("${line%%=*}"); done
  [ -f "$env" ] && mode=$(stat -c %a "$env")
  { env_lines_but "$env" "${vars[@]}"
    [ $# = 0 ] || printf '%s\n' "$@"
    printf 'COMPOSE_PROJECT_NAME=%s\n' "$project"; } | atomic_write "$env" || return 1
  chmod "$mode" "$env"
}

# pin_stack STACK new|previous: write STACK's .env with its apps' pins (none: only the project name); a
# binary stack's live path is switched instead.
# Returns 2 when a pin is missing or damaged (nothing written), 1 when the .env cannot be written.
pin_stack() {
  ! is_binary "$1" || { does "$1" pin "$2"; return; }
  stack_pins "$1" "$2" || return 2
  pin_env "$(env_of "$1")" "${SPEC_PROJECT[$1]}" "${STACK_PINS[@]}"
}

# compose_up STACK: `docker compose up -d` of STACK with its replicas; compose's output on stdout.
compose_up() {
  local scale=() word
  for word in ${SPEC_SCALE[$1]:-}; do scale+=(--scale "$word"); done
  docker compose -p "${SPEC_PROJECT[$1]}" -f "${SPEC_COMPOSE[$1]}" up -d --remove-orphans "${scale[@]}" 2>&1
}

# project_containers PROJECT: the ids of the containers compose runs for PROJECT (not `compose run` ones).
project_containers() {
  docker ps -aq --filter "label=com.docker.compose.project=$1" --filter label=com.docker.compose.oneoff=False
}

# wait_healthy STACK: what `up --wait` waits for, looked at every 0.1 s (compose's own polling adds ~0.4 s to
# every changed stack): every container of the project running, and healthy where it has a healthcheck, within
# the stack's wait: seconds. One that turns unhealthy, restarts or exits fails at once (one that exited 0 and is
# never restarted finished its job); its state is said on stdout. A dockerd that stops answering is waited for.
wait_healthy() {
  local project=${SPEC_PROJECT[$1]} deadline ids name st health code policy pending
  deadline=$(( $(date +%s) + ${SPEC_WAIT[$1]} ))
  while :; do
    if ! ids=$(project_containers "$project" 2>&1); then
      daemon_back 60 && continue
      printf 'docker does not answer: %s\n' "$ids"; return 1
    fi
    pending=""
    # shellcheck disable=SC2086  # one container id per word
    while read -r name st health code policy; do
      case $st/$health in
        running/healthy|running/none) ;;
        running/unhealthy) printf 'container %s is unhealthy\n' "${name#/}"; return 1 ;;
        exited/*|dead/*)
          [ "$code" = 0 ] && [ "${policy:-no}" = no ] && continue
          printf 'container %s exited (%s)\n' "${name#/}" "$code"; return 1 ;;
        restarting/*) printf 'container %s exited (%s) and is restarting\n' "${name#/}" "$code"; return 1 ;;
        *) pending=${name#/} ;;
      esac
    done < <([ -z "$ids" ] || docker inspect --format '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.State.ExitCode}} {{.HostConfig.RestartPolicy.Name}}' $ids 2>/dev/null)
    [ -n "$pending" ] || return 0
    if [ "$(date +%s)" -ge "$deadline" ]; then
      printf 'container %s is not healthy after %ss\n' "$pending" "${SPEC_WAIT[$1]}"; return 1
    fi
    sleep 0.1
  done
}

# stop_stack STACK: stop what a stack runs, keeping it as it is (`up` starts it again): its containers, or a
# binary's unit.
stop_stack() {
  if is_binary "$1"; then systemctl stop "${BIN[$1:unit]}" 2>&1
  else docker compose -p "${SPEC_PROJECT[$1]}" -f "${SPEC_COMPOSE[$1]}" stop 2>&1; fi
}

# daemon_back SECONDS: wait for dockerd to answer again (restarted by an upgrade or a crash).
daemon_back() {
  local i
  for (( i = 0; i < $1; i++ )); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}

# up_text STACK: what `up` of STACK does, for its step line.
up_text() {
  if is_binary "$1"; then printf '%s: systemctl restart %s (%ss)' "$1" "${BIN[$1:unit]}" "${SPEC_WAIT[$1]}"
  else printf '%s: docker compose up, healthy within %ss' "$1" "${SPEC_WAIT[$1]}"; fi
  printf '%s' "${SPEC_HEALTH[$1]:+, then ${SPEC_HEALTH[$1]}}"
}

# health_ok URL: URL answers 2xx now (curl, or busybox's wget where there is no curl).
health_ok() { curl -fsS -o /dev/null --max-time 5 "$1" 2>/dev/null || wget -q -O /dev/null -T 5 "$1" 2>/dev/null; }

# unchanged STACK: `compose up` would change nothing in STACK, so it is not run (the health URL is still
# checked): each service's configuration hash (compose's own, the label it gives its containers) and image ID
# are those of its running containers, each healthy where it has a healthcheck, as many as its replicas
# (scale:, else one), and nothing else runs in the project. Any doubt (a docker call failing, a container
# starting or stopped) says no.
unchanged() {
  local project=${SPEC_PROJECT[$1]} want ids have svc hash run health image ref word
  declare -A count=() wanted=() id=()
  want=$(docker compose -p "$project" -f "${SPEC_COMPOSE[$1]}" config --hash '*' 2>/dev/null) && [ -n "$want" ] || return 1
  ids=$(project_containers "$project" 2>/dev/null) && [ -n "$ids" ] || return 1
  # shellcheck disable=SC2086  # one container id per word
  have=$(docker inspect --format '{{index .Config.Labels "com.docker.compose.service"}} {{index .Config.Labels "com.docker.compose.config-hash"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{index .Config.Labels "com.docker.compose.image"}} {{.Config.Image}}' $ids 2>/dev/null) \
    || return 1
  while read -r svc hash; do wanted[$svc]=$hash; count[$svc]=0; done <<< "$want"
  while read -r svc hash run health image ref; do
    [ -n "$svc" ] && [ "${wanted[$svc]:-}" = "$hash" ] && [ "$run" = running ] || return 1
    [ "$health" = healthy ] || [ "$health" = none ] || return 1
    [ -n "${id[$ref]:-}" ] || id[$ref]=$(docker image inspect --format '{{.Id}}' "$ref" 2>/dev/null) || return 1
    [ "$image" = "${id[$ref]}" ] || return 1
    count[$svc]=$(( count[$svc] + 1 ))
  done <<< "$have"
  for svc in "${!wanted[@]}"; do
    local n=1
    for word in ${SPEC_SCALE[$1]:-}; do [ "${word%%=*}" != "$svc" ] || n=${word#*=}; done
    [ "${count[$svc]}" = "$n" ] || return 1
  done
}

# pins_moved STACK: this release runs another image for one of STACK's apps than the previous good release:
# compose will recreate it, no need to ask (the question costs a compose call).
pins_moved() {
  local word
  declare -gA PINS   # (a program that pins nothing: empty)
  for word in ${SPEC_APPS[$1]}; do
    [ "${PINS[${word%%=*}]:-}" = "$(current_pin "${word%%=*}")" ] || return 0
  done
  return 1
}

# up STACK: bring one stack up (a binary: its unit restarted, see binary.sh) and gate on compose's health and then its HTTP check. A dockerd that stopped
# answering is waited for (60 s) and the stack tried once more. When compose itself fails (a conflict, a
# missing image or network: not the containers' health), COMPOSE_FAILED says which stack and why.
up() {
  local stack=$1 out rc why
  ! is_binary "$stack" || { does "$stack" up; return; }
  if ! pins_moved "$stack" && unchanged "$stack"; then
    say "info $stack: as it runs (configuration, images, healthy containers): not brought up again"
    health_gate "$stack"
    return
  fi
  out=$(compose_up "$stack"); rc=$?
  if [ "$rc" != 0 ] && [[ $out == *"Cannot connect to the Docker daemon"* ]]; then
    say "info dockerd is not answering: waiting for it (60 s), then $stack once more"
    if daemon_back 60; then out=$(compose_up "$stack"); rc=$?; fi
  fi
  if [ "$rc" = 0 ]; then
    out+=$'\n'$(wait_healthy "$stack") || rc=$?
  fi
  printf '%s\n' "$out"
  if [ "$rc" != 0 ]; then
    why=$(printf '%s' "$out" | grep -v '^ *Container\|^ *Network\|^ *Volume' | tail -n 1)
    say "fail $stack: $why"
    case $out in
      *unhealthy*|*"exited ("*|*"exited with code"*|*"is not running"*|*"dependency failed"*|*"is not healthy after"*) ;;
      *) COMPOSE_FAILED="$stack: $why"; say "info compose itself failed ($COMPOSE_FAILED), not a health check" ;;
    esac
    return 1
  fi
  health_gate "$stack"
}

# health_gate STACK: the stack's health URL (if it has one) answers 2xx within 10 tries a second apart.
health_gate() {
  local health=${SPEC_HEALTH[$1]} i
  [ -z "$health" ] && return 0
  for i in 1 2 3 4 5 6 7 8 9 10; do
    health_ok "$health" && return 0
    [ "$i" = 10 ] || sleep 1
  done
  say "fail $1: $health did not answer 2xx"
  return 1
}

# together STACK...: these stacks do not depend on each other (hosts.yml's together:): apply brings them up at
# once. They are consecutive in STACKS.
together() {
  declare -gA WAVE
  local s
  for s in "$@"; do WAVE[$s]=$1; done
}

# apply: pin and bring up every stack in order (a together: wave at once); on the first failure stop and return
# 1. SWITCHED lists the stacks whose .env it changed (a stack whose .env could not be written still runs what
# it ran); FAILED_UP the stack whose `up` failed.
apply() {
  local i=0 wave s
  declare -gA WAVE   # (empty unless together declared some)
  SWITCHED=() FAILED_UP=""
  while [ "$i" -lt "${#STACKS[@]}" ]; do
    wave=("${STACKS[i]}"); i=$((i + 1))
    while [ "$i" -lt "${#STACKS[@]}" ] && [ -n "${WAVE[${wave[0]}]:-}" ] \
        && [ "${WAVE[${STACKS[i]}]:-}" = "${WAVE[${wave[0]}]}" ]; do
      wave+=("${STACKS[i]}"); i=$((i + 1))
    done
    if [ "${#wave[@]}" = 1 ]; then say "step up $(up_text "${wave[0]}")"
    else say "step up ${wave[*]} at once"; fi
    for s in "${wave[@]}"; do switch_stack "$s" || return 1; done
    if [ "${#wave[@]}" = 1 ]; then up "${wave[0]}" || { FAILED_UP=${wave[0]}; return 1; }
    else up_all "${wave[@]}" || return 1; fi
  done
}

# switch_stack STACK: pin STACK's release in its .env (or switch a binary's live path), saying why not.
switch_stack() {
  pin_stack "$1" new
  case $? in
    0) SWITCHED+=("$1") ;;
    1) say "fail $1: cannot write $(env_of "$1") (disk full?): it still runs what it ran"; return 1 ;;
    *) say "fail $1: a damaged pin: it still runs what it ran"; return 1 ;;
  esac
}

# up_all STACK...: `up` of each STACK at once, each one's output kept apart and shown in order once all ended;
# FAILED_UP (and COMPOSE_FAILED) name the first that failed.
up_all() {
  local dir s pids=() failed=0
  dir=$(mktemp -d "$STATE/up.XXXXXX") || { say "fail cannot create a folder in $STATE"; return 1; }
  TMP_FILES+=("$dir")
  for s in "$@"; do
    ( COMPOSE_FAILED=""; up "$s" > "$dir/$s"; rc=$?; printf '%s' "$COMPOSE_FAILED" > "$dir/$s.why"; exit "$rc" ) &
    pids+=("$!")
  done
  for s in "$@"; do
    wait "${pids[0]}" || { [ -n "$FAILED_UP" ] || { FAILED_UP=$s; COMPOSE_FAILED=$(cat "$dir/$s.why"); }; failed=1; }
    pids=("${pids[@]:1}")
    cat "$dir/$s"
  done
  return "$failed"
}

# restore: put back the previous good pins (from the state's current file) of every stack apply switched, and
# repo/ on its previous commit if this release moved it. A
# stack without a pin has nothing to go back to: the one that failed is brought up again as it was (if that
# fails too, the previous release is not back, and nobody is told it is).
restore() {
  local s ok=0 rc
  [ -f "$STATE/current" ] || { say "info no previous good release to restore"; return 1; }
  undo_checkout || ok=1
  for s in "${SWITCHED[@]}"; do
    if [ -z "${SPEC_APPS[$s]}" ]; then
      [ "$s" != "$FAILED_UP" ] || { say "step restore $s: up again as it was"; up "$s" || ok=1; }
      continue
    fi
    say "step restore $s: back to the previous good release's pins"
    pin_stack "$s" previous; rc=$?
    [ "$rc" != 1 ] || say "fail cannot write $(env_of "$s")"
    if [ "$rc" != 0 ]; then ok=1; continue; fi
    up "$s" || ok=1
  done
  return "$ok"
}

# unchecked_services: the running services of the pinned stacks that have no healthcheck: for them the gate
# only knows they started, so a release that breaks one would pass (one docker call for all stacks).
unchecked_services() {
  local s pinned=" " project service status
  for s in "${STACKS[@]}"; do
    [ -z "${SPEC_APPS[$s]}" ] || pinned+="${SPEC_PROJECT[$s]} "
  done
  [ "$pinned" != " " ] || return 0
  # (docker ANDs label filters, so the projects are matched here)
  docker ps --filter label=com.docker.compose.project \
      --format '{{.Label "com.docker.compose.project"}} {{.Label "com.docker.compose.service"}} {{.Status}}' 2>/dev/null \
    | while read -r project service status; do
        case $pinned in *" $project "*) ;; *) continue ;; esac
        case $status in *"(healthy)"*|*"(unhealthy)"*|*"(health: "*) ;; *) data unchecked project "$project" service "$service" ;; esac
      done
  return 0
}

# go_live: the health gate. Every stack up in order: the release is good and current. Otherwise it is failed,
# and the previous good release is put back by itself. A release compose could not even start exits with its
# own code (R_NOT_STARTED), so a config or conflict problem is not mistaken for the app's health.
go_live() {
  if apply; then
    unchecked_services
    record good
    write_current
    RESULT=ok
    probe_token_report
    say ok
    return 0
  fi
  record failed
  local failed="$TAG failed its health gate" code=$R_ROLLED_BACK
  if [ -n "${COMPOSE_FAILED:-}" ]; then
    failed="$TAG could not be started (compose failed, not a health check: $COMPOSE_FAILED)"
    code=$R_NOT_STARTED
  fi
  say "info $failed: restoring the previous good release"
  if restore; then
    say ok
    RESULT=rolled-back
    die "$code" "$failed; the previous good release $(current_tag) is back and healthy"
  fi
  RESULT=broken
  die "$R_BROKEN" "$failed and the previous good release could not be restored: look at the host now"
}
