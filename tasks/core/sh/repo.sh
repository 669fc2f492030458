# shellcheck shell=bash
# repo/ cloned by setup from the system's repo: in hosts.yml. Over SSH the VPS logs in with a deploy key of its
# own (made here once; the private key never leaves the host) and trusts only the git server's key pinned in
# hosts.yml; both are named in repo/'s git config (core.sshCommand), so deploy --ref fetches the same way. A
# clone is made aside and moved into place whole; a repo/ that exists is never replaced.
# shellcheck disable=SC2034,SC2154  # globals shared across files; R_* come from the program's head

# repo_key KEY: the deploy key KEY (ed25519, no passphrase, root's only), made where missing; its public half
# reported.
repo_key() {
  local made=kept
  install -d -m 700 "$(dirname "$(dirname "$1")")" "$(dirname "$1")" || die "$R_FAILED" "cannot create $(dirname "$1")"
  if [ ! -f "$1" ]; then
    ssh-keygen -q -t ed25519 -N "" -C "fab deploy key of $(hostname 2>/dev/null || echo the VPS)" -f "$1" </dev/null >/dev/null 2>&1 \
      || die "$R_FAILED" "ssh-keygen could not make the deploy key $1"
    made=created
  fi
  data deploy_key path "$1" public "$(cat "$1.pub")" result "$made"
}

# repo_clone FOLDER URL REF KEY KNOWN_HOST: FOLDER (repo/) cloned from URL at REF (KEY the deploy key, KNOWN_HOST the pinned
# known_hosts line; "" for https), or, when repo/ is a checkout of URL already, kept as it is with its git
# config pointed at KEY. A failure names its reason and leaves nothing behind.
repo_clone() {
  local repo=$1 url=$2 ref=$3 key=$4 known=$5 ssh="" origin out commit tmp
  if [ -n "$known" ]; then
    atomic_write "${key%/*}/known_hosts" printf '%s\n' "$known" || die "$R_FAILED" "cannot write ${key%/*}/known_hosts"
    ssh="ssh -i $key -o IdentitiesOnly=yes -o UserKnownHostsFile=${key%/*}/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes"
  fi
  if [ -e "$repo/.git" ]; then
    origin=$(git -C "$repo" remote get-url origin 2>/dev/null)
    [ "$origin" = "$url" ] || die "$R_REFUSED" "$repo is a checkout of $(printf '%q' "${origin:-nothing}"), hosts.yml says $url: nothing was changed"
    [ -z "$ssh" ] || git -C "$repo" config core.sshCommand "$ssh" || die "$R_FAILED" "cannot set $repo's core.sshCommand"
    data repo result kept url "$url" commit "$(git -C "$repo" rev-parse HEAD 2>/dev/null)"
    return 0
  fi
  [ ! -e "$repo" ] || die "$R_REFUSED" "$repo exists and is not a git checkout: move it aside (the tool never deletes it), then run setup again"
  say "step repo cloning $url at $ref"
  tmp="${repo%/}.clone.$$"
  TMP_FILES+=("$tmp")
  out=$(GIT_SSH_COMMAND="${ssh:-ssh}" git clone --quiet --no-checkout ${ssh:+--config "core.sshCommand=$ssh"} -- "$url" "$tmp" 2>&1) \
    || die "$R_PULL" "cloning $url failed: $(clone_reason "$out" "$key")"
  commit=$(resolve_ref "$tmp" "$ref") \
    || die "$R_REFUSED" "$ref is not a branch, tag or commit of $url: nothing was cloned"
  out=$(git -C "$tmp" checkout --quiet --detach "$commit" 2>&1) || die "$R_FAILED" "git checkout of $ref failed: $out"
  mv "$tmp" "$repo" || die "$R_FAILED" "cannot move the clone to $repo"
  data repo result cloned url "$url" commit "$commit"
}

# clone_reason OUTPUT KEY: what git's OUTPUT means for the operator (the deploy key KEY not yet added, the
# host key not the pinned one, the server unreachable, no such repository), else its last line.
clone_reason() {
  case $1 in
    *"Permission denied (publickey"*)
      printf 'the git server refused the deploy key: add it to the repository as a read-only deploy key, then run setup again: %s' "$(cat "$2.pub" 2>/dev/null)" ;;
    *"Host key verification failed"*|*"host key is known"*|*"HOST IDENTIFICATION HAS CHANGED"*)
      printf "the git server's host key is not the git_host_key of hosts.yml (check it against what the server's owner publishes)" ;;
    *"Could not resolve hostname"*|*"Connection refused"*|*"Connection timed out"*|*"No route to host"*|*"Network is unreachable"*)
      printf 'cannot reach the git server: %s' "$(printf '%s' "$1" | grep -m1 -E 'ssh:|fatal:')" ;;
    *"does not appear to be a git repository"*|*"Repository not found"*|*"not found"*)
      printf 'no such repository on the git server (or the deploy key may not read it)' ;;
    *) printf '%s' "$(printf '%s' "$1" | tail -n 1)" ;;
  esac
}
