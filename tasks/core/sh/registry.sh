# shellcheck shell=bash
# The GHCR token: checked, read and used on the VPS only. It goes from the secrets file to docker's (or
# curl's) stdin through bash builtins: never an argument of a process, never in output.
# shellcheck disable=SC2034,SC2154  # globals shared across files; SECRETS, REGISTRY, REGISTRY_USER, GITHUB_API and R_* come from the program's head

# check_secrets: the token file is there and only root reads it (file 600, folder 700), or refuse.
check_secrets() {
  say "step secrets checking $SECRETS"
  [ -f "$SECRETS" ] || die "$R_REFUSED" "secrets file $SECRETS is missing: create it with 'export GITHUB_TOKEN=...' (chmod 600)"
  local mode dmode; mode=$(stat -c %a "$SECRETS"); dmode=$(stat -c %a "$(dirname "$SECRETS")")
  [ "${mode: -2}" = 00 ] || die "$R_REFUSED" "secrets file $SECRETS is readable by others (mode $mode): chmod 600 it"
  [ "${dmode: -2}" = 00 ] || die "$R_REFUSED" "secrets folder $(dirname "$SECRETS") is open to others (mode $dmode): chmod 700 it"
}

# read_token FILE: GITHUB_TOKEN from the seed's "export GITHUB_TOKEN=..." line (quotes and CRLF tolerated);
# fails when there is no such line.
read_token() {
  GITHUB_TOKEN=$(env_value "$1" GITHUB_TOKEN)
  [ -n "$GITHUB_TOKEN" ]
}

# registry_login: docker login to REGISTRY with the token of the secrets file, given on stdin.
registry_login() {
  say "step login logging in to $REGISTRY as $REGISTRY_USER (token from the secrets file)"
  read_token "$SECRETS" || die "$R_REFUSED" "secrets file $SECRETS has no 'export GITHUB_TOKEN=...' line"
  local out
  if ! out=$(printf '%s' "$GITHUB_TOKEN" | docker login -u "$REGISTRY_USER" --password-stdin -- "$REGISTRY" 2>&1); then
    unset GITHUB_TOKEN
    die "$R_LOGIN" "docker login to $REGISTRY failed: $(printf '%s' "$out" | tail -n 1)"
  fi
  probe_token_start
  unset GITHUB_TOKEN
  chmod 600 "$HOME/.docker/config.json" 2>/dev/null || true
}

# registry_logout: docker logout of REGISTRY after the pulls (registry.logout): no credential stays.
registry_logout() {
  say "step logout docker logout $REGISTRY (registry.logout: the stored credentials go)"
  docker logout -- "$REGISTRY" >/dev/null 2>&1 || true
}

# try_login CONFIG_DIR: docker login with GITHUB_TOKEN into a throw-away config (the real login is untouched);
# LOGIN_ERROR says why it failed.
try_login() {
  local out
  out=$(printf '%s' "$GITHUB_TOKEN" | DOCKER_CONFIG=$1 docker login -u "$REGISTRY_USER" --password-stdin -- "$REGISTRY" 2>&1) \
    || { LOGIN_ERROR=$(printf '%s' "$out" | tail -n 1); return 1; }
}

# probe_token_start: ask GitHub about GITHUB_TOKEN in the background while the deploy runs (no added latency);
# probe_token_report gives the answer at the end.
probe_token_start() {
  [ -n "$GITHUB_API" ] || return 0
  PROBE=$(mktemp) || return 0
  TMP_FILES+=("$PROBE")
  (printf 'Authorization: token %s\n' "$GITHUB_TOKEN" | curl --globoff -sS -m 8 -o /dev/null -D - -H @- "$GITHUB_API/user" > "$PROBE" 2>/dev/null) &
}
probe_token_report() {
  [ -n "${PROBE:-}" ] || return 0
  wait
  api_headers < "$PROBE"
}

# api_headers: GitHub's answer (HTTP headers on stdin) as one @@data api line: status, expiry, scopes.
api_headers() {
  local line status="" expiry="" scopes="" has_scopes=0
  while IFS= read -r line; do
    line=${line%$'\r'}
    case ${line,,} in
      http*) status=${line#* }; status=${status%% *} ;;
      github-authentication-token-expiration:*) expiry=${line#*:}; expiry=${expiry# } ;;
      x-oauth-scopes:*) scopes=${line#*:}; scopes=${scopes# }; has_scopes=1 ;;
    esac
  done
  [ -n "$status" ] || return 0
  data api status "$status" expiry "$expiry" scopes "$scopes" has_scopes "$has_scopes"
}
