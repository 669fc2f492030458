# shellcheck shell=bash
# Rollout start-first (rollout: start-first in hosts.yml): each service's new containers start beside the old
# ones and get traffic only once healthy; the old ones are drained out of the proxy's pool before they stop.
# The pool is Traefik's (it routes to healthy containers only) or, with rollout.nginx, the upstream blocks the
# tool writes for nginx (pool_sync).
# Globals: SPEC_* (stacks.sh), SPEC_DRAIN, SPEC_BATCH (start_first), SPEC_NGINX and SPEC_POOL_DIR (nginx_pool),
# SPEC_UPSTREAMS (stack -> " SERVICE=PORT... ").
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
# recreate; other services, orphans). Behind nginx, only its upstreams roll, and its upstream blocks are
# written before (the file nginx needs to start) and after (the containers the plain up started). Compose's
# and the wait's words on stdout.
roll() {
  local s=$1 svc services="" word
  declare -gA SPEC_NGINX
  if [ -n "${SPEC_NGINX[$s]:-}" ]; then
    for word in ${SPEC_UPSTREAMS[$s]}; do services+=" ${word%%=*}"; done
    pool_sync "$s" || return 1
  else
    services=$(compose "$s" config --services 2>&1) \
      || { printf '%s\n' "$services"; return 1; }
  fi
  for svc in $services; do roll_service "$s" "$svc" || return; done   # (its code: 2 is a health failure)
  compose_up "$s" || return 1
  [ -z "${SPEC_NGINX[$s]:-}" ] || { wait_healthy "$s" && pool_sync "$s"; }
}

# roll_service STACK SERVICE: SERVICE's containers replaced by its replicas of this configuration, BATCH
# (rollout.batch; 0: all) at a time, each old one drained before it stops. Leftovers of an interrupted
# rollout (more containers than replicas) are drained and removed too.
roll_service() {
  local s=$1 svc=$2 project=${SPEC_PROJECT[$1]} want batch started=0 k running going id code
  local -a outgoing fresh
  mapfile -t outgoing < <(service_containers "$project" "$svc")
  [ "${#outgoing[@]}" != 0 ] || return 0   # nothing runs yet: the plain up starts it
  want=$(replicas "$s" "$svc"); batch=${SPEC_BATCH[$s]}
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
    wait_healthy "$s" "${fresh[@]}" || {
      code=$?   # (2: a health failure, passed on as one)
      docker rm -f "${fresh[@]}" >/dev/null 2>&1
      printf 'the new %s containers were removed before any traffic reached them\n' "$svc"
      return "$code"
    }
    [ -z "${SPEC_NGINX[$s]:-}" ] || pool_sync "$s" || return 1
    started=$(( started + k ))
    going=$(( ${#outgoing[@]} - (want - started) ))   # old ones that may go now (all once the last batch is up)
    [ "$going" -le 0 ] || { drain_out "$s" "${outgoing[@]:0:going}"; outgoing=("${outgoing[@]:going}"); }
  done
}

# drain_out STACK ID...: take old containers out of the proxy's pool (leave_pool), then stop and remove them:
# the proxy gets DRAIN seconds (rollout.drain) to apply that, and `docker stop` gives in-flight requests the
# service's stop_grace_period. Containers that could not leave the pool are not stopped. One that had to be
# killed (exit 137: it did not exit on SIGTERM within its grace period) is named: its requests may have been
# cut, and every rollout waits that long.
drain_out() {
  local s=$1 name code
  shift
  leave_pool "$s" "$@" || return 1
  sleep "${SPEC_DRAIN[$s]}"
  docker stop "$@" >/dev/null 2>&1
  while read -r name code; do
    [ "$code" != 137 ] || say "info $s: container ${name#/} did not exit on SIGTERM within its stop_grace_period and was killed: let the app finish its requests and exit on SIGTERM"
  done < <(docker inspect --format '{{.Name}} {{.State.ExitCode}}' "$@" 2>/dev/null)
  docker rm -f "$@" >/dev/null 2>&1 || true
}

# leave_pool STACK ID...: behind nginx, upstream blocks without these containers and nginx reloaded (its old
# workers finish their requests); behind Traefik, each is told to drain (/tmp/drain copied in, which its
# healthcheck fails on) and waited for until Docker calls it unhealthy, so Traefik drops it.
leave_pool() {
  local s=$1 id deadline flag
  shift
  [ -z "${SPEC_NGINX[$s]:-}" ] || { pool_sync "$s" "$@"; return; }
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
}

# pool_sync STACK [ID...]: for each service nginx proxies to, FOLDER/SERVICE.conf becomes an `upstream SERVICE`
# block of its healthy running containers (by name, Docker's DNS resolves it), but for the IDs leaving the
# pool; a block with none keeps nginx valid and answers 502. Where a block changed, each running nginx
# checks its configuration (`nginx -t`) and reloads gracefully. An nginx not started yet reads it on start.
pool_sync() {
  local s=$1 nginx folder word svc changed=0 text proxies proxy out
  shift
  nginx=${SPEC_NGINX[$s]} folder=${SPEC_POOL_DIR[$s]}
  mkdir -p "$folder" 2>/dev/null || { printf 'cannot create %s for the nginx upstreams\n' "$folder"; return 1; }
  for word in ${SPEC_UPSTREAMS[$s]}; do
    svc=${word%%=*}
    text=$(upstream_block "$s" "$svc" "${word#*=}" "$@") || { printf '%s\n' "$text"; return 1; }
    [ "$(cat "$folder/$svc.conf" 2>/dev/null)" != "$text" ] || continue
    if ! { atomic_write "$folder/$svc.conf" printf '%s\n' "$text" && chmod 644 "$folder/$svc.conf"; }; then
      printf 'cannot write %s\n' "$folder/$svc.conf"; return 1
    fi
    changed=1
  done
  [ "$changed" = 1 ] || return 0
  proxies=$(service_containers "${SPEC_PROJECT[$s]}" "$nginx") || { printf 'docker does not answer\n'; return 1; }
  for proxy in $proxies; do
    out=$(docker exec "$proxy" nginx -t -q 2>&1 && docker exec "$proxy" nginx -s reload 2>&1) \
      || { printf 'nginx (%s) did not take the new upstreams: %s\n' "$nginx" "${out//$'\n'/ }"; return 1; }
  done
}

# upstream_block STACK SERVICE PORT [ID...]: nginx's `upstream SERVICE` of SERVICE's healthy containers on PORT,
# but for the IDs. Fails when docker cannot say (a block missing healthy containers would turn users away).
upstream_block() {
  local s=$1 svc=$2 port=$3 ids have="" id name health leaving servers=""
  shift 3
  ids=$(service_containers "${SPEC_PROJECT[$s]}" "$svc") || { printf 'docker does not answer\n'; return 1; }
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086  # one container id per word
    have=$(docker inspect --format '{{.Id}} {{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' $ids 2>&1) \
      || { printf 'docker inspect of the %s containers failed: %s\n' "$svc" "${have//$'\n'/ }"; return 1; }
  fi
  while read -r id name health; do
    [ -n "$id" ] || continue   # (no container yet: an empty answer)
    [[ $name =~ ^/?[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] \
      || { printf 'docker named a %s container %q, not a name nginx can be given\n' "$svc" "$name"; return 1; }
    [ "$health" = healthy ] || continue
    for leaving in "$@"; do [[ $id != "$leaving"* ]] || continue 2; done
    servers+="    server ${name#/}:$port;"$'\n'
  done <<< "$have"
  [ -n "$servers" ] || servers=$'    server 127.0.0.1:9 down;   # none healthy: nginx answers 502\n'
  printf '# Written by fab at each rollout (rollout.nginx in hosts.yml): the healthy containers of %s.\n' "$svc"
  printf 'upstream %s {\n%s}\n' "$svc" "$servers"
}
