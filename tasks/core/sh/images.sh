# shellcheck shell=bash
# Images: pull by tag or by recorded digest, all at once, and the pin (tag@digest) each app runs in this release.
# Globals: PINS (app -> tag@digest of this release; an app is one image the tool pins, named in hosts.yml),
# WANTED (the images add_image asked for, four words each), REPO_OF (app -> its image's repository).
# shellcheck disable=SC2034,SC2154  # globals shared across files; STATE, PIN_RE and R_* come from the program's head

# valid_pin VALUE: VALUE is tag@sha256:digest (PIN_RE, the tool's own grammar, comes with the program). Every
# pin that reaches PINS or a .env is checked: one read back from a file may be damaged.
valid_pin() { [[ $1 =~ ^${PIN_RE}$ ]]; }

# use_pin APP TAG@DIGEST: the image this release runs for APP.
use_pin() {
  valid_pin "$2" || die "$R_FAILED" "refusing a damaged pin for $1: $2"
  declare -gA PINS
  PINS[$1]=$2
  data pin app "$1" pin "$2"
}

# digest_of_pull REPO TAG: the digest a `docker pull` reported (stdin), else the one the image store knows.
digest_of_pull() {
  local digest
  digest=$(sed -n 's/^Digest: \(sha256:[0-9a-f]\{64\}\)$/\1/p' | tail -n 1)
  [ -n "$digest" ] || digest=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$1:$2" \
    | after_prefix "$1@" | grep -m 1 -x -E 'sha256:[0-9a-f]{64}')
  [ -n "$digest" ] && printf '%s\n' "$digest"
}

# pull_image REPO TAG PIN: make an image present and print the pin it runs as. With a TAG, pull it (a
# re-pushed tag is picked up) and pin the digest it has now; with a PIN (a rollback, or an app this deploy
# keeps), the recorded digest. Fails with docker's last line on stderr.
pull_image() {
  local repo=$1 tag=$2 pin=$3 out digest
  if [ -n "$pin" ]; then
    docker image inspect "$repo@${pin#*@}" >/dev/null 2>&1 && { printf '%s\n' "$pin"; return 0; }
    out=$(docker pull "$repo@${pin#*@}" 2>&1) || { printf 'pull of %s failed: %s\n' "$repo@${pin#*@}" "$(printf '%s' "$out" | tail -n 1)" >&2; return 1; }
    printf '%s\n' "$pin"
  else
    out=$(docker pull "$repo:$tag" 2>&1) || { printf 'pull of %s failed: %s\n' "$repo:$tag" "$(printf '%s' "$out" | tail -n 1)" >&2; return 1; }
    digest=$(printf '%s\n' "$out" | digest_of_pull "$repo" "$tag") || { printf 'no digest for %s after the pull\n' "$repo:$tag" >&2; return 1; }
    printf '%s@%s\n' "$tag" "$digest"
  fi
}

# add_image APP REPO TAG PIN: an image this release runs (see pull_image), in WANTED; fetched by fetch_images.
# REPO_OF keeps each app's repository (preflight checks the image lines of the compose file against it).
add_image() {
  declare -gA REPO_OF
  WANTED+=("$1" "$2" "$3" "$4") REPO_OF[$1]=$2
}

# image_name REF: REF without its tag and digest (a registry's :port stays).
image_name() {
  local ref=${1%%@*}
  [[ ${ref##*/} != *:* ]] || ref=${ref%:*}
  printf '%s' "$ref"
}

# pull_line I REPO TAG PIN: pull_image as one line on stdout, "I ok PIN" or "I failed MESSAGE" (one short write
# to a pipe, so lines of pulls running at once never mix).
pull_line() {
  local out
  if out=$(pull_image "$2" "$3" "$4" 2>&1); then printf '%s ok %s\n' "$1" "${out##*$'\n'}"
  else out=${out##*$'\n'}; printf '%s failed %.300s\n' "$1" "${out:-the pull of $2 failed}"; fi
}

# pull_room: refuse the deploy (nothing pulled or changed yet) when the disk under Docker's root lacks room for
# the images it is about to pull: about twice their compressed size (layers are stored unpacked), and a margin
# of 256 MiB and a tenth. Skipped when that disk has 16 GiB free or more (no registry is asked then); an image
# the registry says nothing about counts for nothing (its pull says why it fails).
pull_room() {
  local i need=0 bytes why margin
  [ -n "${WANTED[*]:-}" ] || return 0
  docker_room
  [ -n "$DOCKER_ROOM" ] && [ "$DOCKER_ROOM" -lt $(( 16 << 30 )) ] || return 0
  while read -r bytes why; do
    need=$(( need + 2 * bytes ))
    [ -z "$why" ] || say "info $why"
  done < <(
    for (( i = 0; i < ${#WANTED[@]}; i += 4 )); do image_bytes "${WANTED[i+1]}" "${WANTED[i+2]}" "${WANTED[i+3]}" & done
    wait)
  margin=$(( (256 << 20) + need / 10 ))
  data space need "$need" avail "$DOCKER_ROOM"
  [ $(( need + margin )) -gt "$DOCKER_ROOM" ] || return 0
  die "$R_REFUSED" "not enough disk for this release's images under ${DOCKER_ROOT:-Docker root}: $(mib "$DOCKER_ROOM") MiB free, about $(mib "$need") MiB needed to pull and unpack them plus a margin of $(mib "$margin") MiB; nothing was pulled or changed: free space (fab prune --host HOST) and deploy again"
}

# mib BYTES: BYTES in MiB, rounded up.
mib() { printf '%s' $(( ($1 + (1 << 20) - 1) >> 20 )); }

# image_bytes REPO TAG PIN: the compressed size of the image's layers as the registry's manifest says (the
# host's architecture's, when it names several), 0 when the image is here already (by its digest); 0 and why
# on the same line when the registry cannot say (one line per image: the images are sized at once).
image_bytes() {
  local ref=$1:$2 out here
  if [ -n "$3" ]; then
    ref=$1@${3#*@}
    if docker image inspect "$ref" >/dev/null 2>&1; then echo 0; return 0; fi
  fi
  if ! out=$(docker manifest inspect -v "$ref" 2>&1); then
    printf '0 the registry does not say how large %s is: %s\n' "$ref" "$(tail -n 1 <<< "$out")"
    return 0
  fi
  here=$(docker image inspect --format '{{range .RepoDigests}}{{.}} {{end}}' "$ref" 2>/dev/null | grep -o -E 'sha256:[0-9a-f]{64}')
  if [ -n "$here" ] && grep -qF -f <(printf '%s\n' "$here") <<< "$out"; then echo 0; return 0; fi
  manifest_bytes "$(host_arch)" <<< "$out"
}

# manifest_bytes ARCH: the sum of the layer sizes `docker manifest inspect -v` (stdin) gives, for ARCH when it
# lists several platforms (else the largest).
manifest_bytes() {
  awk -v want="$1" '
    /"architecture":/ { arch = $2; gsub(/[",]/, "", arch) }
    /"layers": \[/ { layers = 1; next }
    layers && /^[[:space:]]*\]/ { layers = 0; next }
    layers && /"size":/ { size = $2; gsub(/,/, "", size); sum[arch] += size }
    END { if (want in sum) { print sum[want]; exit } for (a in sum) if (sum[a] > most) most = sum[a]; print most + 0 }'
}

# host_arch: the host's architecture as image platforms name it.
host_arch() {
  case $(uname -m) in x86_64) echo amd64 ;; aarch64) echo arm64 ;; armv7*) echo arm ;; *) uname -m ;; esac
}

# fetch_images: every added image made present at once (docker pulls in parallel), then pinned in order. The
# pulls answer through a pipe, not files: a full disk under STATE is no reason to refuse an image. Fail-closed:
# an image without its "ok" line (its pull killed) is a failed pull; the first failed one in order stops the
# program, and nothing that runs has changed yet.
fetch_images() {
  local i n what="" pin failed="" status rest
  local -a got=() why=()
  [ -n "${WANTED[*]:-}" ] || return 0
  pull_room
  for (( i = 0; i < ${#WANTED[@]}; i += 4 )); do
    pin=${WANTED[i+3]}
    what+="${what:+, }${WANTED[i]}: ${WANTED[i+1]}"
    if [ -n "$pin" ]; then what+="@${pin#*@} (recorded digest of ${pin%@*})"; else what+=":${WANTED[i+2]}"; fi
  done
  say "step pull $what"
  while read -r n status rest; do
    if [ "$status" = ok ]; then got[n]=$rest; else why[n]=$rest; fi
  done < <(for (( i = 0; i < ${#WANTED[@]}; i += 4 )); do
             pull_line "$((i / 4))" "${WANTED[i+1]}" "${WANTED[i+2]}" "${WANTED[i+3]}" &
           done; wait)
  for (( i = 0; i < ${#WANTED[@]}; i += 4 )); do
    [ -n "${got[i/4]:-}" ] || die "$R_PULL" "${why[i/4]:-the pull of ${WANTED[i+1]} failed}"
  done
  for (( i = 0; i < ${#WANTED[@]}; i += 4 )); do use_pin "${WANTED[i]}" "${got[i/4]}"; done
}

# fetch_stack STACK COMPOSE PROJECT: pull the missing images of a stack the tool does not pin (before a logout).
fetch_stack() {
  say "step pull $1: missing images of its compose file"
  local out; out=$(docker compose -p "$3" -f "$2" pull --quiet --policy missing 2>&1) \
    || die "$R_PULL" "pull of the $1 stack's images failed: $(printf '%s' "$out" | tail -n 1)"
}

# infra_digests: what the services that pin nothing run (postgres:15-alpine, traefik:v3), each once by digest,
# printed as JSON members ("stack/service":"image@sha256:..."), after those of the stacks this run left alone
# (UNTOUCHED_INFRA, as the running release recorded them): recorded with a good release, so a rollback runs
# the same. Three docker calls whatever the stacks. An image built on the host has no digest: left out. Run in
# a subshell by record: whatever goes wrong here costs the record, never the release.
infra_digests() {
  local s ids project service ref image digest out=${UNTOUCHED_INFRA:-}
  declare -A stack_of=() digests=() seen=()
  for s in "${STACKS[@]}"; do ! is_compose "$s" || stack_of[${SPEC_PROJECT[$s]}]=$s; done
  [ "${#stack_of[@]}" -gt 0 ] || { printf '%s' "$out"; return 0; }   # (binaries only: no docker to ask)
  ids=$(docker ps -aq --filter label=com.docker.compose.project --filter label=com.docker.compose.oneoff=False) \
    || return 1
  local -a found=()
  [ -z "$ids" ] || mapfile -t found < <(xargs docker inspect --format '{{index .Config.Labels "com.docker.compose.project"}} {{index .Config.Labels "com.docker.compose.service"}} {{.Config.Image}} {{.Image}}' <<< "$ids")
  while read -r image digest; do [ -z "$image" ] || digests[$image]=$digest; done < <(
    for s in "${found[@]}"; do printf '%s\n' "${s##* }"; done | sort -u | grep . \
      | xargs -r docker image inspect --format '{{.Id}} {{range .RepoDigests}}{{.}} {{end}}')
  for s in "${found[@]}"; do
    read -r project service ref image <<< "$s"
    if [ -z "$project" ] || [ -z "$service" ] || [ -z "$image" ] || [ -z "${stack_of[$project]:-}" ] \
        || [[ $ref == *@* ]] || [ -n "${seen[$project/$service]:-}" ]; then continue; fi   # (a pin: the release's)
    digest=$(tr ' ' '\n' <<< "${digests[$image]:-}" | after_prefix "$(image_name "$ref")@" | grep -m 1 -x -E 'sha256:[0-9a-f]{64}')
    [ -n "$digest" ] || continue
    seen[$project/$service]=1
    out+="${out:+,}$(json_str "${stack_of[$project]}/$service"):$(json_str "$ref@$digest")"
  done
  printf '%s' "$out"
}

# infra_pin IMAGE@DIGEST: a rollback's: the image a service that pins nothing ran in the release it goes back
# to, pulled by digest where missing and tagged IMAGE again, so compose runs that digest, not what the tag
# names now.
infra_pin() {
  local ref=${1%@*} digest=${1##*@} name out
  [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || die "$R_FAILED" "refusing a damaged image record: $1"
  name=$(image_name "$ref")
  if ! docker image inspect "$name@$digest" >/dev/null 2>&1; then
    out=$(docker pull "$name@$digest" 2>&1) || die "$R_PULL" "pull of $name@$digest failed: $(tail -n 1 <<< "$out")"
  fi
  out=$(docker tag "$name@$digest" "$ref" 2>&1) || die "$R_FAILED" "cannot tag $name@$digest as $ref: $out"
}

# refresh_stack STACK: deploy --refresh infra: the images of STACK (one that pins nothing) pulled again, so
# what their tags name now runs (and is recorded).
refresh_stack() {
  say "step pull $1: its images again (--refresh infra)"
  local out; out=$(compose "$1" pull --quiet --policy always 2>&1) \
    || die "$R_PULL" "pull of the $1 stack's images failed: $(printf '%s' "$out" | tail -n 1)"
}
