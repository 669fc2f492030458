# shellcheck shell=bash
# Disk space back (fab prune, and prune: {keep} after a good deploy): a system's old app images, untagged
# images nothing names, stopped containers of the tool's projects, the build cache. Every image a release
# could roll back to stays: the digests of every system's running release and of its last KEEP good ones, read
# from the host's own history, and every image a container was made from. Each candidate is said (@@data
# pruned) with its size; with remove it goes, never forced (`docker image rm` refuses an image a container
# started using meanwhile).
# shellcheck disable=SC2154  # STATE and R_* come from the program's head

# prune_keep ROOT KEEP: PRUNE_KEEP, the digests no prune removes: those named by ROOT/*/state/current (each
# system's running release) and by the last KEEP good releases of each ROOT/*/state/releases.jsonl; and
# PRUNE_USED (prune_used). Fails when one of them cannot be read: then nothing is removed.
prune_keep() {
  local f text
  PRUNE_KEEP=""
  for f in "$1"/*/state/current "$1"/*/state/releases.jsonl; do
    [ -e "$f" ] || continue
    text=$(cat -- "$f" 2>&1) || { prune_fail "cannot read $f"; return 1; }
    [ "${f##*/}" = current ] || text=$(grep -F '"state":"good"' <<< "$text" | tail -n "$2")
    PRUNE_KEEP+=$(digests_in <<< "$text")$'\n'
  done
  prune_used
}

# prune_used: PRUNE_USED, the ids of the images containers (running or not) were made from; fails when they
# cannot be listed.
prune_used() {
  local ids
  ids=$(docker ps -aq --no-trunc 2>&1) || { prune_fail "cannot list the containers"; return 1; }
  PRUNE_USED=""
  [ -z "$ids" ] || PRUNE_USED=$(xargs docker inspect --format '{{.Image}}' <<< "$ids" 2>/dev/null) \
    || { prune_fail "cannot read which images the containers use"; return 1; }
}

# digests_in: the image digests (sha256:...) stdin names, one per line.
digests_in() { grep -o -E 'sha256:[0-9a-f]{64}' || true; }

# prune_images ROOT KEEP list|remove REPO...: the images of the REPOs (the system's apps) said one by one (kept:
# why; else the space they hold), and with remove removed. Nothing when the system has no good release yet
# (nothing is known to keep).
prune_images() {
  local root=$1 keep=$2 mode=$3 repo id facts size refs why
  shift 3
  grep -qF '"state":"good"' "$STATE/releases.jsonl" 2>/dev/null \
    || { say "info no good release recorded yet: its images are left as they are"; return 0; }
  prune_keep "$root" "$keep" || return 1
  for repo in "$@"; do
    while IFS= read -r id; do
      [ -n "$id" ] || continue
      facts=$(docker image inspect --format '{{.Size}} {{range .RepoDigests}}{{.}} {{end}} {{range .RepoTags}}{{.}} {{end}}' "$id" 2>/dev/null) \
        || continue   # (gone meanwhile)
      size=${facts%% *} refs=${facts#* } why=""
      if grep -qxF -- "$id" <<< "$PRUNE_USED"; then why="a container uses it"
      elif grep -qxF -f <(digests_in <<< "$PRUNE_KEEP") <<< "$(digests_in <<< "$refs")"; then why="a release keeps it"; fi
      prune_said image "$(image_ref "$repo" "$refs")" "$size" "$mode" "$why" docker image rm "$id"
    done < <(docker image ls --no-trunc --format '{{.ID}}' "$repo" | sort -u)
  done
}

# image_ref REPO REFS: the name an image is shown by: its first tag of REPO, else REPO@digest.
image_ref() {
  local ref
  for ref in $2; do [[ $ref != "$1:"* ]] || { printf '%s' "$ref"; return; }; done
  for ref in $2; do [[ $ref != "$1@"* ]] || { printf '%s' "$ref"; return; }; done
  printf '%s (untagged)' "$1"
}

# prune_said WHAT NAME BYTES list|remove WHY COMMAND...: one candidate said, and with remove COMMAND run (not
# when WHY says why it stays).
prune_said() {
  local what=$1 name=$2 bytes=$3 mode=$4 why=$5 out
  shift 5
  if [ -n "$why" ]; then data pruned what "$what" name "$name" bytes "$bytes" result kept why "$why"; return 0; fi
  if [ "$mode" != remove ]; then data pruned what "$what" name "$name" bytes "$bytes" result would; return 0; fi
  if out=$("$@" 2>&1); then data pruned what "$what" name "$name" bytes "$bytes" result gone
  else data pruned what "$what" name "$name" bytes "$bytes" result failed why "$(tail -n 1 <<< "$out")"; fi
}

# prune_untagged list|remove: images with neither a tag nor a digest (a build's leftovers; an image pulled by
# digest, a rollback target, has one) that no container uses.
prune_untagged() {
  local id facts
  prune_used || return 1
  while IFS= read -r id; do
    [ -n "$id" ] || continue
    facts=$(docker image inspect --format '{{.Size}} {{len .RepoDigests}} {{len .RepoTags}}' "$id" 2>/dev/null) || continue
    [ "${facts#* }" = "0 0" ] || continue
    grep -qxF -- "$id" <<< "$PRUNE_USED" && continue
    prune_said untagged "${id#sha256:}" "${facts%% *}" "$1" "" docker image rm "$id"
  done < <(docker image ls --no-trunc --filter dangling=true --format '{{.ID}}' | sort -u)
}

# prune_containers list|remove PROJECT...: the stopped containers (exited, created, dead) of the tool's
# compose PROJECTs; their volumes stay.
prune_containers() {
  local mode=$1 project id name
  shift
  for project in "$@"; do
    while read -r id name; do
      [ -n "$id" ] || continue
      prune_said container "$name" 0 "$mode" "" docker rm "$id"
    done < <(docker ps -a --no-trunc --filter "label=com.docker.compose.project=$project" --filter status=exited \
      --filter status=created --filter status=dead --format '{{.ID}} {{.Names}}')
  done
}

# prune_cache list|remove: the build cache; its size as docker says it (its own units).
prune_cache() {
  local out
  if [ "$1" != remove ]; then
    out=$(docker system df --format '{{.Type}}: {{.Reclaimable}}' 2>/dev/null | sed -n 's/^Build Cache: //p')
    data prune_cache size "${out:-0B}" result would
  elif out=$(docker builder prune -f 2>&1); then
    data prune_cache size "$(sed -n 's/^Total\( reclaimed space\)\{0,1\}: *//p' <<< "$out" | tail -n 1)" result gone
  else
    data prune_cache size 0B result failed
    say "info the build cache could not be pruned: $(tail -n 1 <<< "$out")"
  fi
}

# prune_after_deploy ROOT KEEP REPO...: prune: {keep} after a good deploy: its images pruned; a failure is
# said and never fails the deploy (which is live by now).
prune_after_deploy() {
  PRUNE_LATE=1
  prune_images "$@" || true
}

# prune_fail MESSAGE: what stops a prune before it removed anything: the program's error, or after a good
# deploy (PRUNE_LATE) a line saying so.
prune_fail() {
  [ "${PRUNE_LATE:-}" = 1 ] || die "$R_FAILED" "$1: nothing was pruned"
  say "info the old images were not pruned ($1): the release is live; run fab prune"
}
