# shellcheck shell=bash
# Rotating the token and checking it. The new token arrives on stdin, after the program (never in argv).
# shellcheck disable=SC2034,SC2154  # globals shared across files; SECRETS, STATE, REGISTRY, GITHUB_API and R_* come from the program's head

# rotate_token: write the new token beside the old file (umask 077), prove it with a real docker login into a
# throw-away config, and only then rename it over the old file and refresh the login. On any failure the old
# file and login stay exactly as they were and the temporary files go (on_exit).
rotate_token() {
  local dir tmp cfg; dir=$(dirname "$SECRETS")
  say "step receive reading the new token from the SSH channel"
  IFS= read -r GITHUB_TOKEN || die "$R_REFUSED" "no token arrived on standard input: nothing was changed"
  [ -n "$GITHUB_TOKEN" ] || die "$R_REFUSED" "an empty token arrived: nothing was changed"
  if [ -d "$dir" ]; then
    local dmode; dmode=$(stat -c %a "$dir")
    [ "${dmode: -2}" = 00 ] || die "$R_REFUSED" "secrets folder $dir is open to others (mode $dmode): chmod 700 it"
  else  # umask 077: created 700
    mkdir -p "$dir" || die "$R_REFUSED" "cannot create $dir"
  fi
  say "step write writing it to a temporary file (umask 077) beside $SECRETS"
  tmp=$(mktemp "$dir/.github.new.XXXXXX") || die "$R_FAILED" "cannot create a temporary file in $dir"
  TMP_FILES+=("$tmp")
  { printf 'export GITHUB_TOKEN=%s\n' "$GITHUB_TOKEN" > "$tmp" && sync "$tmp" 2>/dev/null; } \
    || die "$R_FAILED" "cannot write the new token file beside $SECRETS: the old one is unchanged"
  say "step prove docker login to $REGISTRY with the new token (throw-away docker config)"
  cfg=$(mktemp -d) || die "$R_FAILED" "cannot create a temporary docker config"
  TMP_FILES+=("$cfg")
  try_login "$cfg" || { unset GITHUB_TOKEN; die "$R_LOGIN" "the new token was refused by $REGISTRY ($LOGIN_ERROR): the old token file and login are unchanged"; }
  say "step replace renaming it over $SECRETS (mode 600)"
  { chmod 600 "$tmp" && mv -f "$tmp" "$SECRETS"; } || die "$R_FAILED" "could not rename the new token file into place"
  unset GITHUB_TOKEN
  atomic_write "$STATE/token-rotated" now || say "info could not record the rotation time in $STATE/token-rotated"
  registry_login
  RESULT=ok
  say ok
}

# token_check: read-only. The token file's mode and age, a live login (throw-away config), and what the GitHub
# API says of the token (asked from here, so the token stays on the VPS).
token_check() {
  if [ ! -f "$SECRETS" ]; then data file missing 1; return 0; fi
  data file mode "$(stat -c %a "$SECRETS")" mtime "$(stat -c %Y "$SECRETS")" dir_mode "$(stat -c %a "$(dirname "$SECRETS")")"
  [ ! -f "$STATE/token-rotated" ] || data rotated at "$(cat "$STATE/token-rotated")"
  read_token "$SECRETS" || { data login result no-token-line; return 0; }
  local cfg; cfg=$(mktemp -d) && TMP_FILES+=("$cfg")
  if try_login "$cfg"; then data login result ok; else data login result failed error "$LOGIN_ERROR"; fi
  ask_github
}

# ask_github: what the GitHub API says of GITHUB_TOKEN (@@data api: its expiry and scopes, or unreachable),
# asked from here so the token stays on the VPS, then forgotten; nothing when GITHUB_API is empty (not GHCR).
ask_github() {
  [ -n "$GITHUB_API" ] || { unset GITHUB_TOKEN; return 0; }
  local headers
  headers=$(printf 'Authorization: token %s\n' "$GITHUB_TOKEN" | curl --globoff -sS -m 10 -o /dev/null -D - -H @- "$GITHUB_API/user" 2>/dev/null) \
    || { unset GITHUB_TOKEN; data api unreachable 1; return 0; }
  unset GITHUB_TOKEN
  printf '%s\n' "$headers" | api_headers
}

# token_expiry: fab doctor's question: the token file's token, as GitHub sees it (ask_github); nothing when the
# file is missing or holds no token line (check_token_file says so).
token_expiry() { if [ -f "$SECRETS" ] && read_token "$SECRETS"; then ask_github; fi; }
