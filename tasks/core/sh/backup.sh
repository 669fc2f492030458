# shellcheck shell=bash
# PostgreSQL backups of a system's database stacks, made and checked on the VPS (a dump never crosses the
# operator's connection). A backup is a folder BACKUPS/<stack>-<UTC time> holding globals.sql (the roles),
# <database>.dump (pg_dump -Fc) per database, SHA256SUMS and manifest.json. It is written as
# .partial-<name>, every dump read back whole by pg_restore, checksummed, then renamed: a folder named like a
# backup with a manifest is complete and verified; a .partial-* one is removed when its program ends.
# Globals: DATABASES (the database stacks), DB ("STACK:project", :service, :role, :names: their settings),
# BACKUPS (the folder), TAKEN (the backups this program made, as a JSON list).
# shellcheck disable=SC2034,SC2154  # globals shared across files; BACKUPS, RELEASE, DB_NAME_RE and R_* come from the program's head

# add_database STACK PROJECT SERVICE ROLE DATABASES [swarm]: declare a database stack. ROLE and DATABASES may be
# empty: the container's POSTGRES_USER (else postgres), and every database but the templates and "postgres".
# swarm: its container is the swarm's task on this node (service PROJECT_SERVICE), not compose's.
add_database() {
  declare -gA DB
  DATABASES+=("$1")
  DB[$1:project]=$2; DB[$1:service]=$3; DB[$1:role]=$4; DB[$1:names]=$5; DB[$1:swarm]=${6:-}
}

# db_container STACK [any]: the running container of STACK's database service (fails when none runs); with
# "any", its container in whatever state (a server restarting forever on data it refuses, too).
db_container() {
  local id ps=-q running=(--filter status=running) which
  if [ -n "${2:-}" ]; then ps=-aq running=(); fi
  which=(--filter "label=com.docker.compose.project=${DB[$1:project]}" --filter "label=com.docker.compose.service=${DB[$1:service]}")
  [ -z "${DB[$1:swarm]}" ] || which=(--filter "label=com.docker.swarm.service.name=${DB[$1:project]}_${DB[$1:service]}")
  id=$(docker ps "$ps" "${which[@]}" ${running[@]+"${running[@]}"} 2>/dev/null)
  [ -n "$id" ] && printf '%s' "${id%%$'\n'*}"
}

# db_open STACK: DB_C (its running container) and DB_U (the role to connect as), or die saying why.
db_open() {
  DB_C=$(db_container "$1") || die "$R_REFUSED" "stack $1: its database service ${DB[$1:service]} is not running (compose project ${DB[$1:project]}): deploy it first"
  DB_U=${DB[$1:role]}
  [ -n "$DB_U" ] || DB_U=$(docker exec "$DB_C" printenv POSTGRES_USER 2>/dev/null) || DB_U=postgres
}

# db_sql DATABASE SQL: one statement through psql in DB_C as DB_U; rows on stdout, unaligned.
db_sql() { docker exec "$DB_C" psql -X -v ON_ERROR_STOP=1 -U "$DB_U" -d "$1" -Atqc "$2"; }

# db_list STACK: the databases a backup of STACK holds, one per line (hosts.yml's list, else every one that
# accepts connections but "postgres" and the tool's own scratch databases).
db_list() {
  if [ -n "${DB[$1:names]}" ]; then tr ' ' '\n' <<< "${DB[$1:names]}"; return 0; fi
  db_sql postgres "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate AND datname <> 'postgres' AND datname NOT LIKE 'fab\\_%' ORDER BY 1"
}

# backup_dump FILE COMMAND...: COMMAND's stdout into FILE; its last error line in DUMP_ERR when it fails.
backup_dump() {
  local file=$1; shift
  DUMP_ERR=$({ "$@" > "$file"; } 2>&1) && return 0
  DUMP_ERR=$(printf '%s' "$DUMP_ERR" | tail -n 1)
  [ -n "$DUMP_ERR" ] || DUMP_ERR="cannot write $file (disk full?)"
  return 1
}

# dump_verified FILE DATABASE: DATABASE's pg_dump -Fc written to FILE while pg_restore reads the same stream
# whole, at once (the read-back runs beside the dump on another core instead of after it). DUMP_ERR names what
# failed first: the write of FILE (a full disk), pg_dump, or the read-back (tee -p: a reader that stops early
# does not pass for a failed write).
dump_verified() {
  local errs codes why
  errs=$(mktemp -d) || { DUMP_ERR="cannot create a temporary folder"; return 1; }
  TMP_FILES+=("$errs")
  docker exec "$DB_C" pg_dump -U "$DB_U" -Fc "$2" 2> "$errs/dump" | tee -p -- "$1" 2> "$errs/tee" \
    | docker exec -i "$DB_C" pg_restore -f /dev/null 2> "$errs/restore"
  codes=("${PIPESTATUS[@]}")
  if [ "${codes[1]}" != 0 ]; then why=$(tail -n 1 "$errs/tee"); DUMP_ERR="cannot write $1${why:+ ($why)} (disk full?)"
  elif [ "${codes[0]}" != 0 ]; then DUMP_ERR="pg_dump of $2 failed: $(tail -n 1 "$errs/dump")"
  elif [ "${codes[2]}" != 0 ]; then DUMP_ERR="the dump of $2 does not read back whole ($(tail -n 1 "$errs/restore"))"
  else return 0; fi
  return 1
}

# backup_take STACK: a new verified backup of STACK's databases; its name is added to TAKEN (a JSON list).
backup_take() {
  local stack=$1 db dbs dir t0=$EPOCHREALTIME list=""
  say "step backup $stack: pg_dump of its databases, read back whole, into $BACKUPS"
  db_open "$stack"
  mapfile -t dbs < <(db_list "$stack") || die "$R_BACKUP" "stack $stack: cannot list its databases"
  [ "${#dbs[@]}" -gt 0 ] || die "$R_BACKUP" "stack $stack: no database to back up"
  backup_open "$stack"
  dir=$BACKUPS/.partial-$BACKUP_NAME
  backup_dump "$dir/globals.sql" docker exec "$DB_C" pg_dumpall -U "$DB_U" --globals-only \
    || die "$R_BACKUP" "stack $stack: pg_dumpall --globals-only failed: $DUMP_ERR; no backup was written"
  for db in "${dbs[@]}"; do
    [[ $db =~ ^${DB_NAME_RE}$ ]] || die "$R_BACKUP" "stack $stack: database '$db' has a name the tool will not use as a file name: list the databases in hosts.yml"
    dump_verified "$dir/$db.dump" "$db" || die "$R_BACKUP" "stack $stack: $DUMP_ERR; no backup was written"
    list+="${list:+,}$(json_str "$db")"
  done
  backup_close "$stack" "$t0" "\"databases\":[$list],\"verified\":\"pg_restore read every dump whole as it was written\"" "${dbs[*]}"
}

# backup_open SERIES: BACKUP_NAME (SERIES-<UTC time>, -N added while taken) and its .partial-* folder in
# BACKUPS, removed when the program ends unless backup_close renamed it.
backup_open() {
  local n=1
  { mkdir -p "$BACKUPS" && chmod 700 "$BACKUPS"; } || die "$R_BACKUP" "cannot create $BACKUPS"
  BACKUP_NAME=$1-$(date -u +%Y%m%dT%H%M%SZ)
  while [ -e "$BACKUPS/$BACKUP_NAME" ]; do n=$((n + 1)); BACKUP_NAME=${BACKUP_NAME%-[0-9]}-$n; done
  mkdir "$BACKUPS/.partial-$BACKUP_NAME" || die "$R_BACKUP" "cannot create $BACKUPS/.partial-$BACKUP_NAME"
  TMP_FILES+=("$BACKUPS/.partial-$BACKUP_NAME")
}

# backup_close SERIES T0 FIELDS HOLDS: the open backup sealed (SHA256SUMS of its files; manifest.json with
# FIELDS, JSON members saying what it holds and how it was verified, written last and flushed: a folder with
# a manifest is complete) and renamed to its name; added to TAKEN and reported (HOLDS: the same in words).
backup_close() {
  local dir=$BACKUPS/.partial-$BACKUP_NAME
  (cd "$dir" && find . -maxdepth 1 -type f ! -name 'SHA256SUMS*' -printf '%P\0' | LC_ALL=C sort -z | xargs -0 -r sha256sum -- > SHA256SUMS.new \
    && mv SHA256SUMS.new SHA256SUMS) || die "$R_BACKUP" "cannot checksum $dir (disk full?); no backup was written"
  printf '{"name":%s,"stack":%s,"created":"%s",%s,"taken":%s,"release":%s,"seconds":"%s"}\n' \
    "$(json_str "$BACKUP_NAME")" "$(json_str "$1")" "$(now)" "$3" "$(json_str "${ACTION:-}")" "$(json_str "${RELEASE:-}")" \
    "$(backup_seconds "$2")" > "$dir/manifest.json" || die "$R_BACKUP" "cannot write the manifest in $dir (disk full?); no backup was written"
  sync -f "$dir" || die "$R_BACKUP" "cannot flush $dir to disk; no backup was written"
  mv -T "$dir" "$BACKUPS/$BACKUP_NAME" || die "$R_BACKUP" "cannot rename $dir to $BACKUP_NAME"
  TAKEN+="${TAKEN:+,}$(json_str "$BACKUP_NAME")"
  data backup name "$BACKUP_NAME" stack "$1" bytes "$(du -sb "$BACKUPS/$BACKUP_NAME" | cut -f1)" \
    holds "$4" seconds "$(backup_seconds "$2")"
}

# backup_done: the end of `fab backup` (its audit line says ok).
backup_done() { RESULT=ok; say ok; }

backup_seconds() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# backups_before_deploy: `backup: before_deploy` on the system: a verified backup of every running
# database stack before anything stops; recorded in the release (TAKEN).
backups_before_deploy() {
  local s
  for s in "${DATABASES[@]}"; do
    if db_container "$s" >/dev/null; then backup_take "$s"
    else say "info stack $s: its database is not running yet: nothing to back up before this deploy"; fi
  done
}

# backup_names STACK: STACK's complete backups (a manifest), newest first.
backup_names() {
  local d
  for d in "$BACKUPS/$1"-*/manifest.json; do
    [ -f "$d" ] || continue
    d=${d%/manifest.json}; d=${d##*/}
    [[ ${d#"$1"-} =~ ^[0-9]{8}T[0-9]{6}Z(-[0-9]+)?$ ]] && printf '%s\n' "$d"
  done | sort -r
}

# prune_backups STACK LAST DAILY WEEKLY MONTHLY prune|preview: keep the LAST newest backups and the newest of
# each of the last DAILY days, WEEKLY ISO weeks and MONTHLY months (restic's rules; always the newest); remove
# the others (prune) or only say so (preview, which counts a backup taken now, as `fab backup` would). Every
# backup gets one @@data retention line. Applied only after this program took a verified backup of STACK.
prune_backups() {
  local stack=$1 mode=$6 name stamp reason now=""
  local -A seen=()
  local -a left=("$2" "$3" "$4" "$5")
  [ "$mode" = prune ] || now=$stack-$(date -u +%Y%m%dT%H%M%SZ)
  # nothing is removed unless this program has just made a verified backup of the stack
  [ "$mode" != prune ] || [[ ${TAKEN:-} == *"\"$stack-"[0-9]* ]] || return 0
  while read -r name; do
    stamp=${name#"$stack"-}
    reason=""
    [ -n "${seen[newest]:-}" ] || { seen[newest]=1; reason=" newest"; }
    retention_keep 0 "l$name" last
    retention_keep 1 "d${stamp:0:8}" daily
    retention_keep 2 "w$(date -u -d "${stamp:0:8}" +%G%V)" weekly
    retention_keep 3 "m${stamp:0:6}" monthly
    if [ -n "$reason" ]; then
      data retention stack "$stack" name "$name" action keep reason "${reason# }" new "$([ "$name" != "$now" ] || echo 1)"
    else
      data retention stack "$stack" name "$name" action prune
      [ "$mode" != prune ] || rm -rf -- "${BACKUPS:?}/$name" || die "$R_BACKUP" "cannot remove $BACKUPS/$name"
    fi
  done < <({ backup_names "$stack"; [ -z "$now" ] || printf '%s\n' "$now"; } | sort -r -u)
}

# retention_keep RULE BUCKET WORD (prune_backups' loop): the first backup of a new BUCKET (a day, a week, a
# month; for "last" each backup is its own) is kept while RULE has some left.
retention_keep() {
  [ -z "${seen[$2]:-}" ] && [ "${left[$1]}" -gt 0 ] || return 0
  seen[$2]=1
  left[$1]=$(( left[$1] - 1 ))
  reason+=" $3"
}

# backups_report STACK...: every backup of those database stacks: its manifest and size.
backups_report() {
  local s name
  for s in "$@"; do
    backup_names "$s" | while read -r name; do
      data_json manifest "$(head -c 4096 "$BACKUPS/$name/manifest.json" | tr -d '\n')"
      data size name "$name" bytes "$(du -sb "$BACKUPS/$name" | cut -f1)"
    done
  done
}

# backup_check NAME: NAME is a complete backup, each dump in it is named after a database (DB_NAME_RE, the tool's
# grammar: a file on disk is data, and its name becomes an identifier in SQL), and its files are what was
# written (SHA256SUMS). BACKUP_DBS: those databases, in order (BACKUPS/NAME/DB.dump each).
backup_check() {
  local dir=$BACKUPS/$1 out dump db
  [ -f "$dir/manifest.json" ] || die "$R_REFUSED" "no backup $1 in $BACKUPS ('fab backups' lists them)"
  BACKUP_DBS=()
  for dump in "$dir"/*.dump; do
    db=${dump##*/}; db=${db%.dump}
    [[ $db =~ ^${DB_NAME_RE}$ ]] || die "$R_BACKUP" "backup $1 holds $(printf '%q' "${dump##*/}"), which is not named after a database: not used"
    BACKUP_DBS+=("$db")
  done
  out=$(cd "$dir" && sha256sum --quiet -c SHA256SUMS 2>&1) \
    || die "$R_BACKUP" "backup $1 is damaged (its files differ from their checksums: $(printf '%s' "$out" | head -n 1)): not used"
}
