# shellcheck shell=bash
# Up: the stacks brought up in order (a together wave at once; a stack compose would not change left alone)
# behind the health gate, the release recorded live, and the previous good release put back when the gate fails.
# Globals: STACKS, SPEC_*, PINS (stacks.sh, images.sh); SWITCHED (stacks this release changed), FAILED_UP and
# COMPOSE_FAILED (the first stack whose up failed, and compose's words), AS_IT_WAS (that stack, when compose
# replaced none of its containers), WAVE (stack -> its together wave).
# shellcheck disable=SC2034,SC2154  # globals shared across files; TAG (the release's label), RELEASE, STATE and R_* come from the program's head

# compose_up STACK: `docker compose up -d` of STACK with its replicas; compose's output on stdout.
compose_up() {
  local scale=() word
  for word in ${SPEC_SCALE[$1]:-}; do scale+=(--scale "$word"); done
  compose "$1" up -d --remove-orphans "${scale[@]}" 2>&1
}

# project_containers PROJECT: the ids of the containers compose runs for PROJECT (not `compose run` ones).
project_containers() {
  docker ps -aq --filter "label=com.docker.compose.project=$1" --filter label=com.docker.compose.oneoff=False
}

# stop_stack STACK: stop what a stack runs, keeping it as it is (`up` starts it again): its containers, or a
# binary's unit.
stop_stack() {
  if is_binary "$1"; then systemctl stop "${BIN[$1:unit]}" 2>&1
  else compose "$1" stop 2>&1; fi
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
  case ${SPEC_KIND[$1]} in
    binary) printf '%s: systemctl restart %s (%ss)' "$1" "${BIN[$1:unit]}" "${SPEC_WAIT[$1]}" ;;
    swarm) printf '%s: docker stack deploy, every service converged within %ss' "$1" "${SPEC_WAIT[$1]}" ;;
    *) printf '%s: docker compose up, healthy within %ss' "$1" "${SPEC_WAIT[$1]}" ;;
  esac
  printf '%s' "${SPEC_HEALTH[$1]:+, then ${SPEC_HEALTH[$1]}}"
}

# up STACK: bring one stack up (a binary: its unit restarted, see binary.sh) and gate on compose's health and then its HTTP check. A dockerd that stopped
# answering is waited for (60 s) and the stack tried once more. When compose itself fails (a conflict, a
# missing image or network: not the containers' health), COMPOSE_FAILED says which stack and why, and for a
# stack the tool does not pin AS_IT_WAS names it when compose replaced none of its containers (restore then
# has nothing to put back: an `up` of the same files would fail the same way).
up() {
  local stack=$1 out rc why before=""
  is_compose "$stack" || { does "$stack" up; return; }
  if ! pins_moved "$stack" && unchanged "$stack"; then
    say "info $stack: as it runs (configuration, images, healthy containers): not brought up again"
    health_gate "$stack"
    return
  fi
  [ -n "${SPEC_APPS[$stack]}" ] || before=$(project_containers "${SPEC_PROJECT[$stack]}" 2>/dev/null | sort)
  out=$(bring_up "$stack"); rc=$?
  if [ "$rc" != 0 ] && [[ $out == *"Cannot connect to the Docker daemon"* ]]; then
    say "info dockerd is not answering: waiting for it (60 s), then $stack once more"
    if daemon_back 60; then out=$(bring_up "$stack"); rc=$?; fi
  fi
  if [ "$rc" = 0 ]; then
    out+=$'\n'$(wait_healthy "$stack") || rc=$?
  fi
  printf '%s\n' "$out"
  if [ "$rc" != 0 ]; then
    why=$(printf '%s' "$out" | grep -v '^@@\|^ *Container\|^ *Network\|^ *Volume' | tail -n 1)
    say "fail $stack: $why"
    if [ "$rc" != 2 ] && ! compose_saw_health "$out"; then   # (2: wait_healthy's health failure)
      COMPOSE_FAILED="$stack: $why"; say "info compose itself failed ($COMPOSE_FAILED), not a health check"
      # shellcheck disable=SC2034  # (restore reads it; a program that restores nothing, a live restore, does not)
      [ -z "$before" ] || [ "$(project_containers "${SPEC_PROJECT[$stack]}" 2>/dev/null | sort)" != "$before" ] \
        || AS_IT_WAS=$stack
    fi
    return 1
  fi
  health_gate "$stack" && record_up "$stack"
}

# bring_up STACK: compose's `up` of STACK, or its start-first rollout (rollout.sh) where hosts.yml says so.
bring_up() { if is_start_first "$1"; then roll "$1"; else compose_up "$1"; fi; }

# replicas STACK SERVICE: how many containers SERVICE runs (scale: in hosts.yml, else one).
replicas() {
  local word n=1
  for word in ${SPEC_SCALE[$1]:-}; do [ "${word%%=*}" != "$2" ] || n=${word#*=}; done
  printf '%s' "$n"
}

# together STACK...: these stacks do not depend on each other (hosts.yml's together:): apply brings them up at
# once. They are consecutive in STACKS.
together() {
  declare -gA WAVE
  local s
  for s in "$@"; do WAVE[$s]=$1; done
}

# apply: pin and bring up every stack in order (a together: wave at once), each after its jobs that run before
# it (jobs.sh); on the first failure stop and return 1. SWITCHED lists the stacks whose .env it changed (a
# stack whose .env could not be written still runs what it ran); FAILED_UP the stack whose `up` failed.
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
    jobs_run before "${wave[@]}" || return 1
    if [ "${#wave[@]}" = 1 ]; then say "step up $(up_text "${wave[0]}")"
    else say "step up ${wave[*]} at once"; fi
    for s in "${wave[@]}"; do switch_stack "$s" || return 1; done
    if [ "${#wave[@]}" = 1 ]; then up "${wave[0]}" || { FAILED_UP=${wave[0]}; return 1; }
    else up_all "${wave[@]}" || return 1; fi
  done
}

# switch_stack STACK: pin STACK's release in its .env (or switch a binary's live path), saying why not; a .env
# whose lines changed is rendered again (render_again).
switch_stack() {
  local env=${SPEC_COMPOSE[$1:env]:-} before=""
  [ -z "$env" ] || [ ! -f "$env" ] || before=$(< "$env")
  pin_stack "$1" new
  case $? in
    0) SWITCHED+=("$1")
       [ -z "$env" ] || [ "$(< "$env")" = "$before" ] || render_again "$1" ;;
    1) say "fail $1: cannot write ${SPEC_COMPOSE[$1:env]} (disk full?): it still runs what it ran"; return 1 ;;
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
    ( COMPOSE_FAILED="" AS_IT_WAS=""; up "$s" > "$dir/$s"; rc=$?
      printf '%s\n%s' "$AS_IT_WAS" "$COMPOSE_FAILED" > "$dir/$s.why"; exit "$rc" ) &
    pids+=("$!")
  done
  for s in "$@"; do
    wait "${pids[0]}" || { [ -n "$FAILED_UP" ] || { FAILED_UP=$s
      { read -r AS_IT_WAS; COMPOSE_FAILED=$(cat); } < "$dir/$s.why"; }; failed=1; }
    pids=("${pids[@]:1}")
    cat "$dir/$s"
  done
  return "$failed"
}

# restore: put back the previous good pins (from the state's current file) of every stack apply switched (and
# of those an interrupted run whose lock this one took over brought up: INHERITED), and
# repo/ on its previous commit if this release moved it. A
# stack without a pin has nothing to go back to: the one that failed is brought up again as it was (if that
# fails too, the previous release is not back, and nobody is told it is).
restore() {
  local s ok=0 rc
  [ -f "$STATE/current" ] || { say "info no previous good release to restore"; return 1; }
  declare -gA RENDERED=()   # (what preflight rendered is the failed release's configuration, not the one put back)
  undo_checkout || ok=1
  for s in "${STACKS[@]}"; do   # (those it switched, and those an interrupted run may have: INHERITED)
    in_words "$s" "${SWITCHED[@]}" ${INHERITED[@]+"${INHERITED[@]}"} || continue
    if [ -z "${SPEC_APPS[$s]}" ]; then
      if [ "$s" = "${AS_IT_WAS:-}" ] && wait_healthy "$s" >/dev/null; then
        say "info $s: compose replaced none of its containers: they run as they did"
      elif [ "$s" = "$FAILED_UP" ]; then
        say "step restore $s: up again as it was"; up "$s" || ok=1
      fi
      continue
    fi
    say "step restore $s: back to the previous good release's pins"
    pin_stack "$s" previous; rc=$?
    [ "$rc" != 1 ] || say "fail cannot write ${SPEC_COMPOSE[$s:env]}"
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
  if apply && jobs_run after; then
    unchecked_services
    record good
    write_current
    mark_reverted
    RESULT=ok
    probe_token_report
    say ok
    return 0
  fi
  record failed
  local failed="$TAG failed its health gate" code=$R_ROLLED_BACK
  if [ -n "${JOB_FAILED:-}" ]; then
    failed="$TAG: its $JOB_FAILED" code=$R_JOB
    pins_switched || job_stopped "$failed"
  elif [ -n "${COMPOSE_FAILED:-}" ]; then
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
