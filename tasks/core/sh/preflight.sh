# shellcheck shell=bash
# preflight: before anything that runs is stopped, each stack's compose file must resolve with this release's
# pins, name only external networks and volumes that exist, and not take a container name or start on a new,
# empty volume while a hand-started copy of the stack holds that name or the data (taking over a VPS: takeover.sh).
# Every problem of every stack is reported at once; nothing has been changed when it refuses.
# Globals: STACKS, SPEC_*, PINS (stacks.sh); OWN_PROJECTS (every compose project the tool runs on this host);
# PROBLEMS (what preflight found).
# shellcheck disable=SC2034,SC2154  # globals shared across files; R_* and OWN_PROJECTS come from the program's head

# compose_config STACK: `docker compose config` of STACK as this release will run it (its pin in the
# environment, which wins over the .env that is only rewritten when the stack goes live); warnings on stderr.
compose_config() {
  stack_pins "$1" new >&2 || return 1
  env "${STACK_PINS[@]}" docker compose -p "${SPEC_PROJECT[$1]}" -f "${SPEC_COMPOSE[$1]}" config
}

# compose_objects: from `docker compose config` (canonical YAML: sections at column 0, entries at 2 spaces,
# their fields at 4, a service's list items at 6) the lines "network NAME external|own", "volume KEY NAME
# external|own", "container NAME SERVICE", "published SERVICE PORT", "image SERVICE REF", "healthcheck
# SERVICE", "drain SERVICE" (its healthcheck names /tmp/drain), "start_period SERVICE" (its healthcheck has
# one), "mount SERVICE KEY rw|ro" (a named volume a service mounts), "bind SERVICE PATH" (a host folder or file
# it mounts), "replicas SERVICE N" (deploy.replicas), "build SERVICE" (compose builds its image).
compose_objects() {
  awk '
    function flush() {
      if (key != "" && sec == "networks") print "network", name, ext
      if (key != "" && sec == "volumes") print "volume", key, name, ext
      key = ""
    }
    function mounted() {
      if (mtype == "volume" && src != "") print "mount", service, src, (ro ? "ro" : "rw")
      if (mtype == "bind" && src != "") print "bind", service, src
      mtype = ""; src = ""; ro = 0
    }
    { gsub(/"/, "") }
    /^[^ ]/ { mounted(); flush(); sec = $1; sub(/:$/, "", sec); next }
    sec == "services" && /^  [^ ]/ { mounted(); service = $1; sub(/:$/, "", service); next }
    sec == "services" && /^    [^ ]/ { mounted(); field = $1 }
    sec == "services" && field == "volumes:" && /^      - type: / { mounted(); mtype = $3; next }
    mtype != "" && /^        source: / { src = $2 }
    mtype != "" && /^        read_only: true$/ { ro = 1 }
    sec == "services" && /^    container_name: / { print "container", $2, service; next }
    sec == "services" && /^        published: / { print "published", service, $2; next }
    sec == "services" && /^    image: / { print "image", service, $2; next }
    sec == "services" && /^    build:/ { print "build", service; next }
    sec == "services" && /^    healthcheck:/ { print "healthcheck", service; next }
    sec == "services" && field == "healthcheck:" && /\/tmp\/drain/ { print "drain", service }
    sec == "services" && field == "healthcheck:" && /^      start_period: / { print "start_period", service }
    sec == "services" && field == "deploy:" && /^      replicas: / { print "replicas", service, $2 }
    (sec == "networks" || sec == "volumes") && /^  [^ ]/ { flush(); key = $1; sub(/:$/, "", key); name = key; ext = "own"; next }
    key != "" && /^    name: / { name = $2 }
    key != "" && /^    external: true$/ { ext = "external" }
    END { mounted(); flush() }'
}

problem() { PROBLEMS+=("stack $1: $2"); }

# require_healthchecks STACK: preflight refuses a service of STACK's pinned images without a healthcheck.
require_healthchecks() { declare -gA STRICT; STRICT[$1]=1; }

# single STACK SERVICE WHY: a service that can run once only (WHY) must not be given replicas, nor be started
# beside its old container.
single() {
  local word
  for word in ${SPEC_SCALE[$1]:-}; do
    if [ "${word%%=*}" = "$2" ] && [ "${word#*=}" -gt 1 ]; then
      problem "$1" "service $2 $3: it cannot run ${word#*=} replicas (scale: in hosts.yml)"
    fi
  done
  ! rolls "$1" "$2" || problem "$1" "service $2 $3: rollout: start-first runs its new container beside the old one (let the proxy reach it instead, or use rollout: stop-first)"
}

# shared_mount STACK SERVICE VOLUME rw|ro: a start-first service must not write a named volume while its new
# container writes it too (two PostgreSQLs on one volume corrupt it), unless hosts.yml allows that one.
shared_mount() {
  rolls "$1" "$2" && [ "$4" = rw ] || return 0
  case ${SPEC_SHARED[$1]} in *" $3 "*) return 0 ;; esac
  problem "$1" "service $2 writes volume $3: with rollout: start-first the old and the new container would both write it (list it in rollout.shared_volumes if they safely can, or use rollout: stop-first)"
}

# image_healthcheck IMAGE: the test of the healthcheck IMAGE brings itself (JSON), empty when it has none.
image_healthcheck() {
  docker image inspect --format '{{if .Config.Healthcheck}}{{json .Config.Healthcheck.Test}}{{end}}' "$1" 2>/dev/null
}

# start_first_healthchecks STACK: with start-first, a new container takes traffic once Docker calls it healthy,
# so every service that rolls needs a healthcheck (in the compose file or its image); behind Traefik an old one
# leaves the pool once that healthcheck fails on /tmp/drain (drain_out), so it must. A compose healthcheck
# without start_period is said (not refused): a new container that starts slower than its retries allow is
# called unhealthy and the release refused.
start_first_healthchecks() {
  local svc test
  for svc in "${!IMAGES[@]}"; do
    rolls "$1" "$svc" || continue
    [ -z "${CHECKED[$svc]:-}" ] || [ -n "${STARTS[$svc]:-}" ] \
      || say "info stack $1: service $svc's healthcheck has no start_period: with rollout: start-first a new container that starts slower than its retries allow is called unhealthy and the release refused"
    if [ -n "${CHECKED[$svc]:-}" ]; then test=${DRAINS[$svc]:+/tmp/drain}; test=${test:-its own}
    else test=$(image_healthcheck "${IMAGES[$svc]}"); fi
    case $test in
      "") problem "$1" "service $svc has no healthcheck: rollout: start-first puts a new container in the proxy's pool once Docker calls it healthy; add one to its compose service" ;;
      */tmp/drain*) ;;
      *) [ -z "${SPEC_NGINX[$1]:-}" ] || continue   # (nginx: the tool takes it out of the upstream block)
         problem "$1" "service $svc: its healthcheck must fail while /tmp/drain exists, so that rollout: start-first can take an old container out of the proxy's pool before it stops (e.g. test: [CMD-SHELL, \"test ! -f /tmp/drain && wget -q -O /dev/null http://127.0.0.1:8080/health\"])" ;;
    esac
  done
}

# check_stack STACK CONTAINERS CONFIG: the stack's config (CONFIG.out, .err, .rc: compose_config's output,
# errors and exit code), external networks and volumes, new volumes, names.
check_stack() {
  local s=$1 cfg err=$3.err kind a b c sum
  NAMES=()
  declare -gA IMAGES=() CHECKED=() DRAINS=() BINDS=() STARTS=() RUNS=() DEPLOY_REPLICAS=() BUILT=()
  if [ "$(cat "$3.rc" 2>/dev/null)" != 0 ]; then
    problem "$s" "docker compose config fails: $(grep -v '^[[:space:]]*$' "$err" | tail -n 1 | grep . || echo 'no message')"
    return 0
  fi
  cfg=$(cat "$3.out")
  sum=$(sha256sum < "$3.out") && RENDERED[$s]=${sum%% *}
  sed -n -E 's/.*The \\?"([A-Za-z_][A-Za-z0-9_]*)\\?" variable is not set.*/\1/p' "$err" | sort -u \
    | while read -r a; do data unset stack "$s" variable "$a"; done
  while read -r kind a b c; do
    case $kind in
      network) [ "$b" != external ] || docker network inspect "$a" >/dev/null 2>&1 \
                 || problem "$s" "external network $a does not exist (fab setup creates it)" ;;
      volume) if [ "$c" = external ]; then
                docker volume inspect "$b" >/dev/null 2>&1 || problem "$s" "external volume $b does not exist"
              else check_volume "$s" "$a" "$b"; fi ;;
      container) NAMES+=("$a"); single "$s" "$b" "sets container_name $a" ;;
      published) single "$s" "$a" "publishes host port $b" ;;
      image) IMAGES[$a]=$b ;;
      healthcheck) CHECKED[$a]=1 ;;
      drain) DRAINS[$a]=1 ;;
      start_period) STARTS[$a]=1 ;;
      replicas) DEPLOY_REPLICAS[$a]=$b ;;
      build) BUILT[$a]=1 ;;
      mount) shared_mount "$s" "$a" "$b" "$c" ;;
      bind) BINDS[$a]+=" $b " ;;
    esac
  done < <(printf '%s\n' "$cfg" | compose_objects)
  check_running "$s" "$2"
  scaled_by_hand "$s"
  if [ -z "${SPEC_APPS[$s]}" ]; then
    for a in "${!IMAGES[@]}"; do [ -n "${BUILT[$a]:-}" ] || UNPINNED_IMAGES+=("${IMAGES[$a]}"); done
  fi
  pinned_images "$s"
  [ "${STRICT[$s]:-}" != 1 ] || check_healthchecks "$s"
  start_first_healthchecks "$s"
  check_nginx_pool "$s"
  check_jobs "$s"
}

# pinned_images STACK: each image line of an app's repository runs that app's pin, and no other image does.
# With image: on a compose file of two images that read one variable (seed 002's own file), the second would
# be started with the first one's digest; an image line that does not read its app's variable would run
# whatever tag it names, not the release.
pinned_images() {
  local svc ref name word app var pin repo
  declare -gA REPO_OF
  for word in ${SPEC_APPS[$1]}; do
    app=${word%%=*} var=${word#*=}
    pin=${PINS[$app]:-} repo=${REPO_OF[$app]:-}
    if [ -z "$pin" ] || [ -z "$repo" ]; then continue; fi
    for svc in "${!IMAGES[@]}"; do
      ref=${IMAGES[$svc]} name=$(image_name "${IMAGES[$svc]}")
      if [[ $ref == *":$pin" ]] && [ "$name" != "$repo" ]; then
        problem "$1" "service $svc would run $name with the digest of app $app (its image line reads \$$var too): give each image its own variable (\${OTHER_TAG:?}) and list both under images: in hosts.yml, e.g. images: {$app: {image: $repo, tag_var: $var}, ${name##*/}: {image: $name, tag_var: OTHER_TAG}}"
      elif [ "$name" = "$repo" ] && [[ $ref != *":$pin" ]]; then
        problem "$1" "service $svc runs $ref, not app $app's release: its image line must read the variable, e.g. image: $repo:\${$var:?set by fab deploy}"
      fi
    done
  done
}

# check_nginx_pool STACK: with rollout.nginx, nginx and the services it proxies to are services of STACK, and
# nginx mounts the folder the tool writes their upstream blocks to.
check_nginx_pool() {
  local svc folder word
  declare -gA SPEC_NGINX SPEC_POOL_DIR SPEC_UPSTREAMS
  [ -n "${SPEC_NGINX[$1]:-}" ] || return 0
  svc=${SPEC_NGINX[$1]} folder=${SPEC_POOL_DIR[$1]}
  for word in ${SPEC_UPSTREAMS[$1]} "$svc="; do
    [ -n "${IMAGES[${word%%=*}]:-}" ] || problem "$1" "rollout.nginx names service ${word%%=*}, which its compose file does not have"
  done
  [ -z "${IMAGES[$svc]:-}" ] || [[ ${BINDS[$svc]:-} == *" $folder "* ]] \
    || problem "$1" "service $svc (nginx) must mount $folder, where the tool writes the upstream blocks its nginx.conf includes (e.g. volumes: [./${folder##*/}:/etc/nginx/upstreams:ro])"
}

# check_healthchecks STACK: with require_healthcheck, every service that runs one of the stack's pinned images
# has a healthcheck (in the compose file or in the image): otherwise the gate could only see it start.
check_healthchecks() {
  local svc pin
  stack_pins "$1" new || return 0
  for svc in "${!IMAGES[@]}"; do
    [ -z "${CHECKED[$svc]:-}" ] || continue
    for pin in "${STACK_PINS[@]}"; do
      [[ ${IMAGES[$svc]} == *":${pin#*=}" ]] || continue
      [ -n "$(image_healthcheck "${IMAGES[$svc]}")" ] \
        || problem "$1" "service $svc has no healthcheck (require_healthcheck: true): add one to its compose service"
    done
  done
}

# render_start STACK...: each STACK's `compose config` (~0.1 s of CPU) started in the background, its output,
# warnings and status kept under RENDER_DIR for check_stack. A deploy starts the stacks that pin nothing before
# its pulls (their rendering waits for none); preflight_check starts the rest.
render_start() {
  local s
  declare -gA RENDERING
  if [ -z "${RENDER_DIR:-}" ]; then
    RENDER_DIR=$(mktemp -d) || die "$R_FAILED" "cannot create a temporary folder"
    TMP_FILES+=("$RENDER_DIR")
  fi
  for s in "$@"; do
    if ! is_compose "$s" || [ -n "${RENDERING[$s]:-}" ]; then continue; fi
    { compose_config "$s" > "$RENDER_DIR/$s.out" 2> "$RENDER_DIR/$s.err"; echo $? > "$RENDER_DIR/$s.rc"; } &
    RENDERING[$s]=$! TMP_WRITERS+=("$!")
  done
}

# preflight_check: every stack checked (one look at the containers for all); PROBLEMS says what would refuse.
preflight_check() {
  local s containers what="compose config with this release's pins, its networks, volumes and names"
  [[ " ${SPEC_KIND[*]:-} " != *" swarm "* ]] || what="docker stack config with this release's pins, its images and ports"
  say "step preflight each stack's $what"
  PROBLEMS=() UNPINNED_IMAGES=()
  declare -gA STRICT RENDERED=()
  render_start "${STACKS[@]}"
  containers=$(docker ps -a \
    --format '{{.Names}}|{{.Label "com.docker.compose.project"}}|{{.Label "com.docker.compose.project.working_dir"}}|{{.Label "com.docker.compose.service"}}|{{.State}}' 2>/dev/null) \
    || die "$R_FAILED" "docker ps failed: is docker running?"
  [ -z "${RENDERING[*]:-}" ] || wait "${RENDERING[@]}" || true   # (each status is in its .rc file)
  for s in "${STACKS[@]}"; do
    if is_compose "$s"; then check_stack "$s" "$containers" "$RENDER_DIR/$s"; else does "$s" check; fi
  done
}

# preflight_stacks: any problem refuses the deploy, all of them named, before anything that runs is stopped;
# then the images of the stacks the tool does not pin are made present.
preflight_stacks() {
  preflight_check
  [ "${#PROBLEMS[@]}" = 0 ] || die "$R_REFUSED" "preflight: $(printf '%s; ' "${PROBLEMS[@]}")nothing was changed"
  fetch_missing
}

# fetch_missing: the images of the stacks the tool does not pin (Traefik, PostgreSQL: UNPINNED_IMAGES) that the
# host lacks are pulled now (one look when it has them all): an image tag the registry lacks is a failed pull
# (exit 4, nothing changed), not a `compose up` that fails once the old containers are gone, whose restore
# fails the same way.
fetch_missing() {
  local ref out
  [ -n "${UNPINNED_IMAGES[*]:-}" ] || return 0
  ! docker image inspect --format '{{.Id}}' "${UNPINNED_IMAGES[@]}" >/dev/null 2>&1 || return 0
  for ref in $(printf '%s\n' "${UNPINNED_IMAGES[@]}" | sort -u); do
    ! docker image inspect --format '{{.Id}}' "$ref" >/dev/null 2>&1 || continue
    say "info $ref is not on the host: pulling it before anything stops"
    out=$(docker pull "$ref" 2>&1) \
      || die "$R_PULL" "pull of $ref failed: $(printf '%s' "$out" | tail -n 1): nothing was changed"
  done
}

# preflight_report: --dry-run's look: what preflight finds, reported; nothing refused, locked or changed.
preflight_report() {
  local p
  preflight_check
  for p in "${PROBLEMS[@]}"; do data problem text "$p"; done
}
