# shellcheck shell=bash
# What the stacks said (fab logs, and the lines a failed gate shows: last_lines): a compose stack's containers
# through `docker compose logs`, a binary's unit through journalctl, each line led by its stack's name and a tab
# (a line the program wrote can never be read as one of the protocol's @@ lines). Followed (-f), the readers run
# until the operator's machine goes: a line every 2 s finds that out (a write to a connection that closed
# fails), then every reader is ended.
# shellcheck disable=SC2034,SC2154  # globals shared across files; R_* and LOG_READERS (empty) come from the program's head, SPEC_* and BIN from add_stack / add_binary

# logs_show STACK SERVICE TAIL SINCE follow|once: the last TAIL lines of STACK (SERVICE: that compose
# service only; "" every one) since SINCE ("" any time; for a compose stack a docker duration or timestamp, for
# a binary what journalctl reads: -600s, a date), and with follow what comes next (read in the background,
# waited for by logs_wait). A service the stack does not have is refused, naming those it has.
logs_show() {
  local stack=$1 service=$2 tail=$3 since=$4 follow=$5 reader
  if is_binary "$stack"; then
    reader=(journalctl -u "${BIN[$stack:unit]}" --no-pager -o short-iso -n "$tail")
    [ -z "$since" ] || reader+=("--since=$since")
    [ "$follow" != follow ] || reader+=(-f)
  else
    [ -z "$service" ] || stack_service "$stack" "$service"
    # (docker itself, not the compose function: a followed reader runs in the background and is ended by its
    # pid, which would be a subshell's, leaving docker reading)
    reader=(docker compose -p "${SPEC_PROJECT[$stack]}" -f "${SPEC_COMPOSE[$stack]}" logs --no-color --tail "$tail")
    [ -z "$since" ] || reader+=(--since "$since")
    [ "$follow" != follow ] || reader+=(--follow)
    [ -z "$service" ] || reader+=(-- "$service")
  fi
  if [ "$follow" = follow ]; then
    "${reader[@]}" > >(logs_lead "$stack") 2>&1 < /dev/null &
    LOG_READERS+=("$!")
    return 0
  fi
  "${reader[@]}" 2>&1 < /dev/null | logs_lead "$stack"
  [ "${PIPESTATUS[0]}" = 0 ] || die "$R_FAILED" "reading the logs of $stack failed (its last line above)"
}

# logs_lead STACK: each line of stdin led by STACK and a tab, as it comes.
logs_lead() { sed -u "s/^/$1\t/"; }

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
