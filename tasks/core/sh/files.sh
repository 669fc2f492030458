# shellcheck shell=bash
# Files and named volumes in the backups (backup: {paths, volumes} of a system): one backup per run, a folder
# BACKUPS/files-<UTC time> beside the database dumps taken in the same run, holding tree/<part>/ (a copy of each
# part: system/<path> for a path relative to the system's folder, host/<path> for an absolute one, volume/<name>
# for a named volume), FILES.sha256 (every file of the tree, read back from the copy), PARTS (part, files,
# bytes; tab-separated), SHA256SUMS and manifest.json. rsync copies each part with --link-dest against the
# previous files backup: a file unchanged since then is a hard link to its copy there, so a nightly backup
# costs the disk only what changed.
# Globals: PARTS (the parts, in order), PART_SRC (part -> path on the host, or "volume" for a named volume),
# PART_VOL (part -> the names the volume may have: compose's <project>_<name>, then the name itself).
# shellcheck disable=SC2034,SC2154  # globals shared across files; BACKUPS, SECRETS, KEYS, FILE_PART_RE and R_* come from the head

# add_path PART PATH: declare a path of the system's backups (PART: where in the tree; PATH: on the host).
add_path() {
  declare -gA PART_SRC
  PARTS+=("$1"); PART_SRC[$1]=$2
}

# add_volume PART NAME...: declare a named volume of the system's backups, by the names it may have.
add_volume() {
  declare -gA PART_SRC PART_VOL
  PARTS+=("$1"); PART_SRC[$1]=volume; PART_VOL[$1]="${*:2}"
}

# part_source PART: PART_DIR, the folder or file PART copies on this host (a volume's mount point), or
# PART_ERR saying why there is none (then it fails).
part_source() {
  local name found=() dir
  if [ "${PART_SRC[$1]}" != volume ]; then
    PART_DIR=${PART_SRC[$1]}
    [ -e "$PART_DIR" ] || { PART_ERR="$PART_DIR does not exist on this host"; return 1; }
    return 0
  fi
  for name in ${PART_VOL[$1]}; do
    dir=$(docker volume inspect -f '{{.Mountpoint}}' "$name" 2>/dev/null) && found+=("$name") && PART_DIR=$dir
  done
  case ${#found[@]} in
    1) return 0 ;;
    0) PART_ERR="no volume ${PART_VOL[$1]// / or } on this host" ;;
    *) PART_ERR="volumes ${found[*]} all match ${1#volume/}: name one of them in backup.volumes" ;;
  esac
  return 1
}

# volume_make PART: PART's volume made as compose makes it (named <project>_<name>, with its labels, so compose
# adopts it) for the one stack whose compose file declares it: a recovery fills it before the stack first
# starts. PART_DIR its mount point; PART_ERR says why not.
volume_make() {
  local v=${1#volume/} s found=() version project volumes
  for s in "${STACKS[@]}"; do
    ! is_binary "$s" || continue
    # (read whole, then searched: `compose ... | grep -q` under pipefail fails when grep ends before compose)
    volumes=$(compose "$s" config --volumes 2>/dev/null) || continue
    ! grep -qxF -- "$v" <<< "$volumes" || found+=("$s")
  done
  [ "${#found[@]}" = 1 ] || { PART_ERR="${#found[@]} stacks declare volume $v (one must, to make it)"; return 1; }
  project=${SPEC_PROJECT[${found[0]}]}
  version=$(docker compose version --short 2>/dev/null) || version=2
  say "step volume ${project}_$v made for stack ${found[0]}, as compose makes it"
  docker volume create --label "com.docker.compose.project=$project" --label "com.docker.compose.volume=$v" \
    --label "com.docker.compose.version=$version" "${project}_$v" >/dev/null \
    || { PART_ERR="cannot create volume ${project}_$v"; return 1; }
  part_source "$1"
}

# part_guard PART SOURCE: refuse a SOURCE that holds the backups or the secrets, or lies in them (an absolute
# path such as /root would copy each backup into the next, and the token off the VPS).
part_guard() {
  local there
  for there in "$BACKUPS" "$SECRETS" "$KEYS"; do
    case $there/ in "${2%/}"/*) die "$R_REFUSED" "backup of $1: $2 holds $there: name the folders around it instead" ;; esac
    case ${2%/}/ in "${there%/}"/*) die "$R_REFUSED" "backup of $1: $2 lies in $there: not copied into the backups" ;; esac
  done
}

# part_counts DIR: "FILES BYTES" of the regular files under DIR (or DIR itself, a file).
part_counts() { find "$1" -type f -printf '%s\n' | awk '{ n++; s += $1 } END { printf "%d %d", n, s }'; }

# files_take: a new verified backup of the system's files and volumes (PARTS): each part copied by rsync
# (unchanged files linked to the previous files backup), every file of the copy read back and checksummed.
files_take() {
  local part dir prev counts t0=$EPOCHREALTIME parts="" holds=""
  say "step backup files: ${PARTS[*]} copied into $BACKUPS, every file read back"
  command -v rsync >/dev/null 2>&1 || die "$R_REFUSED" "rsync is not installed on this host: 'fab bootstrap' installs it"
  prev=$(backup_names files | head -n 1)
  backup_open files
  dir=$BACKUPS/.partial-$BACKUP_NAME
  for part in "${PARTS[@]}"; do
    part_source "$part" || die "$R_BACKUP" "backup of $part: $PART_ERR; no backup was written"
    part_guard "$part" "$PART_DIR"
    part_copy "$PART_DIR" "$dir/tree/$part" "${prev:+$BACKUPS/$prev/tree/$part}" \
      || die "$R_BACKUP" "copying $PART_DIR failed: $DUMP_ERR; no backup was written"
    counts=$(part_counts "$dir/tree/$part")
    printf '%s\t%s\t%s\n' "$part" "${counts% *}" "${counts#* }" >> "$dir/PARTS"
    parts+="${parts:+,}{\"part\":$(json_str "$part"),\"files\":${counts% *},\"bytes\":${counts#* }}"
    holds+="${holds:+ }$part"
  done
  (cd "$dir" && find tree -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum -- > FILES.sha256) \
    || die "$R_BACKUP" "cannot read back the copy in $dir (disk full?); no backup was written"
  backup_close files "$t0" "\"databases\":[],\"parts\":[$parts],\"verified\":\"every file read back and checksummed (FILES.sha256)\"" "$holds"
}

# part_copy SOURCE DEST PREVIOUS: SOURCE (a folder's content, or a file) copied to DEST with owners, modes and
# times, files unchanged since PREVIOUS (the same part in the previous backup; "" for none) linked to it.
part_copy() {
  local link=()
  mkdir -p "${2%/*}" || { DUMP_ERR="cannot create ${2%/*}"; return 1; }
  if [ -d "$1" ]; then
    [ -z "$3" ] || [ ! -d "$3" ] || link=(--link-dest="$3")
    DUMP_ERR=$(rsync -a --numeric-ids "${link[@]}" -- "$1/" "$2/" 2>&1) && return 0
  else
    [ -z "$3" ] || [ ! -f "$3" ] || link=(--link-dest="${3%/*}")
    DUMP_ERR=$(rsync -a --numeric-ids "${link[@]}" -- "$1" "$2" 2>&1) && return 0
  fi
  DUMP_ERR=$(printf '%s' "$DUMP_ERR" | grep -v '^rsync error' | tail -n 1)
  return 1
}

# files_check NAME: NAME is a complete files backup whose files are what was written (SHA256SUMS: PARTS,
# FILES.sha256) and whose parts are named as the tool names them (a file on disk is data: a part becomes a
# path). FILES_PARTS: "PART FILES BYTES" per part, in order.
files_check() {
  local dir=$BACKUPS/$1 out part files bytes
  { [ -f "$dir/manifest.json" ] && [ -f "$dir/PARTS" ]; } || die "$R_REFUSED" "no files backup $1 in $BACKUPS ('fab backups' lists them)"
  out=$(cd "$dir" && sha256sum --quiet -c SHA256SUMS 2>&1) \
    || die "$R_BACKUP" "backup $1 is damaged (its files differ from their checksums: $(printf '%s' "$out" | head -n 1)): not used"
  FILES_PARTS=()
  while IFS=$'\t' read -r part files bytes; do
    [[ $part =~ ^${FILE_PART_RE}$ && /$part/ != */../* && $files$bytes =~ ^[0-9]+$ ]] \
      || die "$R_BACKUP" "backup $1 lists a part $(printf '%q' "$part") the tool does not write: not used"
    FILES_PARTS+=("$part $files $bytes")
  done < "$dir/PARTS"
}

# files_drill NAME: files backup NAME copied out into a scratch folder beside the backups, as a restore would,
# every file checked against the checksum taken when it was backed up, each part's files and bytes compared
# with what was backed up; the scratch folder removed. Nothing live is touched.
files_drill() {
  local name=$1 scratch=$BACKUPS/.drill-$1 entry part files bytes t0 need=0
  files_check "$name"
  for entry in "${FILES_PARTS[@]}"; do need=$(( need + ${entry##* } )); done
  disk_room "$need" "$BACKUPS" || die "$R_REFUSED" "not enough free disk in $BACKUPS for the drill: it needs $need bytes (+10%), $ROOM_AVAIL are free"
  { rm -rf -- "$scratch" && mkdir -m 700 "$scratch"; } || die "$R_BACKUP" "cannot create $scratch"
  TMP_FILES+=("$scratch")
  for entry in "${FILES_PARTS[@]}"; do
    read -r part files bytes <<< "$entry"
    say "step drill $part: copied out of $name into $scratch, every file checked"
    t0=$EPOCHREALTIME
    { mkdir -p "$scratch/tree/${part%/*}" && cp -a -- "$BACKUPS/$name/tree/$part" "$scratch/tree/$part"; } \
      || die "$R_BACKUP" "the drill could not copy $part out of $name (disk full?)"
    part_verify "$name" "$part" "$files" "$bytes" "$scratch/tree/$part" || die "$R_BACKUP" "the drill of $name: $part $VERIFY_ERR"
    data files_drill part "$part" files "$files" bytes "$bytes" seconds "$(backup_seconds "$t0")"
  done
  rm -rf -- "$scratch"
  say ok
}

# part_verify NAME PART FILES BYTES COPY: COPY, a copy of PART of backup NAME, holds FILES files of BYTES bytes
# (as PARTS recorded) and every file its checksum of FILES.sha256 (read through a link named like the part);
# VERIFY_ERR says how it differs.
part_verify() {
  local counts out probe=$BACKUPS/.verify-$1
  counts=$(part_counts "$5")
  [ "$counts" = "$3 $4" ] || { VERIFY_ERR="came back with $counts (files bytes), the backup recorded $3 $4"; return 1; }
  [ "$3" != 0 ] || return 0
  TMP_FILES+=("$probe")
  { rm -rf -- "$probe" && mkdir -p "$probe/tree/${2%/*}" && ln -s -- "$5" "$probe/tree/$2"; } \
    || { VERIFY_ERR="could not be checked (cannot create $probe)"; return 1; }
  out=$(cd "$probe" && part_sums "$BACKUPS/$1/FILES.sha256" "$2" | sha256sum --quiet -c - 2>&1) \
    || { VERIFY_ERR="came back damaged ($(printf '%s' "$out" | head -n 1))"; return 1; }
  rm -rf -- "$probe"
}

# part_sums SUMS PART: the lines of SUMS (a FILES.sha256) for the files of PART (tree/PART or under it).
part_sums() {
  awk -v p="tree/$2" '{ f = substr($0, index($0, "  ") + 2) } f == p || index(f, p "/") == 1' "$1"
}

# files_live NAME [make-volumes]: files backup NAME over the live folders and volumes (a volume not there yet
# made first with make-volumes: a recovery). Checked whole first (every file against its checksum: a damaged
# backup changes nothing); a fresh files backup of what is there now; each part copied
# beside its folder (<folder>.fab-restore: the same filesystem) and checked like a drill; the stacks whose
# containers mount one of them stopped; every folder swapped in by renames (put back if one fails); the old
# ones removed (the fresh backup holds them); the stopped stacks brought up again behind their health gate.
files_live() {
  local name=$1 make=${2:-} entry part files bytes fresh src i out users
  FILES_SRC=()
  files_check "$name"
  out=$(cd "$BACKUPS/$name" && { [ ! -s FILES.sha256 ] || sha256sum --quiet -c FILES.sha256; } 2>&1) \
    || die "$R_BACKUP" "backup $name is damaged ($(printf '%s' "$out" | head -n 1)): not used, nothing changed"
  for entry in "${FILES_PARTS[@]}"; do
    read -r part files bytes <<< "$entry"
    [ -n "${PART_SRC[$part]:-}" ] || die "$R_REFUSED" "backup $name holds $part, which backup.paths and backup.volumes no longer name: add it back to restore it"
    if ! part_source "$part"; then   # a folder lost since: made empty (the fresh backup holds it so)
      if [ "${PART_SRC[$part]}" = volume ]; then
        { [ "$make" = make-volumes ] && volume_make "$part"; } || die "$R_REFUSED" "cannot restore $part: $PART_ERR"
      else
        { [ -d "$BACKUPS/$name/tree/$part" ] && mkdir -p -- "$PART_DIR"; } || die "$R_REFUSED" "cannot restore $part: $PART_ERR"
      fi
    fi
    part_guard "$part" "$PART_DIR"
    disk_room "$bytes" "${PART_DIR%/*}" || die "$R_REFUSED" "not enough free disk beside $PART_DIR for $part: it needs $bytes bytes (+10%), $ROOM_AVAIL are free"
    FILES_SRC+=("$PART_DIR")
  done
  files_take
  fresh=$BACKUP_NAME
  for i in "${!FILES_PARTS[@]}"; do
    read -r part files bytes <<< "${FILES_PARTS[$i]}"
    src=${FILES_SRC[$i]}
    say "step restore $part: copied beside $src, every file checked"
    TMP_FILES+=("$src.fab-restore")
    { rm -rf -- "$src.fab-restore" && cp -a -- "$BACKUPS/$name/tree/$part" "$src.fab-restore"; } \
      || die "$R_BACKUP" "cannot copy $part beside $src (disk full?): nothing live changed (and it is in backup $fresh)"
    part_verify "$name" "$part" "$files" "$bytes" "$src.fab-restore" \
      || die "$R_BACKUP" "the copy of $part beside $src $VERIFY_ERR: nothing live changed"
  done
  declare -ga STOPPED=() SWAPPED_SRC=()
  EXIT_HOOKS+=(files_unswap start_stopped)
  mapfile -t users < <(files_users "${FILES_SRC[@]}")
  stop_clients "${users[@]}"
  for src in "${FILES_SRC[@]}"; do
    say "step swap $src: the restored copy in by renames"
    { { [ ! -e "$src" ] || mv -T -- "$src" "$src.fab-old"; } && SWAPPED_SRC+=("$src") && mv -T -- "$src.fab-restore" "$src"; } \
      || die "$R_BACKUP" "cannot swap $src: every folder is put back as it was (and it is in backup $fresh)"
  done
  SWAPPED_SRC=()
  for src in "${FILES_SRC[@]}"; do rm -rf -- "$src.fab-old" || say "info could not remove $src.fab-old (what was there before the restore; it is in backup $fresh)"; done
  data restored name "$name" stack files before "$fresh"
  start_stopped || die "$R_BROKEN" "the files are restored from $name, but the stacks that use them did not come back healthy: look at the host (what was there before is in backup $fresh)"
  RESULT=ok
  say ok
}

# files_unswap (an exit hook of files_live): the folders swapped so far put back as they were.
files_unswap() {
  local src
  for src in "${SWAPPED_SRC[@]}"; do
    [ -e "$src.fab-old" ] || continue
    { { [ ! -e "$src" ] || mv -T -- "$src" "$src.fab-restore"; } && mv -T -- "$src.fab-old" "$src"; } \
      || say "info could not put $src back: what was there is in $src.fab-old"
  done
  SWAPPED_SRC=()
}

# files_users SOURCE...: the declared compose stacks with a running container that mounts one of SOURCES, a
# folder inside one or around one, in order.
files_users() {
  local s id m src
  for s in "${STACKS[@]}"; do
    [ "${SPEC_KIND[$s]}" = compose ] || continue
    for id in $(docker ps -q --filter "label=com.docker.compose.project=${SPEC_PROJECT[$s]}"); do
      while read -r m; do
        [ -n "$m" ] || continue
        for src in "$@"; do
          case $m/ in "${src%/}"/*) ;; *) case ${src%/}/ in "${m%/}"/*) ;; *) continue ;; esac ;; esac
          printf '%s\n' "$s"
          continue 4
        done
      done < <(docker inspect -f '{{range .Mounts}}{{println .Source}}{{end}}' "$id")
    done
  done
}
