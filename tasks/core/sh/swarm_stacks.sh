# shellcheck shell=bash
# Stacks of a system on a Docker Swarm (engine: swarm), run on a manager: `docker stack deploy` of the stack's
# compose file under its project name, the swarm placing the services on its nodes. The deploy around it is
# the compose engine's (lock, pulls, pins in the .env, record, restore of the previous release's pins); what
# differs is here: preflight reads `docker stack config`, an up is a stack deploy and the tool's own wait for
# the whole stack to converge (never `--detach=false`, which hangs on one-shot services: docker/cli#5299).
# Globals: STACK_ENV (the lines of a stack's interpolation environment), SWARM_PENDING (what a wait still
# waits for), IMAGES (service -> image, for pinned_images).
# shellcheck disable=SC2034,SC2154  # globals shared across files; R_* come from the program's head

# on_swarm STACK: STACK (declared by add_stack) runs on the swarm this host manages; its up, check and text are
# this file's.
on_swarm() {
  declare -gA SPEC_KIND SPEC_DOES
  SPEC_KIND[$1]=swarm
  SPEC_DOES[$1:up]=swarm_up SPEC_DOES[$1:check]=swarm_check
}

# stack_env STACK [VARIABLE=VALUE...]: STACK_ENV, the environment compose would interpolate STACK's compose
# file with (this process's, then its .env's, then the VARIABLEs: a release's pins), as compose itself reads
# the .env (its quoting and escapes): `docker stack` reads no .env (moby#29133). A value spanning lines
# could not be told from the next one and is refused. Fails with STACK_ENV_ERR.
stack_env() {
  local out line
  if ! out=$(env "${@:2}" docker compose -p "${SPEC_PROJECT[$1]}" -f "${SPEC_COMPOSE[$1]}" config --environment 2>&1); then
    STACK_ENV_ERR="docker compose cannot read it: $(tail -n 1 <<< "$out")"; return 1
  fi
  mapfile -t STACK_ENV <<< "$out"
  for line in "${STACK_ENV[@]}"; do
    [[ $line =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] && continue
    STACK_ENV_ERR="a value of ${SPEC_COMPOSE[$1:env]} spans lines, which docker stack cannot be given: write it on one line"
    return 1
  done
}

# with_stack_env COMMAND...: COMMAND run with STACK_ENV exported by the shell (a builtin: no value is on any
# command line), in a subshell.
with_stack_env() {
  (
    local line
    for line in "${STACK_ENV[@]}"; do export "${line%%=*}=${line#*=}"; done
    "$@"
  )
}

# has_ipvs: the kernel can do Swarm's virtual IPs and ingress mesh (IPVS loaded, or a module to load).
has_ipvs() {
  [ -d /sys/module/ip_vs ] || [ -n "$(find "/lib/modules/$(uname -r)" -name 'ip_vs.ko*' -print -quit 2>/dev/null)" ]
}

# swarm_objects: from `docker stack config` (services at 2 spaces, their fields at 4, deploy's at 6, a port's
# at 8) the lines "service NAME", "image SERVICE REF", "dnsrr SERVICE" (deploy.endpoint_mode: dnsrr), "ingress
# SERVICE PORT" (a published port not in mode: host) and "build SERVICE".
swarm_objects() {
  awk '
    function port() { if (published != "" && mode != "host") print "ingress", service, published; published = ""; mode = "" }
    /^[^ ]/ { port(); sec = $1; next }
    sec != "services:" { next }
    /^  [^ ]/ { port(); service = $1; sub(/:$/, "", service); print "service", service; field = ""; next }
    /^    [^ ]/ { port(); field = $1; if ($1 == "image:") print "image", service, $2; if ($1 == "build:") print "build", service; next }
    field == "deploy:" && /^      endpoint_mode: dnsrr$/ { print "dnsrr", service }
    field == "ports:" && /^      - / { port(); sub(/^      - /, "        ") }
    field == "ports:" && /^        published:/ { published = $2 }
    field == "ports:" && /^        mode:/ { mode = $2 }
    END { port() }'
}

# swarm_check STACK: preflight of a swarm stack with this release's pins: `docker stack config` renders it (the
# values stay in this shell), each pinned image line runs its app's pin, nothing is built, and without IPVS in
# the kernel every service resolves by DNS round robin and publishes its ports on its node (mode: host).
swarm_check() {
  local s=$1 out kind a b ipvs=1 services=""
  declare -gA IMAGES=() DNSRR=()
  stack_pins "$s" new >/dev/null || { problem "$s" "a pin of this release is damaged"; return 0; }
  stack_env "$s" "${STACK_PINS[@]}" || { problem "$s" "$STACK_ENV_ERR"; return 0; }
  if ! out=$(with_stack_env docker stack config -c "${SPEC_COMPOSE[$s]}" 2>&1); then
    problem "$s" "docker stack config fails: $(tail -n 1 <<< "$out")"; return 0
  fi
  has_ipvs || ipvs=""
  while read -r kind a b; do
    case $kind in
      service) services+=" $a" ;;
      image) IMAGES[$a]=$b ;;
      dnsrr) DNSRR[$a]=1 ;;
      build) problem "$s" "service $a is built (build:): a swarm runs images from a registry only" ;;
      ingress) [ -n "$ipvs" ] || problem "$s" "service $a publishes port $b through the ingress mesh, which needs IPVS, absent from this kernel: publish it on its node (ports: [{target: ..., published: $b, mode: host}])" ;;
    esac
  done < <(swarm_objects <<< "$out")
  [ -n "$services" ] || problem "$s" "its compose file has no service"
  compose_left "$s"
  if [ -z "$ipvs" ]; then
    for a in $services; do
      [ -n "${DNSRR[$a]:-}" ] || problem "$s" "service $a would get a virtual IP, which needs IPVS, absent from this kernel: set deploy.endpoint_mode: dnsrr"
    done
  fi
  pinned_images "$s"
}

# compose_left STACK: the move from the compose engine: containers of STACK's project that compose still runs on
# this manager would hold its ports and, beside the swarm's tasks, its volumes (named alike: PROJECT_VOLUME;
# two PostgreSQL servers on one data folder) - a problem saying how to stop them, keeping the volumes.
compose_left() {
  local ids
  ids=$(docker ps -q --filter "label=com.docker.compose.project=${SPEC_PROJECT[$1]}" 2>/dev/null) || ids=""
  [ -n "$ids" ] || return 0
  problem "$1" "compose still runs project ${SPEC_PROJECT[$1]} here ($(wc -l <<< "$ids") containers), which would hold its ports and, beside the swarm's tasks, its volumes: stop it with 'docker compose -p ${SPEC_PROJECT[$1]} down' on this host (its containers go, its volumes stay: the stack's are named alike, and its tasks on this node use them), then deploy"
}

# swarm_up STACK: `docker stack deploy` of STACK as its .env now pins it (every service of the stack: a
# previous release's pins bring all of them back), with the manager's registry login for the nodes that
# pull (--with-registry-auth) and the pins as given (--resolve-image never: each is a digest already), then
# the wait for the whole stack and its health URL. Fails like compose's up: COMPOSE_FAILED when docker
# refused the stack, status 2 when it did not converge.
swarm_up() {
  local s=$1 out
  if ! stack_env "$s"; then
    say "fail $s: $STACK_ENV_ERR"; COMPOSE_FAILED="$s: $STACK_ENV_ERR"; return 1
  fi
  if ! out=$(with_stack_env docker stack deploy -c "${SPEC_COMPOSE[$s]}" --with-registry-auth --resolve-image never \
      --prune --detach=true "${SPEC_PROJECT[$s]}" 2>&1); then
    COMPOSE_FAILED="$s: $(tail -n 1 <<< "$out")"; say "fail $COMPOSE_FAILED"; return 1
  fi
  printf '%s\n' "$out"
  swarm_wait "$s" || return 2
  health_gate "$s" && record_up "$s"
}

# swarm_wait STACK: within the stack's wait: seconds, every service of it converged (swarm_converged); an
# update the swarm paused or rolled back fails at once, saying the swarm's words.
swarm_wait() {
  local deadline rc
  deadline=$(( $(date +%s) + ${SPEC_WAIT[$1]} ))
  while :; do
    swarm_converged "${SPEC_PROJECT[$1]}"; rc=$?
    case $rc in
      0) say "info $1: every service converged"; return 0 ;;
      2) say "fail $1: $SWARM_PENDING"; return 1 ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
      say "fail $1: not converged within ${SPEC_WAIT[$1]} s: $SWARM_PENDING"; return 1
    fi
    sleep 1
  done
}

# swarm_converged NAMESPACE: every service of the stack NAMESPACE done as its spec says (swarm_service_done,
# or a one-shot's: swarm_once_done, swarm_job_done). A task turns running only once its healthcheck passes, so
# this is the stack healthy. Returns 0 converged, 1 not yet (SWARM_PENDING says what), 2 failed (an update the
# swarm paused or rolled back, a one-shot that failed for good, or docker not answering).
swarm_converged() {
  local ids specs name image mode restart state message rc
  SWARM_PENDING=""
  ids=$(docker service ls -q --filter "label=com.docker.stack.namespace=$1" 2>&1) \
    || { SWARM_PENDING="docker does not answer: $(tail -n 1 <<< "$ids")"; return 2; }
  [ -n "$ids" ] || { SWARM_PENDING="the stack has no service"; return 1; }
  # shellcheck disable=SC2086  # one service id per word
  specs=$(docker service inspect --format '{{.Spec.Name}}|{{.Spec.TaskTemplate.ContainerSpec.Image}}|{{with .Spec.Mode}}{{if .Replicated}}{{.Replicated.Replicas}}{{else if .Global}}global{{else if .ReplicatedJob}}job {{.ReplicatedJob.TotalCompletions}}{{else}}job all{{end}}{{end}}{{with $.JobStatus}} {{.JobIteration.Index}}{{end}}|{{with .Spec.TaskTemplate.RestartPolicy}}{{.Condition}}{{end}}|{{if .UpdateStatus}}{{.UpdateStatus.State}}|{{.UpdateStatus.Message}}{{end}}' $ids 2>&1) \
    || { SWARM_PENDING="docker service inspect failed: $(tail -n 1 <<< "$specs")"; return 2; }
  SWARM_DOWN=" $(docker node ls --format '{{.Hostname}} {{.Status}}' 2>/dev/null | awk '$2 != "Ready" { printf "%s ", $1 }')"
  while IFS='|' read -r name image mode restart state message; do
    case $mode:$restart in
      job*) swarm_job_done "$name" "$image" "$mode" "$restart" ;;
      *:none|*:on-failure) swarm_once_done "$name" "$image" "$mode" "$restart" "$state" ;;
      *) swarm_service_done "$name" "$image" "$mode" "$state" "$message" ;;
    esac
    rc=$?
    [ "$rc" != 2 ] || return 2
  done <<< "$specs"
  [ -z "$SWARM_PENDING" ]
}

# pending TEXT: what a wait still waits for, added to SWARM_PENDING (returns 1: not yet).
pending() { SWARM_PENDING+="${SWARM_PENDING:+; }$1"; return 1; }

# swarm_tasks SERVICE: its tasks, newest first in each slot, one "ID|IMAGE|NODE|DESIRED|CURRENT|SLOT|ERROR"
# line each (SWARM_TASKS); fails saying docker's words.
swarm_tasks() {
  SWARM_TASKS=$(docker service ps --no-trunc --format '{{.ID}}|{{.Image}}|{{.Node}}|{{.DesiredState}}|{{.CurrentState}}|{{.Name}}|{{.Error}}' "$1" 2>&1) \
    || { SWARM_PENDING="docker service ps $1 failed: $(tail -n 1 <<< "$SWARM_TASKS")"; return 2; }
}

# task_error IMAGE: ", last task error: ..." for the newest of SWARM_TASKS on IMAGE with an error (one that
# failed, or one the swarm cannot place: "no suitable node"), else nothing: an older release's errors are
# not this deploy's.
task_error() {
  local image err
  while IFS='|' read -r _ image _ _ _ _ err; do
    if [ "$image" = "$1" ] && [ -n "$err" ]; then printf ', last task error: %s' "$err"; return 0; fi
  done <<< "$SWARM_TASKS"
}

# swarm_service_done SERVICE IMAGE REPLICAS UPDATE_STATE UPDATE_MESSAGE: a long-running service converged: as
# many running tasks as its REPLICAS (global: a task on each node it runs on), each on IMAGE, none of another
# and none still stopping, its update (if any) completed. Tasks on a node that is down count neither way: the
# swarm replaces them elsewhere, and an update that waits only for one of them to stop (it never will, until
# the node returns) is done. An update that still has tasks to replace while it waits for one on a node that
# is down never moves on (seen with a node lost mid-update): the wait says so, and the deploy goes back.
swarm_service_done() {
  local name=$1 image=$2 replicas=$3 state=$4 task node desired current good=0 other=0 all=0 stuck="" waits
  swarm_tasks "$name" || return 2
  case $state in
    paused|rollback_started|rollback_paused|rollback_completed)
      SWARM_PENDING="the update of $name stopped ($state): $5$(task_error "$image")"; return 2 ;;
  esac
  while IFS='|' read -r _ task node desired current _; do
    [ -n "$task" ] || continue
    case $current in Shutdown*|Failed*|Complete*|Rejected*|Orphaned*|Remove*) continue ;; esac
    if [[ $SWARM_DOWN == *" $node "* ]]; then stuck=$node; continue; fi
    [ "$desired" != Running ] || all=$((all + 1))
    if [ "$desired" != Running ] || [ "$task" != "$image" ]; then other=$((other + 1))
    elif [[ $current == Running* ]]; then good=$((good + 1))
    fi
  done <<< "$SWARM_TASKS"
  [ "$replicas" != global ] || replicas=$(( all > 0 ? all : 1 ))
  waits=$state
  [ "$state" != updating ] || [ -z "$stuck" ] || waits=""   # (only for the down node)
  if [ "$good" != "$replicas" ] || [ "$other" != 0 ] || { [ -n "$waits" ] && [ "$waits" != completed ]; }; then
    [ -z "$stuck" ] || stuck=" (a task of it is on node $stuck, which is down: the swarm's update waits for it)"
    pending "$name: $good of $replicas running on ${image##*/}${state:+ (update $state)}$(task_error "$image")$stuck"
  fi
}

# swarm_once_done SERVICE IMAGE REPLICAS RESTART UPDATE_STATE: a replicated service the swarm does not restart
# when its task ends well (restart_policy condition none or on-failure: a one-shot) is done when the newest
# task of each slot, on IMAGE, has completed or runs. One that failed fails the wait when the swarm will not
# try again (condition none, or its update paused). The swarm pauses the update of such a service even when
# its task completed ("early termination"): that pause alone is no failure.
swarm_once_done() {
  local name=$1 image=$2 replicas=$3 task current slot slots=" " good=0 failed=""
  swarm_tasks "$name" || return 2
  case $5 in rollback_*) SWARM_PENDING="the update of $name stopped ($5)$(task_error "$image")"; return 2 ;; esac
  while IFS='|' read -r _ task _ _ current slot _; do
    if [ -z "$task" ] || [[ $slots == *" $slot "* ]]; then continue; fi
    slots+="$slot "
    [ "$task" = "$image" ] || continue
    case $current in
      Complete*|Running*) good=$((good + 1)) ;;
      Failed*|Rejected*) failed=$slot ;;
    esac
  done <<< "$SWARM_TASKS"
  if [ -n "$failed" ] && { [ "$4" = none ] || [ "$5" = paused ]; }; then
    SWARM_PENDING="$failed (a one-shot: restart_policy $4) failed$(task_error "$image")"; return 2
  fi
  [ "$good" = "$replicas" ] || pending "$name: $good of $replicas done or running on ${image##*/}$(task_error "$image")"
}

# swarm_job_done SERVICE IMAGE "job TOTAL|all ITERATION" RESTART: a job (mode: replicated-job or global-job),
# which the swarm runs again at each stack deploy (a new iteration), is done when TOTAL tasks of this
# iteration completed (all: every task of it, none left running); a task of it that failed fails the wait
# when the swarm will not try again (restart_policy condition none).
swarm_job_done() {
  local name=$1 total iteration ids lines="" index state done=0 failed=0 left=0
  read -r _ total iteration <<< "$3"
  swarm_tasks "$name" || return 2
  ids=$(cut -d'|' -f1 <<< "$SWARM_TASKS")
  # shellcheck disable=SC2086  # one task id per word
  [ -z "$ids" ] || lines=$(docker inspect --format '{{with .JobIteration}}{{.Index}}{{end}} {{.Status.State}}' $ids 2>&1) \
    || { SWARM_PENDING="docker inspect of the tasks of $name failed: $(tail -n 1 <<< "$lines")"; return 2; }
  while read -r index state; do
    [ "$index" = "${iteration:-0}" ] || continue
    case $state in
      complete) done=$((done + 1)) ;;
      failed|rejected) failed=$((failed + 1)) ;;
      shutdown|orphaned|remove) ;;
      *) left=$((left + 1)) ;;
    esac
  done <<< "$lines"
  if [ "$failed" != 0 ] && [ "$4" = none ]; then
    SWARM_PENDING="the job $name failed$(task_error "$2")"; return 2
  fi
  if [ "$total" = all ]; then
    [ "$done" = 0 ] || [ "$left" != 0 ] || [ "$failed" != 0 ] || return 0
    total=$((done + left + failed))
  fi
  [ "$done" -ge "$total" ] || pending "$name: $done of $total runs of the job complete$(task_error "$2")"
}
