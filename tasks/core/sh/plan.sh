# shellcheck shell=bash
# The plan: what a deploy (or a rollback) would do, read without changing anything: nothing locked, pulled,
# logged in to or written. Each app's pin now and after (a tag's digest asked of the registry with a HEAD of its
# manifest, as a pull would pin it), and each stack brought up or left as it runs (the deploy's own `unchanged`
# over preflight's rendering with those pins). Preflight's problems are reported, not fatal.
# Globals: WANTED, PINS, REPO_OF (images.sh), STACKS, SPEC_* (stacks.sh), PROBLEMS (preflight.sh).
# shellcheck disable=SC2034,SC2154  # globals shared across files; SECRETS, REGISTRY_USER and R_* come from the program's head

# registry_digest REPO TAG: the digest the registry gives TAG of REPO now (the one a pull pins), from a HEAD of
# its manifest; nothing is pulled. Where the registry wants a bearer token (GHCR), one is asked for first. The
# credentials (the token file's, when there is one) reach curl in a config on a pipe, never as an argument.
# Fails with why on stdout.
registry_digest() {
  local server=${1%%/*} url head realm service scope bearer ca=()
  url="https://$server/v2/${1#*/}/manifests/$2"
  [ ! -f "/etc/docker/certs.d/$server/ca.crt" ] || ca=(--cacert "/etc/docker/certs.d/$server/ca.crt")
  head=$(manifest_head "$url" "${ca[@]}" -K <(registry_basic)) || { printf '%s' "$head"; return 1; }
  if [[ ${head,,} == *"www-authenticate: bearer "* ]]; then
    realm=$(auth_param realm <<< "$head") service=$(auth_param service <<< "$head") scope=$(auth_param scope <<< "$head")
    bearer=$(curl -fsS --max-time 10 "${ca[@]}" -K <(registry_basic) -G --data-urlencode "service=$service" \
      --data-urlencode "scope=$scope" "$realm" 2>&1 | sed -n -E 's/.*"(access_)?token" *: *"([^"]+)".*/\2/p' | head -n 1)
    [ -n "$bearer" ] || { printf 'the registry gave no token for %s' "$1"; return 1; }
    head=$(manifest_head "$url" "${ca[@]}" -K <(printf 'header = "Authorization: Bearer %s"\n' "$bearer")) \
      || { printf '%s' "$head"; return 1; }
  fi
  head=$(sed -n -E 's/^docker-content-digest: *(sha256:[0-9a-f]{64}).*/\1/Ip' <<< "$head")
  [ -n "$head" ] || { printf 'the registry names no digest for %s:%s' "$1" "$2"; return 1; }
  printf '%s' "$head"
}

# manifest_head URL CURL-OPTION...: the response headers of a HEAD of the manifest URL (every kind a pull
# accepts); fails on anything but 200 or a 401 that asks for a bearer token, saying what the registry said.
manifest_head() {
  local out code
  out=$(curl -sS -I --max-time 10 "${@:2}" -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' "$1" 2>&1) \
    || { printf 'the registry does not answer: %s' "$(tail -n 1 <<< "$out")"; return 1; }
  out=${out//$'\r'/} code=$(head -n 1 <<< "$out" | cut -d' ' -f2)
  case $code in
    200) printf '%s' "$out" ;;
    401) [[ ${out,,} == *"www-authenticate: bearer "* ]] || { printf 'the registry refuses the token (401)'; return 1; }
         printf '%s' "$out" ;;
    404) printf 'the registry has no such tag (404)'; return 1 ;;
    *) printf 'the registry answers %s' "$code"; return 1 ;;
  esac
}

# auth_param NAME: NAME's value in the WWW-Authenticate header on stdin (realm="...").
auth_param() { grep -i '^www-authenticate:' | grep -o -E "$1=\"[^\"]*\"" | head -n 1 | cut -d'"' -f2; }

# registry_basic: curl's config line with the registry user and this run's token (nothing when the
# system needs no token); printf is a builtin, so the token is in no process's arguments.
registry_basic() {
  the_token 2>/dev/null || return 0
  printf 'user = "%s:%s"\n' "$REGISTRY_USER" "$GITHUB_TOKEN"
}

# plan_pins: each app's pin after the run (a recorded pin as it is; a tag's digest as the registry gives it now)
# in PINS, reported beside the pin it runs now. A digest the registry does not give leaves a stand-in (its
# stack is said to come up) and why.
plan_pins() {
  local i app repo tag pin digest why
  declare -gA PINS
  for (( i = 0; i < ${#WANTED[@]}; i += 4 )); do
    app=${WANTED[i]} repo=${WANTED[i+1]} tag=${WANTED[i+2]} pin=${WANTED[i+3]} why=""
    if [ -z "$pin" ]; then
      if digest=$(registry_digest "$repo" "$tag"); then pin=$tag@$digest
      else why=$digest pin=$tag@sha256:$(printf '0%.0s' {1..64}); fi
    fi
    PINS[$app]=$pin
    data plan_pin app "$app" now "$(current_pin "$app")" after "${why:+$tag}${why:-$pin}" why "$why"
  done
}

# plan_stacks: each stack brought up or left as it runs, as the deploy would decide (a stack whose apps' pins
# move, or that `unchanged` does not vouch for, is brought up; a binary whose pin moves is restarted), and
# what preflight would refuse.
plan_stacks() {
  local s problem
  preflight_check
  for s in "${STACKS[@]}"; do
    if is_binary "$s"; then
      if [ "${PINS[$s]:-}" = "$(current_pin "$s")" ]; then data plan_stack stack "$s" action kept
      else data plan_stack stack "$s" action up; fi
    elif ! is_compose "$s" || pins_moved "$s" || ! unchanged "$s"; then
      data plan_stack stack "$s" action up
    else
      data plan_stack stack "$s" action kept
    fi
  done
  for problem in ${PROBLEMS[@]+"${PROBLEMS[@]}"}; do data problem text "$problem"; done
}
