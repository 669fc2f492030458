# shellcheck shell=bash
# What the stacks said (fab logs, and the lines a failed gate shows: last_lines): a compose stack's containers
# through `docker compose logs`, a binary's unit through journalctl, each line led by its stack's name and a tab
# (a line the program wrote can never be read as one of the protocol's @@ lines). Followed (-f), the readers run
# until the operator's machine goes: a line every 2 s finds that out (a write to a connection that closed
# fails), then every reader is ended.
# shellcheck disable=SC2034,SC2154  # globals shared across files; R_* and LOG_READERS (empty) come from the program's head, SPEC_* and BIN from add_stack / add_binary

# logs_show STACK SERVICE TAIL SINCE follow|once: the last TAIL lines of STACK (SERVICE: that compose
# service only; "" every one) since SINCE ("" any time; for a compose or swarm stack a docker duration or
# timestamp, for a binary what journalctl reads: -600s, a date), and with follow what comes next (read in the
# background, waited for by logs_wait). A service the stack does not have is refused, naming those it has. A
# swarm stack's services are read through this manager, whichever nodes their tasks run on.
logs_show() {
  local stack=$1 service=$2 tail=$3 since=$4 follow=$5 reader name
  if [ "${SPEC_KIND[$stack]}" = swarm ]; then
    swarm_services "$stack" "$service"
    for name in "${SWARM_SERVICES[@]}"; do
      reader=(docker service logs --no-task-ids --tail "$tail")
      [ -z "$since" ] || reader+=(--since "$since")
      [ "$follow" != follow ] || reader+=(--follow)
      logs_read "$stack" "$follow" "${reader[@]}" "$name"
    done
    return 0
  fi
  if is_binary "$stack"; then
    reader=(journalctl -u "${BIN[$stack:unit]}" --no-pager -o short-iso -n "$tail")
    [ -z "$since" ] || reader+=("--since=$since")
    [ "$follow" != follow ] || reader+=(-f)
  else
    [ -z "$service" ] || stack_service "$stack" "$service"
    reader=(docker compose -p "${SPEC_PROJECT[$stack]}" -f "${SPEC_COMPOSE[$stack]}" logs --no-color --tail "$tail")
    [ -z "$since" ] || reader+=(--since "$since")
    [ "$follow" != follow ] || reader+=(--follow)
    [ -z "$service" ] || reader+=(-- "$service")
  fi
  logs_read "$stack" "$follow" "${reader[@]}"
}

# logs_read STACK follow|once CMD...: CMD's lines led by STACK; followed, in the background. A reader that
# fails fails the program, but for a swarm stack, whose reader fails for any node that is down after giving
# every line the others hold: that is said. (docker itself, not
# the compose function: a followed reader runs in the background and is ended by its pid, which would be a
# subshell's, leaving docker reading.)
logs_read() {
  local stack=$1 follow=$2
  shift 2
  if [ "$follow" = follow ]; then
    "$@" > >(logs_lead "$stack") 2>&1 < /dev/null &
    LOG_READERS+=("$!")
    return 0
  fi
  "$@" 2>&1 < /dev/null | logs_lead "$stack"
  [ "${PIPESTATUS[0]}" != 0 ] || return 0
  # (the swarm gives what its live nodes hold and fails for a node that is down: "incomplete log stream")
  [ "${SPEC_KIND[$stack]}" != swarm ] || { say "info some logs of $stack could not be read (its last line above)"; return 0; }
  die "$R_FAILED" "reading the logs of $stack failed (its last line above)"
}

# logs_lead STACK: each line of stdin led by STACK and a tab, as it comes (a swarm stack's service names without
# the stack's namespace: backend.1@sw2, as compose's backend-1).
logs_lead() { sed -u "s/^${SPEC_PROJECT[$1]:-}_//; s/^/$1\t/"; }

# swarm_services STACK SERVICE: SWARM_SERVICES, the services of swarm stack STACK (SERVICE: only that one,
# refused when the stack has no such service, naming those it has).
swarm_services() {
  local ns=${SPEC_PROJECT[$1]} names
  names=$(docker service ls --filter "label=com.docker.stack.namespace=$ns" --format '{{.Name}}' 2>&1) \
    || die "$R_FAILED" "cannot list the services of $1: $(tail -n 1 <<< "$names")"
  [ -n "$names" ] || die "$R_REFUSED" "stack $1 runs no service on the swarm: deploy it first"
  mapfile -t SWARM_SERVICES <<< "$names"
  [ -n "$2" ] || return 0
  grep -qxF -- "${ns}_$2" <<< "$names" \
    || die "$R_REFUSED" "stack $1 has no service $2 (it has: $(paste -s -d ' ' <<< "${names//"${ns}_"/}"))"
  SWARM_SERVICES=("${ns}_$2")
}

# logs_wait: the followed readers (logs_show) run until every one has ended or the operator's machine has gone
# (Ctrl-C, a dropped connection: the line written every 2 s fails, SIGPIPE being ignored), then each is ended.
logs_wait() {
  local pid alive
  [ "${#LOG_READERS[@]}" -gt 0 ] || return 0
  while :; do
    alive=0
    for pid in "${LOG_READERS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 1 ] || break
    sleep 2
    printf '@@text alive\n' 2>/dev/null || break
  done
  kill "${LOG_READERS[@]}" 2>/dev/null
  wait
  return 0
}

# last_lines CONTAINER | last_lines NAME CMD...: the last 30 lines a failing container (or CMD: a unit's journal)
# wrote, said under the failure so a gate that fails shows why (redacted on the operator's machine, as every
# line is). Said before anything removes the container (a start-first rollout's new ones).
last_lines() {
  local who=$1 out line
  if [ $# = 1 ]; then set -- docker logs --tail 30 "$who"; else shift; fi
  out=$("$@" 2>&1 < /dev/null) || return 0
  [ -n "$out" ] || { say "info $who wrote nothing"; return 0; }
  say "info the last lines of $who:"
  while IFS= read -r line; do say "info   | $line"; done <<< "$out"
}
