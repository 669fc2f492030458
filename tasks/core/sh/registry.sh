# shellcheck shell=bash
# The GHCR token: checked, read and used on the VPS only. It goes from the secrets file to docker's (or
# curl's) stdin through bash builtins: never an argument of a process, never in output.
# A per-deploy token (PER_DEPLOY=1: registry.token per-deploy, --token-env) arrives on stdin instead, lives in
# this program's memory and a temporary docker config until the pulls are done, and nothing of it stays.
# shellcheck disable=SC2034,SC2154  # globals shared across files; SECRETS, PER_DEPLOY, REGISTRY, REGISTRY_USER, GITHUB_API and R_* come from the program's head

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

# receive_token: this run's registry token, the line that follows the program on stdin, kept in DEPLOY_TOKEN
# (never exported: no child process sees it) until the pulls are done (registry_logout).
receive_token() {
  say "step receive reading this run's registry token from the SSH channel (this host keeps none)"
  IFS= read -r DEPLOY_TOKEN || die "$R_REFUSED" "no registry token arrived on standard input: nothing was changed"
  [ -n "$DEPLOY_TOKEN" ] || die "$R_REFUSED" "an empty registry token arrived: nothing was changed"
}

# the_token: GITHUB_TOKEN for this run's pulls: the one received (PER_DEPLOY), else the secrets file's; fails
# when there is none.
the_token() {
  if [ "${PER_DEPLOY:-}" = 1 ]; then
    GITHUB_TOKEN=${DEPLOY_TOKEN:-}
    [ -n "$GITHUB_TOKEN" ]
  else
    [ -n "${SECRETS:-}" ] && read_token "$SECRETS"
  fi
}

# login_config: a per-deploy login's own docker config folder (mode 700; in memory where /dev/shm is), exported
# as DOCKER_CONFIG for the pulls; it goes at registry_logout or however the program ends (on_exit), and one a
# killed program left is removed by a later login. docker's CLI plugins (compose) are still found.
login_config() {
  local shm=/dev/shm dir
  [ -d "$shm" ] && [ -w "$shm" ] || shm=${TMPDIR:-/tmp}
  find "$shm" -maxdepth 1 -type d -name 'fab-vps-login.*' -mmin +120 -exec rm -rf {} + 2>/dev/null
  dir=$(mktemp -d "$shm/fab-vps-login.XXXXXX") || die "$R_FAILED" "cannot create a temporary docker config in $shm"
  TMP_FILES+=("$dir")
  [ ! -d "$HOME/.docker/cli-plugins" ] || ln -s "$HOME/.docker/cli-plugins" "$dir/cli-plugins"
  export DOCKER_CONFIG=$dir
}

# registry_login: docker login to REGISTRY, the token given on stdin: the secrets file's into root's docker
# config, or this run's (PER_DEPLOY) into a temporary one.
registry_login() {
  if [ "${PER_DEPLOY:-}" = 1 ]; then
    say "step login logging in to $REGISTRY as $REGISTRY_USER (this run's token, into a temporary docker config)"
    login_config
  else
    say "step login logging in to $REGISTRY as $REGISTRY_USER (token from the secrets file)"
  fi
  if ! the_token; then
    [ "${PER_DEPLOY:-}" != 1 ] || die "$R_REFUSED" "this run's registry token is gone"
    die "$R_REFUSED" "secrets file $SECRETS has no 'export GITHUB_TOKEN=...' line"
  fi
  local out
  if ! out=$(printf '%s' "$GITHUB_TOKEN" | docker login -u "$REGISTRY_USER" --password-stdin -- "$REGISTRY" 2>&1); then
    unset GITHUB_TOKEN
    token_gate
    die "$R_LOGIN" "docker login to $REGISTRY failed: $(printf '%s' "$out" | tail -n 1)"
  fi
  unset GITHUB_TOKEN
  chmod 600 "${DOCKER_CONFIG:-$HOME/.docker}/config.json" 2>/dev/null || true
}

# registry_logout: after the pulls, no credential stays: this run's token and temporary docker config go
# (PER_DEPLOY), or docker logout of REGISTRY (registry.logout).
registry_logout() {
  if [ "${PER_DEPLOY:-}" = 1 ]; then
    say "step logout removing this run's token and temporary docker config"
    rm -rf -- "${DOCKER_CONFIG:?}"
    unset DOCKER_CONFIG DEPLOY_TOKEN
    return 0
  fi
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

# probe_token_start: a deploy asks GitHub about the token file's token in the background, beside its login and
# pulls (no added latency): token_gate reads the answer before anything changes, probe_token_report at the end.
probe_token_start() {
  [ -n "$GITHUB_API" ] && the_token || return 0
  PROBE=$(mktemp) || return 0
  TMP_FILES+=("$PROBE")
  (printf 'Authorization: token %s\n' "$GITHUB_TOKEN" | curl --globoff -sS -m 8 -o /dev/null -D - -H @- "$GITHUB_API/user" > "$PROBE" 2>/dev/null) &
  PROBE_PID=$!
  unset GITHUB_TOKEN
}
probe_token_report() {
  [ -n "${PROBE:-}" ] || return 0
  wait "$PROBE_PID" 2>/dev/null
  api_headers < "$PROBE"
}

# token_gate: GitHub's answer about the token (probe_token_start's) refuses the run, before anything that runs
# has changed, when the token has expired or cannot read packages: its pulls would fail, or work only until a
# cache empties; the message says what to run. An answer that is not 200 (GitHub unreachable, a registry
# whose token GitHub does not know) refuses nothing.
token_gate() {
  local why
  [ -n "${PROBE:-}" ] || return 0
  wait "$PROBE_PID" 2>/dev/null
  why=$(token_unusable < "$PROBE") || return 0
  [ "${PER_DEPLOY:-}" != 1 ] || die "$R_REFUSED" "this run's registry token $why (GitHub says so): nothing was changed; bring a valid one (--token-env NAME, --token-command CMD or at a prompt)"
  die "$R_REFUSED" "the registry token in $SECRETS $why (GitHub says so): nothing was changed; put a new one on this host with 'fab rotate-token' (--token-env NAME, --token-command CMD or at a prompt)"
}

# token_unusable: from GitHub's answer about a token (HTTP headers on stdin), why it cannot pull (it expired,
# or lacks read:packages); fails when it can (or when the answer says nothing: not a 200).
token_unusable() {
  local ends
  read_api_headers
  [ "$API_STATUS" = 200 ] || return 1
  if [ -n "$API_EXPIRY" ] && ends=$(date -u -d "$API_EXPIRY" +%s 2>/dev/null) && [ "$ends" -le "$(date +%s)" ]; then
    printf 'expired on %s' "$API_EXPIRY"; return 0
  fi
  if [ "$API_HAS_SCOPES" = 1 ] && [[ ", $API_SCOPES," != *", read:packages,"* ]]; then
    printf 'lacks read:packages (its scopes: %s)' "${API_SCOPES:-none}"; return 0
  fi
  return 1
}

# api_headers: GitHub's answer (HTTP headers on stdin) as one @@data api line: status, expiry, scopes.
api_headers() {
  read_api_headers
  [ -n "$API_STATUS" ] || return 0
  data api status "$API_STATUS" expiry "$API_EXPIRY" scopes "$API_SCOPES" has_scopes "$API_HAS_SCOPES"
}

# read_api_headers: GitHub's answer about a token (HTTP headers on stdin) in API_STATUS, API_EXPIRY (its
# expiration header; empty: it never expires), API_SCOPES and API_HAS_SCOPES (1: the header is there).
read_api_headers() {
  local line
  API_STATUS="" API_EXPIRY="" API_SCOPES="" API_HAS_SCOPES=0
  while IFS= read -r line; do
    line=${line%$'\r'}
    case ${line,,} in
      http*) API_STATUS=${line#* }; API_STATUS=${API_STATUS%% *} ;;
      github-authentication-token-expiration:*) API_EXPIRY=${line#*:}; API_EXPIRY=${API_EXPIRY# } ;;
      x-oauth-scopes:*) API_SCOPES=${line#*:}; API_SCOPES=${API_SCOPES# }; API_HAS_SCOPES=1 ;;
    esac
  done
}
