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
  new_token_usable
  [ "${REVOKE:-}" != 1 ] || old_token_kept "$cfg"
  say "step replace renaming it over $SECRETS (mode 600)"
  { chmod 600 "$tmp" && mv -f "$tmp" "$SECRETS"; } || die "$R_FAILED" "could not rename the new token file into place"
  unset GITHUB_TOKEN
  atomic_write "$STATE/token-rotated" now || say "info could not record the rotation time in $STATE/token-rotated"
  registry_login
  [ -z "${OLD_TOKEN:-}" ] || revoke_old
  RESULT=ok
  say ok
}

# new_token_usable: what GitHub says of the new token (GITHUB_API: a GHCR token) refuses one that has expired or
# cannot read packages, before it replaces anything, and is reported (@@data api: its expiry, warned of when
# near); GitHub not answering refuses nothing (the login proved it).
new_token_usable() {
  local headers why
  [ -n "$GITHUB_API" ] || return 0
  say "step ask GitHub about the new token ($GITHUB_API/user: its expiry and scopes)"
  headers=$(printf 'Authorization: token %s\n' "$GITHUB_TOKEN" | curl --globoff -sS -m 10 -o /dev/null -D - -H @- "$GITHUB_API/user" 2>/dev/null) \
    || { say "info GitHub did not answer: its expiry and scopes are unknown"; return 0; }
  if why=$(token_unusable <<< "$headers"); then
    unset GITHUB_TOKEN
    die "$R_REFUSED" "the new token $why (GitHub says so): the old token file and login are unchanged"
  fi
  api_headers <<< "$headers"
}

# old_token_kept CONFIG: rotate-token --revoke-old: the old token (OLD_TOKEN) is kept to revoke once the new one
# has also pulled: each image the running release pins (state/current, APP_REPOS) pulled by digest with the new
# login (CONFIG). Nothing pulled (no release yet), the same token again, or no old token: nothing is revoked.
old_token_kept() {
  local key app pin word repo pulled=0 out
  OLD_TOKEN=$(env_value "$SECRETS" GITHUB_TOKEN 2>/dev/null)
  if [ -z "$OLD_TOKEN" ] || [ "$OLD_TOKEN" = "$GITHUB_TOKEN" ]; then
    OLD_TOKEN=""; say "info no other old token to revoke"; return 0
  fi
  [[ $OLD_TOKEN =~ ^${TOKEN_RE}$ ]] || { OLD_TOKEN=""; say "info the old token file holds no token the tool sends anywhere: not revoked"; return 0; }
  say "step prove the new token pulls the running release's images (by digest, with the new login)"
  while read -r key app pin; do
    [ "$key" = pin ] || continue
    for word in ${APP_REPOS:-}; do
      [ "${word%%=*}" = "$app" ] || continue
      repo=${word#*=}
      out=$(DOCKER_CONFIG=$1 docker pull -q "$repo@${pin#*@}" 2>&1) \
        || { OLD_TOKEN=""; unset GITHUB_TOKEN; die "$R_LOGIN" "the new token cannot pull $repo@${pin#*@} ($(tail -n 1 <<< "$out")): the old token file and login are unchanged"; }
      pulled=$((pulled + 1))
    done
  done < <(cat "$STATE/current" 2>/dev/null)
  [ "$pulled" -gt 0 ] || { OLD_TOKEN=""; say "info no running release to pull, so the new token is not proven to pull: the old one is not revoked (revoke it on GitHub once a deploy worked)"; }
}

# revoke_old: the old token sent to GitHub's credentials-revoke API (on curl's stdin, over GITHUB_API), once the
# new one replaced it; its answer reported (revoked: 202; 000 with curl's exit code when none came: a
# certificate the VPS does not trust ends the connection before the token is sent). A failure leaves the
# rotation as it is.
revoke_old() {
  local code failed=0
  say "step revoke the old token ($GITHUB_API/credentials/revoke)"
  code=$(printf '{"credentials":["%s"]}' "$OLD_TOKEN" | curl --globoff -sS -m 10 -o /dev/null -w '%{http_code}' \
    -X POST -H 'Content-Type: application/json' -H 'Accept: application/vnd.github+json' --data-binary @- \
    "$GITHUB_API/credentials/revoke" 2>/dev/null) || { failed=$?; code=000; }
  OLD_TOKEN=""
  data revoked status "$code" curl "$failed"
  if [ "$code" = 202 ]; then say ok; else say "fail GitHub answered $code: the old token may still work"; fi
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
