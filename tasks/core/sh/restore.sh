# shellcheck shell=bash
# Restores of the backups backup.sh makes: a drill (each database into a scratch database beside the live one,
# its tables and rows counted, dropped) and a live restore (a fresh backup first, the clients stopped, each
# database restored beside the live one, all swapped in by renames in one transaction, the clients brought up
# again behind their health gate).
# Globals: SCRATCH (scratch databases to drop at exit), SWAP / SWAPPED (databases restored / swapped in),
# STOPPED (client stacks stopped), DATA_NOTE (where each data is, said if a rollback --with-data fails).
# shellcheck disable=SC2034,SC2154  # globals shared across files; BACKUPS, DB_C, DB_U and R_* come from backup.sh and the head

# db_counts DATABASE: "TABLES ROWS" of DATABASE's user tables (exact counts).
db_counts() {
  printf '%s\n' "SELECT format('SELECT count(*) FROM %I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')" '\gexec' \
    | docker exec -i "$DB_C" psql -X -v ON_ERROR_STOP=1 -U "$DB_U" -d "$1" -Atq \
    | awk '{ n++; s += $1 } END { printf "%d %d\n", n, s }'
}

# db_exists DATABASE: DATABASE is there (its name checked against DB_NAME_RE before it reaches SQL).
db_exists() { [ "$(db_sql postgres "SELECT 1 FROM pg_database WHERE datname = '$1'")" = 1 ]; }

# db_drop DATABASE: DATABASE gone, connections and all (nothing when it does not exist).
db_drop() { db_sql postgres "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)"; }

# db_restore DUMP DATABASE [OPTIONS]: a new DATABASE filled from DUMP (pg_restore OPTIONS).
db_restore() {
  local dump=$1 db=$2
  shift 2
  db_sql postgres "CREATE DATABASE \"$db\" TEMPLATE template0" >/dev/null || return 1
  docker exec -i "$DB_C" pg_restore -U "$DB_U" -d "$db" --exit-on-error "$@" < "$dump"
}

# drop_scratch: the program's scratch databases go, whatever way it ends (an exit hook).
drop_scratch() {
  local db
  for db in "${SCRATCH[@]}"; do db_drop "$db" >/dev/null 2>&1; done
  SCRATCH=()
}

# restore_drill STACK NAME: restore every database of backup NAME into a scratch database beside the live one,
# count its tables and rows, drop it. The live databases are not touched.
restore_drill() {
  local stack=$1 name=$2 dump db scratch t0 counts
  backup_check "$name"
  db_open "$stack"
  SCRATCH=()
  EXIT_HOOKS+=(drop_scratch)
  for db in "${BACKUP_DBS[@]}"; do
    dump=$BACKUPS/$name/$db.dump scratch=fab_drill_${db:0:40}
    say "step drill $db: pg_restore of $name into the scratch database $scratch"
    t0=$EPOCHREALTIME
    db_drop "$scratch" >/dev/null
    SCRATCH+=("$scratch")
    db_restore "$dump" "$scratch" --no-owner --no-privileges > /dev/null 2>&1 \
      || die "$R_BACKUP" "the drill could not restore $db from $name: the backup does not restore"
    counts=$(db_counts "$scratch") || die "$R_BACKUP" "the drill could not count the rows of $scratch"
    data drill database "$db" tables "${counts% *}" rows "${counts#* }" seconds "$(backup_seconds "$t0")"
  done
  drop_scratch
  say ok
}

# restore_live STACK NAME start|keep-stopped [CLIENT...]: backup NAME over STACK's live databases. First a
# fresh verified backup (what runs now); the CLIENT stacks (declared; those configured after STACK) stopped;
# each database restored into a new one beside the live one; only when all restored, every pair swapped in
# one transaction (renames) and the old ones dropped; the clients brought up again behind their health gate
# (start), or left for the rollback that follows to bring up on its release (keep-stopped). Any failure
# before the swap leaves the live databases as they were and the clients running again.
restore_live() {
  local stack=$1 name=$2 mode=$3 fresh db
  shift 3
  backup_check "$name"
  backup_take "$stack"
  fresh=${TAKEN##*,}; fresh=${fresh//\"/}
  declare -ga STOPPED=()
  EXIT_HOOKS+=(start_stopped)
  stop_clients "$@"
  restore_in "$stack" "$name" "$fresh"
  if [ "$mode" = keep-stopped ]; then
    STOPPED=()
    DATA_NOTE+="$stack holds the data of backup $name; its data from before is in backup $fresh ('fab restore --live --from $fresh' puts it back). "
    EXIT_HOOKS+=(data_note)
    say "info $stack holds the data of $name now; the data from before is in backup $fresh"
    return 0
  fi
  start_stopped || die "$R_BROKEN" "the databases of $stack are restored from $name, but its clients did not come back healthy: look at the host (the data from before the restore is in backup $fresh)"
  RESULT=ok
  say ok
}

# restore_in STACK NAME FRESH: each database of backup NAME restored beside the live one, then all swapped in
# one transaction, the old ones dropped; any failure before the swap leaves the live databases as they were
# (and in backup FRESH, taken before; none on a recovery's new host).
restore_in() {
  local stack=$1 name=$2 fresh=$3 db kept=""
  [ -z "$fresh" ] || kept=" (and in backup $fresh)"
  SCRATCH=() SWAP=""
  EXIT_HOOKS+=(drop_scratch)
  for db in "${BACKUP_DBS[@]}"; do
    restore_beside "$BACKUPS/$name/$db.dump" "$db" "fab_restore_${db:0:40}" \
      || die "$R_BACKUP" "pg_restore of $db from $name failed ($DUMP_ERR): the live databases are untouched$kept"
  done
  db_swap || die "$R_BACKUP" "the restored databases could not replace the live ones ($DUMP_ERR): the live databases are untouched$kept"
  SCRATCH=()
  for db in "${SWAPPED[@]}"; do db_drop "fab_old_${db:0:40}" >/dev/null \
    || say "info could not drop fab_old_${db:0:40} (the database as it was before the restore): drop it by hand"; done
  data restored name "$name" stack "$stack" before "$fresh"
}

# data_note (an exit hook of a rollback --with-data that failed after its restore): where each data is.
data_note() { [ -z "${DATA_NOTE:-}" ] || say "info ${DATA_NOTE% }"; DATA_NOTE=""; }

# stop_clients CLIENT...: stop those stacks, last first (each once); STOPPED lists them.
stop_clients() {
  local i s
  for (( i = $#; i >= 1; i-- )); do
    s=${!i}
    [[ " ${STOPPED[*]} " != *" $s "* ]] || continue
    say "step stop $s: nothing writes while its data is restored"
    STOPPED+=("$s")
    stop_stack "$s" || die "$R_BACKUP" "could not stop $s"
  done
}

# start_stopped: bring the stopped stacks up again in order, behind the health gate (also an exit hook).
start_stopped() {
  local s ok=0
  [ "${#STOPPED[@]}" -gt 0 ] || return 0
  for s in "${STACKS[@]}"; do
    in_words "$s" "${STOPPED[@]}" || continue
    say "step up $(up_text "$s")"
    up "$s" || ok=1
  done
  STOPPED=()
  return "$ok"
}

# restore_beside DUMP DATABASE NEW: NEW filled from DUMP and owned by DATABASE's owner (a scratch database
# until the swap); SWAP gets the pair.
restore_beside() {
  local dump=$1 db=$2 new=$3 owner
  say "step restore $db: pg_restore into $new, beside the live database"
  db_drop "$new" >/dev/null
  SCRATCH+=("$new")
  DUMP_ERR=$(db_restore "$dump" "$new" 2>&1 >/dev/null) || { DUMP_ERR=$(printf '%s' "$DUMP_ERR" | tail -n 1); return 1; }
  owner=$(db_sql postgres "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '$db'") || return 1
  [ -z "$owner" ] || db_sql postgres "ALTER DATABASE \"$new\" OWNER TO \"$owner\"" >/dev/null || return 1
  SWAP+="$db "
}

# db_swap: every restored database takes its live one's name in one transaction (all or none); the live
# ones become fab_old_*. SWAPPED lists the databases replaced.
db_swap() {
  local db sql="" quoted=""
  say "step swap the restored databases replace the live ones (one transaction)"
  for db in $SWAP; do
    quoted+="${quoted:+,}'$db'"
    db_drop "fab_old_${db:0:40}" >/dev/null || return 1
    ! db_exists "$db" || sql+="ALTER DATABASE \"$db\" RENAME TO \"fab_old_${db:0:40}\"; "
    sql+="ALTER DATABASE \"fab_restore_${db:0:40}\" RENAME TO \"$db\"; "
  done
  db_sql postgres "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname IN ($quoted) AND pid <> pg_backend_pid()" >/dev/null
  DUMP_ERR=$(db_sql postgres "BEGIN; $sql COMMIT;" 2>&1) || return 1
  read -r -a SWAPPED <<< "$SWAP"
}
