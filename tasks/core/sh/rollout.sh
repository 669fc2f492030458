# shellcheck shell=bash
# Rollout start-first (rollout: start-first in hosts.yml): each service's new containers start beside the old
# ones and get traffic only once healthy; the old ones are drained out of the proxy's pool before they stop.
# Globals: SPEC_* (stacks.sh), SPEC_START (stack -> "DRAIN BATCH").
# shellcheck disable=SC2034,SC2154  # globals shared across files; TMP_FILES and R_* come from the program's head

# service_containers PROJECT SERVICE: the ids of SERVICE's running containers, oldest first.
service_containers() {
  docker ps -q --filter "label=com.docker.compose.project=$1" --filter "label=com.docker.compose.service=$2" \
    --filter label=com.docker.compose.oneoff=False | tac
}

# roll STACK: `up` of a start-first stack (rollout: start-first): each service's new containers start beside
# the old ones (`up --no-recreate --scale`), a batch at a time; only once they are healthy (Docker's
# healthcheck: the proxy sends them nothing before) are old ones drained and removed. New containers that do
# not become healthy are removed and the old ones were never stopped. Then a plain `up` (nothing left to
# recreate; other services, orphans). Compose's and the wait's words on stdout.
roll() {
  local s=$1 svc services
  services=$(docker compose -p "${SPEC_PROJECT[$s]}" -f "${SPEC_COMPOSE[$s]}" config --services 2>&1) \
    || { printf '%s\n' "$services"; return 1; }
  for svc in $services; do roll_service "$s" "$svc" || return 1; done
  compose_up "$s"
}

# roll_service STACK SERVICE: SERVICE's containers replaced by its replicas of this configuration, BATCH
# (rollout.batch; 0: all) at a time, each old one drained before it stops. Leftovers of an interrupted
# rollout (more containers than replicas) are drained and removed too.
roll_service() {
  local s=$1 svc=$2 project=${SPEC_PROJECT[$1]} want batch started=0 k running going id
  local -a outgoing fresh
  mapfile -t outgoing < <(service_containers "$project" "$svc")
  [ "${#outgoing[@]}" != 0 ] || return 0   # nothing runs yet: the plain up starts it
  want=$(replicas "$s" "$svc"); batch=${SPEC_START[$s]#* }
  [ "$batch" -gt 0 ] || batch=$want
  while [ "$started" -lt "$want" ]; do
    k=$(( want - started < batch ? want - started : batch ))
    running=$(service_containers "$project" "$svc" | tr '\n' ' ')
    docker compose -p "$project" -f "${SPEC_COMPOSE[$s]}" up -d --no-deps --no-recreate \
      --scale "$svc=$(( $(wc -w <<< "$running") + k ))" "$svc" 2>&1 || return 1
    fresh=()
    for id in $(service_containers "$project" "$svc"); do
      case " $running " in *" $id "*) ;; *) fresh+=("$id") ;; esac
    done
    [ "${#fresh[@]}" != 0 ] || { printf 'compose started no new %s container\n' "$svc"; return 1; }
    if ! wait_healthy "$s" "${fresh[@]}"; then
      docker rm -f "${fresh[@]}" >/dev/null 2>&1
      printf 'the new %s containers were removed before any traffic reached them\n' "$svc"
      return 1
    fi
    started=$(( started + k ))
    going=$(( ${#outgoing[@]} - (want - started) ))   # old ones that may go now (all once the last batch is up)
    [ "$going" -le 0 ] || { drain_out "$s" "${outgoing[@]:0:going}"; outgoing=("${outgoing[@]:going}"); }
  done
}

# drain_out STACK ID...: take old containers out of the proxy's pool, then stop and remove them: each is told
# to drain (/tmp/drain copied in, which its healthcheck fails on), Docker calls it unhealthy (so Traefik drops it), the
# proxy gets DRAIN seconds (rollout.drain) to apply that, and `docker stop` gives in-flight requests the
# service's stop_grace_period.
drain_out() {
  local s=$1 id deadline flag
  shift
  if ! { flag=$(mktemp -d) && TMP_FILES+=("$flag") && mkdir -m 1777 "$flag/tmp" && : > "$flag/tmp/drain"; }; then
    printf 'cannot make the drain file\n'; return 1
  fi
  for id in "$@"; do   # (docker cp: an image may have no shell, even no /tmp)
    docker cp "$flag/." "$id:/" >/dev/null 2>&1 || printf 'could not tell container %s to drain\n' "$id"
  done
  deadline=$(( $(date +%s) + ${SPEC_WAIT[$s]} ))
  for id in "$@"; do
    until [ "$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id" 2>/dev/null)" = unhealthy ] \
        || [ "$(date +%s)" -ge "$deadline" ]; do sleep 0.2; done
  done
  sleep "${SPEC_START[$s]%% *}"
  docker stop "$@" >/dev/null 2>&1
  docker rm -f "$@" >/dev/null 2>&1 || true
}
