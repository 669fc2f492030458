# shellcheck shell=bash
# migrate-layout: move a live VPS from the old paths onto seed 001's hierarchy, with nothing lost.
# COPIES ("name<TAB>old<TAB>new"), OLD_PROJECTS ("project<TAB>workdir<TAB>files") and VOLUMES come from the
# program's head; markers under state/migration make a killed migration resumable.
# shellcheck disable=SC2034,SC2154  # globals shared across files; BASE, STATE, SYSTEM, OLD_REPO, COPIES, OLD_PROJECTS, VOLUMES and R_* come from the program's head

# manifest DIR: one hash over every entry's type, mode, owner, name, link target, and each file's size and
# checksum. A folder's own size is left out: ext4 never shrinks a folder that once held more entries, and
# `cp -a` does not reproduce it, so it would make a faithful copy look different.
manifest() {
  (cd "$1" && { find . \( -type d -printf '%y %m %U:%G - %l %p\n' \) -o -printf '%y %m %U:%G %s %l %p\n' | LC_ALL=C sort
                find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum; }) | sha256sum | cut -d' ' -f1
}

# overlapping OLD NEW: the two paths, symlinks resolved, are one folder or one lies inside the other (then a
# copy is a no-op and removing the old one deletes the new one).
overlapping() {
  local a b
  a=$(realpath -m -- "$1")/ b=$(realpath -m -- "$2")/
  case $a in "$b"*) return 0 ;; esac
  case $b in "$a"*) return 0 ;; esac
  return 1
}

only_empty_dirs() { [ -z "$(find "$1" -mindepth 1 -not -type d -print -quit 2>/dev/null)" ]; }

# migrated_already: a system already on the new layout ends the program here, with nothing to do.
migrated_already() {
  if [ -f "$STATE/migration/done" ]; then
    RESULT=noop
    say "info $SYSTEM is already on the new layout ($(cat "$STATE/migration/done")): nothing to do"
    data migrated at "$(cat "$STATE/migration/done")"
    exit 0
  fi
}

# refuse REASON: a reason the migration cannot go ahead: in REFUSALS, and an @@data refuse line (survey shows it).
refuse() { REFUSALS+=("$1"); data refuse reason "$1"; }

# migration_checks: every reason to refuse (refuse): survey reports them, the migration dies on them.
migration_checks() {
  local entry name src dst need=0 v
  lock_holder
  if [ "$HOLDING" != 1 ] && [ -n "$LOCK_INFO" ]; then
    if resumable_lock; then say "info resuming an interrupted migration ($LOCK_INFO)"
    else refuse "a deploy lock is held: $LOCK_INFO"; fi
  fi
  for entry in "${COPIES[@]}"; do
    IFS=$'\t' read -r name src dst <<< "$entry"
    # copied and verified by an interrupted run (its .env files may since have been re-pointed): done
    if [ -f "$STATE/migration/copied-$name" ] && [ -d "$dst" ]; then continue; fi
    if [ ! -d "$src" ]; then
      refuse "the old $name folder $src is missing"
      continue
    fi
    need=$(( need + $(du -sb "$src" | cut -f1) ))
    if overlapping "$src" "$dst"; then refuse "the old $name folder $src and its new place $dst are the same folder or inside each other"
    elif [ -e "$dst" ] && ! [ -d "$dst" ]; then refuse "$dst exists and is not a folder"
    elif [ -d "$dst" ] && ! only_empty_dirs "$dst" && [ "$(manifest "$dst")" != "$(manifest "$src")" ]; then
      refuse "$dst already holds other content than $src: move it aside first"
    fi
  done
  disk_room "$need" "$BASE" \
    || refuse "not enough free disk under $BASE: the copies need $need bytes (+10%), $ROOM_AVAIL are free"
  for v in "${VOLUMES[@]}"; do
    docker volume inspect "$v" >/dev/null 2>&1 || refuse "the named volume $v does not exist"
  done
}

# old_containers: the running containers of compose projects whose working folder is under the old repo,
# with the tag@digest each runs.
old_containers() {
  local c project workdir files service ref id digest tag pin
  for c in $(docker ps -q); do
    docker inspect --format '{{index .Config.Labels "com.docker.compose.project"}}	{{index .Config.Labels "com.docker.compose.project.working_dir"}}	{{index .Config.Labels "com.docker.compose.project.config_files"}}	{{index .Config.Labels "com.docker.compose.service"}}	{{.Config.Image}}	{{.Image}}' "$c"
  done | while IFS=$'\t' read -r project workdir files service ref id; do
    case "$workdir/" in "$OLD_REPO"/*) ;; *) continue ;; esac
    digest=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$id" | after_prefix "${ref%:*}@" | head -n 1)
    tag=${ref##*:}; case $ref in *@*) tag=${ref#*:}; tag=${tag%@*} ;; esac
    pin=""; [ -n "$digest" ] && [ "$tag" != "$ref" ] && pin="$tag@$digest"
    data old project "$project" workdir "$workdir" files "$files" service "$service" ref "$ref" pin "$pin"
  done
}

# survey: read-only. Is it migrated, what would be refused, what runs from the old paths, what an
# interrupted run saved, the volumes.
survey() {
  if [ -f "$STATE/migration/done" ]; then data migrated at "$(cat "$STATE/migration/done")"; return 0; fi
  migration_checks
  old_containers
  local line rest a b v
  if [ -f "$STATE/migration/plan" ]; then
    while IFS= read -r line; do
      rest=${line#* }
      case ${line%% *} in
        pin) data saved_pin app "${rest%% *}" pin "${rest#* }" ;;
        old) IFS=$'\t' read -r a b v <<< "$rest"; data saved_old project "$a" workdir "$b" files "$v" ;;
      esac
    done < "$STATE/migration/plan"
  fi
  for v in "${VOLUMES[@]}"; do
    data old_volume name "$v" info "$(docker volume inspect --format '{{.CreatedAt}} {{.Mountpoint}}' "$v" 2>/dev/null)"
  done
}

# migration_checks_or_die: the migration goes ahead only when nothing refuses it (every reason named).
migration_checks_or_die() {
  local all
  REFUSALS=()
  migration_checks
  all=$(printf '%s; ' "${REFUSALS[@]}")
  [ "${#REFUSALS[@]}" = 0 ] || die "$R_REFUSED" "refused before changing anything: ${all%; }"
  mkdir -p "$STATE/migration" || die "$R_FAILED" "cannot create $STATE/migration"
}

# save_plan LINE...: what was found before anything changes (pins, old stacks), for a resumed run.
save_plan() {
  atomic_write "$STATE/migration/plan" printf '%s\n' "$@" || die "$R_FAILED" "cannot write $STATE/migration/plan"
}

# copy_all: each old path of COPIES copied to its new place and verified against its manifest (a copy done
# before, by an interrupted run, is kept).
copy_all() {
  local entry name src dst want
  for entry in "${COPIES[@]}"; do
    IFS=$'\t' read -r name src dst <<< "$entry"
    say "step copy $name: $src -> $dst (verified: names, modes, owners, sizes, links, sha256)"
    if [ -f "$STATE/migration/copied-$name" ] && [ -d "$dst" ]; then say ok; continue; fi
    want=$(manifest "$src")
    if [ -d "$dst" ] && ! only_empty_dirs "$dst"; then
      [ "$(manifest "$dst")" = "$want" ] || die "$R_REFUSED" "$dst holds other content than $src"
    else
      rm -rf "$dst.migrating"; mkdir -p "$(dirname "$dst")"
      cp -a "$src" "$dst.migrating" || die "$R_FAILED" "copying $src failed: nothing old was touched"
      [ "$(manifest "$dst.migrating")" = "$want" ] || die "$R_FAILED" "the copy of $src differs from it: nothing old was touched"
      [ ! -d "$dst" ] || find "$dst" -depth -type d -empty -delete
      mv "$dst.migrating" "$dst" || die "$R_FAILED" "cannot move the verified copy to $dst"
    fi
    atomic_write "$STATE/migration/copied-$name" now || die "$R_FAILED" "cannot write the copy marker of $name"
    say ok
  done
}

# repoint_env ENV OLD NEW: values equal to OLD or under OLD/ now point under NEW (seed 001 step 4), each key
# reported. Exact string comparison in bash: the paths are data, never part of a sed or regex program.
repoint_env() {
  local env=$1 old=$2 new=$3 line key rest quote value out="" keys="" mode
  [ -f "$env" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    if [[ $line =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]]; then
      key=${BASH_REMATCH[1]}; rest=${BASH_REMATCH[2]}; quote=""; value=$rest
      case $rest in \"*\"|\'*\') quote=${rest:0:1}; value=${rest:1:${#rest}-2} ;; esac
      if [ "$value" = "$old" ] || [ "${value#"$old"/}" != "$value" ]; then
        line="$key=$quote$new${value#"$old"}$quote"; keys+=" $key"
      fi
    fi
    out+="$line"$'\n'
  done < "$env"
  [ -n "$keys" ] || return 0
  mode=$(stat -c %a "$env")
  atomic_write "$env" printf '%s' "$out" || die "$R_FAILED" "cannot rewrite $env"
  chmod "$mode" "$env"
  say "info $env:$keys now point under $new"
}

old_down() {
  local entry project workdir files
  for entry in "${OLD_PROJECTS[@]}"; do
    IFS=$'\t' read -r project workdir files <<< "$entry"
    say "step stop stopping the old stack $project (from $workdir)"
    docker compose -p "$project" down >/dev/null 2>&1 || say "fail could not take $project down"
  done
}

old_up() {
  local entry project workdir files args f x
  for entry in "${OLD_PROJECTS[@]}"; do
    IFS=$'\t' read -r project workdir files <<< "$entry"
    say "step restore starting the old stack $project again"
    args=(); IFS=, read -ra f <<< "$files"; for x in "${f[@]}"; do args+=(-f "$x"); done
    if (cd "$workdir" && docker compose -p "$project" "${args[@]}" up -d --wait --wait-timeout 120 >/dev/null 2>&1); then
      say ok
    else
      say "fail $project did not come back"
    fi
  done
}

# remove_old: after a completed migration, the old copies of COPIES deleted (each only once verified copied).
remove_old() {
  [ -f "$STATE/migration/done" ] || die "$R_REFUSED" "the migration of $SYSTEM is not complete: the old copies stay"
  local entry name src dst
  for entry in "${COPIES[@]}"; do
    IFS=$'\t' read -r name src dst <<< "$entry"
    [ -d "$src" ] || continue
    { [ -f "$STATE/migration/copied-$name" ] && [ -d "$dst" ]; } || die "$R_REFUSED" "$name was never copied to $dst: keeping $src"
    ! overlapping "$src" "$dst" || die "$R_REFUSED" "$src and $dst are the same folder or inside each other (symlinks resolved): nothing was removed"
    say "step remove removing the old $name copy $src"
    rm -rf "$src" || die "$R_FAILED" "could not remove all of $src"
    say ok
  done
}

volumes_state() {
  local v
  for v in "${VOLUMES[@]}"; do docker volume inspect --format '{{.Name}} {{.CreatedAt}} {{.Mountpoint}}' "$v"; done
}

# switch_over: old stacks down, new ones up in order on the same images (health-gated), volumes compared;
# on failure the new ones go down and the old ones come back from the old paths.
switch_over() {
  local vol_before t_down t_up ms s
  vol_before=$(volumes_state)
  t_down=$(date +%s%N)
  old_down
  if apply; then
    t_up=$(date +%s%N); ms=$(( (t_up - t_down) / 1000000 ))
    [ "$(volumes_state)" = "$vol_before" ] || say "fail named volumes changed"
    data switch switch_ms "$ms" volumes "$(volumes_state | tr '\n' ';')"
    record good
    write_current
    atomic_write "$STATE/migration/done" printf '%s switch time %sms\n' "$(now)" "$ms" \
      || die "$R_FAILED" "cannot write $STATE/migration/done"
    RESULT=ok
    say ok
    return 0
  fi
  say "info the new stacks failed: taking them down and bringing the old ones back"
  for s in "${STACKS[@]}"; do docker compose -p "${SPEC_PROJECT[$s]}" down >/dev/null 2>&1; done
  old_up
  record failed
  RESULT=rolled-back
  die "$R_ROLLED_BACK" "the new stacks failed their health gate; the old stacks run again from the old paths, which still hold everything"
}
