# shellcheck shell=bash
# Taking over a VPS whose stacks were started by hand (part of preflight): a container name or a compose folder
# held by a project the tool does not run, a new empty volume while one of the same name holds data, and how to
# go on (adopt the project, or stop it); a service scaled by hand beyond what the deploy keeps.
# Globals: NAMES (the stack's container names), RUNS (its running containers per service), DEPLOY_REPLICAS
# (preflight.sh's check_stack); OWN_PROJECTS comes from the program's head.
# shellcheck disable=SC2034,SC2154  # globals shared across files; OWN_PROJECTS and R_* come from the program's head

own_project() { case " $OWN_PROJECTS " in *" $1 "*) return 0 ;; esac; return 1; }

# adopt_hint STACK PROJECT [FOLDER]: how to go on from a project started by hand (compose names containers and
# volumes after it): adopt it with `project:`, unless another stack of the host would claim that name too
# (seed 001's ems/container and sms/container, both "container": hosts.yml refuses two stacks, one project);
# then stop it and let the tool start its own.
adopt_hint() {
  local other
  for other in "${STACKS[@]}"; do
    if [ "$other" = "$1" ] || is_binary "$other"; then continue; fi
    if [ "${SPEC_PROJECT[$other]}" = "$2" ] || [ "$(default_project "${SPEC_COMPOSE[$other]}")" = "$2" ]; then
      printf "stack %s would claim project %s too, so it cannot be adopted: stop it (docker compose -p %s down%s: its containers go, its volumes stay), then deploy: the tool starts its own project %s" \
        "$other" "$2" "$2" "${3:+ in $3}" "${SPEC_PROJECT[$1]}"
      return 0
    fi
  done
  printf "adopt it with 'project: %s' for this stack in hosts.yml" "$2"
}

# volume_holds_data NAME: true unless the volume's folder is visibly empty (a driver without a local folder
# counts as holding data).
volume_holds_data() {
  local mp; mp=$(docker volume inspect --format '{{.Mountpoint}}' "$1" 2>/dev/null)
  ! { [ -n "$mp" ] && [ -d "$mp" ] && [ -z "$(find "$mp" -mindepth 1 -print -quit 2>/dev/null)" ]; }
}

# check_volume STACK KEY NAME: a volume compose would create new is refused while a volume of the same name in
# another compose project (not one of the tool's) holds data: PostgreSQL would start on an empty database.
check_volume() {
  local s=$1 other project
  if docker volume inspect "$3" >/dev/null 2>&1; then data volume stack "$s" name "$3" result exists; return 0; fi
  data volume stack "$s" name "$3" result new
  while read -r other project; do
    if [ -z "$other" ] || [ "$project" = "${SPEC_PROJECT[$s]}" ] || own_project "$project"; then continue; fi
    volume_holds_data "$other" || continue
    problem "$s" "it would start on a new, empty volume $3 while volume $other of compose project ${project:-?} holds data: $(adopt_hint "$s" "$project")"
  done < <(docker volume ls --filter "label=com.docker.compose.volume=$2" --format '{{.Name}} {{.Label "com.docker.compose.project"}}' 2>/dev/null)
}

# check_running STACK CONTAINERS: containers (name|project|working dir|service|state lines) that hold one of
# the stack's container names, or run its compose folder under another project (started by hand there). RUNS
# counts the stack's own running containers per service.
check_running() {
  local s=$1 name project dir service state folder want n
  declare -gA RUNS   # (check_stack's, emptied per stack)
  folder=$(dirname "${SPEC_COMPOSE[$s]}")
  while IFS='|' read -r name project dir service state; do
    [ -n "$name" ] || continue
    if [ "$project" = "${SPEC_PROJECT[$s]}" ]; then
      if [ "$state" = running ]; then n=${RUNS[$service]:-0}; RUNS[$service]=$((n + 1)); fi
      continue
    fi
    for want in "${NAMES[@]}"; do
      [ "$name" = "$want" ] || continue
      if [ -z "$project" ]; then problem "$s" "a container named $name exists outside compose: remove or rename it"
      elif own_project "$project"; then problem "$s" "container name $name is taken by the tool's stack $project"
      else problem "$s" "container $name already runs as compose project $project: $(adopt_hint "$s" "$project" "$dir")"; fi
    done
    if [ "$dir" = "$folder" ] && [ -n "$project" ] && ! own_project "$project"; then
      problem "$s" "$folder already runs as compose project $project (container $name): $(adopt_hint "$s" "$project" "$dir")"
    fi
  done <<< "$2"
}

# scaled_by_hand STACK: a service running more containers than its deploy will keep (scale: in hosts.yml, else
# the compose file's deploy.replicas, else one) was scaled by hand (`compose up --scale`): the deploy brings it
# back, and says so. (A start-first stack's extra containers are an interrupted rollout's, replaced anyway.)
scaled_by_hand() {
  local svc want
  ! is_start_first "$1" || return 0
  for svc in "${!RUNS[@]}"; do
    want=$(replicas "$1" "$svc")
    [ -n "${SPEC_SCALE[$1]:-}" ] && [[ " ${SPEC_SCALE[$1]} " == *" $svc="* ]] || want=${DEPLOY_REPLICAS[$svc]:-$want}
    [ "${RUNS[$svc]}" -le "$want" ] \
      || say "info stack $1: service $svc runs ${RUNS[$svc]} containers, scaled by hand: this deploy brings it to $want (scale: {$svc: ${RUNS[$svc]}} in hosts.yml keeps them)"
  done
}
