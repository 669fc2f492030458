# shellcheck shell=bash
# The health gate: a stack's containers running and healthy within its wait (compose's own healthchecks, looked
# at every 0.1 s), then its HTTP health URL answering 2xx; what a failure looked like is said.
# shellcheck disable=SC2034,SC2154  # globals shared across files; SPEC_* come from stacks.sh

# wait_healthy STACK [ID...]: what `up --wait` waits for, looked at every 0.1 s (compose's own polling adds ~0.4 s to
# every changed stack): every container of the project running, and healthy where it has a healthcheck, within
# the stack's wait: seconds. One that turns unhealthy, restarts or exits fails at once (one that exited 0 and is
# never restarted finished its job); its state is said on stdout and it returns 2 (a health failure, not
# compose's; 1: docker did not answer). A dockerd that stops answering is waited for; a `docker inspect` that fails (a container gone
# between the listing and the look) is asked again, never taken for a healthy answer.
wait_healthy() {
  local project=${SPEC_PROJECT[$1]} deadline ids states name st health code policy pending failed
  deadline=$(( $(date +%s) + ${SPEC_WAIT[$1]} ))
  while :; do
    if [ $# -gt 1 ]; then ids=${*:2}   # (these containers only: a start-first rollout's new ones)
    elif ! ids=$(project_containers "$project" 2>&1); then
      daemon_back 60 && continue
      printf 'docker does not answer: %s\n' "$ids"; return 1
    fi
    pending="" states=""
    # shellcheck disable=SC2086  # one container id per word
    if [ -n "$ids" ] && ! states=$(docker inspect --format '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.State.ExitCode}} {{.HostConfig.RestartPolicy.Name}}' $ids 2>&1); then
      pending="the containers of $1 (docker inspect failed: ${states//$'\n'/ })" states=""
    fi
    while read -r name st health code policy; do
      [ -n "$name" ] || continue
      name=${name#/} failed=""
      case $st/$health in
        running/healthy|running/none) ;;
        running/unhealthy) failed="is unhealthy" ;;
        exited/*|dead/*) [ "$code" = 0 ] && [ "${policy:-no}" = no ] || failed="exited ($code)" ;;
        restarting/*) failed="exited ($code) and is restarting" ;;
        *) pending="container $name" ;;
      esac
      [ -z "$failed" ] || { printf 'container %s %s\n' "$name" "$failed"; last_lines "$name"; return 2; }
    done <<< "$states"
    [ -n "$pending" ] || return 0
    if [ "$(date +%s)" -ge "$deadline" ]; then
      printf '%s: not healthy after %ss\n' "$pending" "${SPEC_WAIT[$1]}"
      [ "${pending#container }" = "$pending" ] || last_lines "${pending#container }"
      return 2
    fi
    sleep 0.1
  done
}

# health_ok URL: URL answers 2xx now (curl, or busybox's wget where there is no curl). A URL naming a host
# (https://api.ems.example/health) is asked of this host's own port with that name (Host and SNI), whatever
# DNS says: the gate judges this host, not a load balancer or a neighbour. Its certificate is not checked
# here: a first deploy's is issued after the proxy starts, and fab doctor judges it.
health_ok() {
  local rest=${1#*://} name port to_self=()
  rest=${rest%%/*} && rest=${rest##*@}
  name=${rest%:*} port=${rest##*:}
  if [ "$name" = "$rest" ]; then case $1 in https:*) port=443 ;; *) port=80 ;; esac; fi
  if [[ $name =~ [A-Za-z] && $name != localhost && $name != \[* ]]; then
    to_self=(--connect-to "$name:$port:127.0.0.1:$port")
  fi
  curl --globoff -fsS -k ${to_self[@]+"${to_self[@]}"} -o /dev/null --max-time 5 "$1" 2>/dev/null \
    || wget -q -O /dev/null -T 5 "$1" 2>/dev/null
}

# compose_saw_health OUTPUT: compose's own `up` stopped on a container's health (a depends_on that never became
# healthy, a container that exited): compose's words, as Compose v2 prints them.
compose_saw_health() {
  case $1 in
    *"dependency failed to start"*|*"exited with code"*|*" is unhealthy"*|*"is not running"*) return 0 ;;
  esac
  return 1
}

# health_gate STACK: the stack's health URL (if it has one) answers 2xx within 10 tries a second apart;
# otherwise the last lines of each of its containers are said.
health_gate() {
  local health=${SPEC_HEALTH[$1]} i name
  [ -z "$health" ] && return 0
  for i in 1 2 3 4 5 6 7 8 9 10; do
    health_ok "$health" && return 0
    [ "$i" = 10 ] || sleep 1
  done
  say "fail $1: $health did not answer 2xx"
  for name in $(docker ps -a --filter "label=com.docker.compose.project=${SPEC_PROJECT[$1]}" --format '{{.Names}}' 2>/dev/null); do last_lines "$name"; done
  return 1
}
