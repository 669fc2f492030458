# shellcheck shell=bash
# The configuration a release runs with: the git commit of repo/ (when it is a checkout, with a dirty flag) and
# a hash of every compose file and .env it uses (hashes only: values never leave the host). --ref moves repo/
# to a commit of its origin before anything stops; a deploy that ends before its release is live, or whose
# release fails, puts repo/ back on the commit it was on.
# Globals: REPO and BASE (head), CONFIG (this release's configuration as JSON, for record), PREV_COMMIT and
# MOVED (what repo/ was on before checkout_ref moved it).
# shellcheck disable=SC2034,SC2154  # globals shared across files; REPO, BASE and R_* come from the program's head

is_checkout() { [ -e "$REPO/.git" ]; }

git_repo() { git -C "$REPO" "$@"; }

# repo_dirty: tracked files of repo/ changed since its commit (untracked ones, such as .env, do not count).
repo_dirty() { [ -n "$(git_repo status --porcelain --untracked-files=no 2>/dev/null)" ]; }

# resolve_ref FOLDER REF: the commit REF names in the checkout FOLDER: a branch of origin, a tag, or a commit.
resolve_ref() {
  git -C "$1" rev-parse --verify --quiet "refs/remotes/origin/$2^{commit}" \
    || git -C "$1" rev-parse --verify --quiet "$2^{commit}"
}

# checkout_ref REF: repo/ moved to REF, fetched from its origin unless it is a commit already there. Refused
# on a checkout with local changes (they would be mixed into the release, or lost).
checkout_ref() {
  local ref=$1 commit out
  say "step config moving repo/ to $ref"
  is_checkout || die "$R_REFUSED" "$REPO is not a git checkout, so it cannot be moved to $ref: nothing was changed"
  ! repo_dirty || die "$R_REFUSED" "$REPO has local changes to tracked files: commit or discard them first: nothing was changed"
  PREV_COMMIT=$(git_repo rev-parse --verify HEAD) || die "$R_FAILED" "cannot read the commit of $REPO"
  if ! [[ $ref =~ ^[0-9a-f]{40}$ ]] || ! git_repo cat-file -e "$ref^{commit}" 2>/dev/null; then
    out=$(git_repo fetch --quiet --tags origin 2>&1) || die "$R_PULL" "git fetch in $REPO failed: $(printf '%s' "$out" | tail -n 1): nothing was changed"
  fi
  commit=$(resolve_ref "$REPO" "$ref") || die "$R_REFUSED" "$ref is not a branch, tag or commit of $REPO's origin: nothing was changed"
  [ "$commit" = "$PREV_COMMIT" ] && { say "info repo/ is already on $ref ($commit)"; return 0; }
  out=$(git_repo checkout --quiet --detach "$commit" 2>&1) || die "$R_FAILED" "git checkout of $ref failed: $out"
  MOVED=1
  EXIT_HOOKS+=(undo_checkout)
  data config_moved from "$PREV_COMMIT" to "$commit"
}

# undo_checkout: repo/ back on the commit it was on before checkout_ref (the release did not go live).
undo_checkout() {
  [ "${MOVED:-0}" = 1 ] || return 0
  if git_repo checkout --quiet --detach "$PREV_COMMIT" 2>/dev/null; then
    MOVED=0
    say "info repo/ is back on $PREV_COMMIT"
  else
    say "info could not put repo/ back on $PREV_COMMIT: look at $REPO"
    return 1
  fi
}

# config_hash STACK FILE: sha256 of FILE; of a .env, without the lines the tool writes (the pins and the
# project name change with every release; the operator's values are what counts as configuration). A .env
# that does not exist yet hashes as an empty one: the tool creates it with only its own lines.
config_hash() {
  local word vars=()
  for word in ${SPEC_APPS[$1]}; do vars+=("${word#*=}"); done
  case $2 in
    */.env) env_lines_but "$2" "${vars[@]}" | sha256sum | cut -d' ' -f1 ;;
    *) sha256sum < "$2" | cut -d' ' -f1 ;;
  esac
}

# config_files STACK: the files a stack runs with: its compose file and .env, or a binary's unit file.
config_files() {
  if is_binary "$1"; then systemctl show -p FragmentPath --value "${BIN[$1:unit]}" 2>/dev/null
  else printf '%s\n%s\n' "${SPEC_COMPOSE[$1]}" "${SPEC_COMPOSE[$1:env]}"; fi
}

# config_snapshot [FILE SHA256]...: CONFIG becomes the commit of repo/ (and whether it has local changes) and the
# hash of each stack's compose file and .env (a binary's unit file), as this release is about to run them, and
# the given hashes of the files of the stacks it leaves alone (as the running release recorded them: what they
# run), so that the release names the whole system's configuration.
config_snapshot() {
  local s f key commit="" dirty=false files="" sep="" used
  declare -A seen=()
  if is_checkout && commit=$(git_repo rev-parse --verify HEAD 2>/dev/null); then
    ! repo_dirty || dirty=true
  fi
  for s in "${STACKS[@]}"; do
    mapfile -t used < <(config_files "$s")
    for f in "${used[@]}"; do
      [ -f "$f" ] || [ "${f##*/}" = .env ] || continue
      key=${f#"$BASE"/}
      [ -z "${seen[$key]:-}" ] || continue
      seen[$key]=1
      files+="$sep$(json_str "$key"):$(json_str "$(config_hash "$s" "$f")")"
      sep=","
    done
  done
  while [ $# -ge 2 ]; do
    [ -n "${seen[$1]:-}" ] || { seen[$1]=1; files+="$sep$(json_str "$1"):$(json_str "$2")"; sep=","; }
    shift 2
  done
  CONFIG=$(printf '{"commit":%s,"dirty":%s,"files":{%s}}' "$(json_str "$commit")" "$dirty" "$files")
  data_json config "$CONFIG"
}
