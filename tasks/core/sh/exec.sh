# shellcheck shell=bash
# Where fab exec runs its command: a running container of a stack's service, found on the host and said as an
# @@data line; the tool then runs `docker exec` in it over a channel of its own, joined to the operator's
# terminal (tasks/core/attach.py), so the command's words never pass through this program.
# shellcheck disable=SC2154  # R_* come from the program's head, SPEC_* from add_stack

# exec_find STACK SERVICE: the running container of STACK's SERVICE ("": its only service) a command is run in,
# the first replica when it has several (@@data exec); a service with none running is refused, saying its
# containers' states.
exec_find() {
  local stack=$1 id states
  stack_service "$stack" "$2"
  id=$(compose "$stack" ps -q --status running -- "$STACK_SERVICE" 2>&1) \
    || die "$R_FAILED" "cannot list the containers of $stack: $(printf '%s' "$id" | tail -n 1)"
  id=$(head -n 1 <<< "$id")
  if [ -z "$id" ]; then
    states=$(compose "$stack" ps -a --format '{{.Name}} {{.State}}' -- "$STACK_SERVICE" 2>/dev/null | paste -s -d ',' -)
    die "$R_REFUSED" "no container of $stack/$STACK_SERVICE is running (${states:-it has none}): deploy it, or see 'fab logs --stack $stack --service $STACK_SERVICE'"
  fi
  data exec container "$id" service "$STACK_SERVICE"
}
