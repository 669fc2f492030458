# shellcheck shell=bash
# Bringing a lost server's system onto another host (fab recover): the operator's copy of the restic key put in
# place, then the newest (or a chosen) snapshot of a copy off the VPS fetched: its verified backups, its stacks'
# .env files and its release history, under this host's own folders (recover_key, recover_fetch); the .env files
# placed once setup has put repo/ there (recover_env); each database's service started alone and its data
# restored (recover_data); the marker of an unfinished recovery removed once its release runs (recover_done).
# A drill checks first that the host is scratch and takes away what it made (recover_scratch, recover_teardown).
# shellcheck disable=SC2034,SC2153,SC2154  # globals shared across files; RESTIC_KEY, RESTIC_KEY_RE, SYSTEM, STATE, BASE, BACKUPS and R_* come from the head, DB_C and DB_U from db_open (backup.sh)

# recover_key: the restic key, read from stdin (after the program: never an argument), written as RESTIC_KEY
# (mode 600 in a 700 folder, whole or not at all; taken back if the recovery fails). A different key already
# there is refused: it may open copies of its own; the same one is kept.
recover_key() {
  local key
  RECOVERED=() PLACED=()
  EXIT_HOOKS+=(recover_undo)
  IFS= read -r key || die "$R_REFUSED" "no restic key arrived on standard input: nothing was changed"
  [[ $key =~ ^${RESTIC_KEY_RE}$ ]] || die "$R_REFUSED" "what arrived is not a restic key this tool made: nothing was changed"
  if [ -s "$RESTIC_KEY" ]; then
    [ "$(cat "$RESTIC_KEY")" = "$key" ] || die "$R_REFUSED" "$RESTIC_KEY holds another key: nothing was changed (it may open copies of its own)"
    return 0
  fi
  { mkdir -p "${RESTIC_KEY%/*}" && chmod 700 "${RESTIC_KEY%/*}"; } || die "$R_FAILED" "cannot create ${RESTIC_KEY%/*}"
  (umask 077 && printf '%s\n' "$key" > "$RESTIC_KEY.new" && sync "$RESTIC_KEY.new" && mv "$RESTIC_KEY.new" "$RESTIC_KEY") \
    || { rm -f "$RESTIC_KEY.new"; die "$R_FAILED" "cannot write $RESTIC_KEY"; }
  RECOVERED+=("$RESTIC_KEY")
  say "info the restic key is in $RESTIC_KEY (mode 600)"
}

# recover_fetch REPO SNAPSHOT OLD [PATH...]: SNAPSHOT of REPO (an id, or latest: the system's newest) restored
# whole (every file read back; no cache left behind: a one-time read) into a scratch folder, then what it holds of
# the system whose folder was OLD placed under this host's folders: each backup into BACKUPS, each stack's .env
# held for recover_env, what it holds of each PATH (a binary's releases, its unit's environment folder) where it
# was (recover_place), last the release history and the tool's notes into STATE, and the marker STATE/recovering
# (what was placed, from where). A host that has a history of the system already is refused, unless that marker says
# an earlier recovery from OLD stopped short: it goes on from there. A backup already there is kept and said.
# A failure takes back what this program placed (RECOVERED).
recover_fetch() {
  local repo=$1 snap=$2 old=$3 scratch=$BASE/.fab-recover src out f rel p
  HELD=$STATE/recovering.env
  if [ -f "$STATE/recovering" ]; then
    say "info a recovery from $old placed its copy here already and stopped before the system ran: going on from there"
    recover_resume "$old"
    RESULT=ok
    return
  fi
  [ ! -s "$STATE/releases.jsonl" ] || die "$R_REFUSED" "this host has a release history of $SYSTEM already ($STATE/releases.jsonl): recover brings a system to a host that does not run it"
  offsite_env
  { rm -rf -- "$scratch" && mkdir -m 700 "$scratch"; } || die "$R_BACKUP" "cannot create $scratch"
  TMP_FILES+=("$scratch")
  say "step fetch snapshot ${snap:0:8} of $repo: the backups, .env files and release history of $SYSTEM, every file read back"
  local which=("$snap")
  [ "$snap" != latest ] || which=(latest --host "$SYSTEM" --tag fab)   # (the system's newest, not another's)
  out=$(restic -r "$repo" --password-file "$RESTIC_KEY" --no-cache restore "${which[@]}" --target "$scratch" --verify 2>&1) \
    || die "$R_BACKUP" "cannot restore snapshot ${snap:0:8} from $repo: $(printf '%s\n' "$out" | grep -m 1 -iE '^(Fatal|error)' || printf '%s\n' "$out" | tail -n 1)"
  f=$(printf '%s\n' "$out" | grep -m 1 -oiE 'snapshot [0-9a-f]{8,64}' | cut -d ' ' -f 2)
  [ -z "$f" ] || snap=$f   # (latest: the id it was)
  src=$scratch$old
  [ -d "$src/state" ] || die "$R_BACKUP" "snapshot ${snap:0:8} holds no state of a system in $old: not a copy of $SYSTEM from that host"
  { mkdir -p "$BACKUPS" && chmod 700 "$BACKUPS"; } || die "$R_FAILED" "cannot create $BACKUPS"
  for f in "$src/data/backups"/*; do
    [ -d "$f" ] || continue
    if [ -e "$BACKUPS/${f##*/}" ]; then say "info backup ${f##*/} is on this host already: kept"; continue; fi
    mv -T -- "$f" "$BACKUPS/${f##*/}" || die "$R_FAILED" "cannot move backup ${f##*/} into $BACKUPS"
    RECOVERED+=("$BACKUPS/${f##*/}")
    PLACED+=("backup $BACKUPS/${f##*/}")
  done
  { mkdir -p "$HELD" && chmod 700 "$HELD"; } || die "$R_FAILED" "cannot create $HELD"
  RECOVERED+=("$HELD")
  while IFS= read -r -d '' f; do   # (held until setup has put repo/ in place: recover_env)
    rel=${f#"$src"/}
    { mkdir -p "$(dirname "$HELD/$rel")" && cp -p -- "$f" "$HELD/$rel"; } || die "$R_FAILED" "cannot keep $rel in $HELD"
  done < <(find "$src" -path "$src/data" -prune -o -path "$src/state" -prune -o -type f -name .env -print0)
  for p in "${@:4}"; do recover_place "$scratch$p" "$p"; done
  recover_state "$src/state"
  # (last: what a recovery that stopped later resumes from; its first line says from where)
  atomic_write "$STATE/recovering" printf '%s\n' "from $old snapshot $snap repository $repo" "${PLACED[@]}" \
    || die "$R_FAILED" "cannot write $STATE/recovering (disk full?)"
  RECOVERED+=("$STATE/recovering")
  recover_resume "$old"
  RESULT=ok
}

# recover_place FROM TO: what FROM (a folder of the restored snapshot) holds, placed in TO with its owners, modes
# and SELinux labels (seed 003's 203/EXEC): each entry only where TO has none (kept and said otherwise); a TO
# that is missing is made (its parents as a deploy makes them: 755, for the unit's user to enter), and taken
# back whole (its first missing parent) if the recovery fails.
recover_place() {
  local f to top=$2
  [ -d "$1" ] || return 0
  if [ ! -e "$2" ]; then
    while [ ! -e "$(dirname "$top")" ]; do top=$(dirname "$top"); done
    { (umask 022 && mkdir -p -- "$(dirname "$2")") && cp -a -- "$1" "$2"; } || { rm -rf -- "$top"; die "$R_FAILED" "cannot place $2 (disk full?)"; }
    RECOVERED+=("$top") PLACED+=("file $2")
    selinux_label "$2"
    return 0
  fi
  for f in "$1"/* "$1"/.[!.]*; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    to=$2/${f##*/}
    if [ -e "$to" ]; then say "info $to is on this host already: kept"; continue; fi
    cp -a -- "$f" "$to" || { rm -rf -- "$to"; die "$R_FAILED" "cannot place $to (disk full?)"; }
    RECOVERED+=("$to") PLACED+=("file $to")
    selinux_label "$to"
  done
}

# recover_resume OLD: what a fetch from OLD placed, as its marker lists it (this program's or an earlier one's
# that stopped before the system ran: the recovery goes on from there). A marker of another host is refused.
recover_resume() {
  local first kind path
  { IFS= read -r first; [ "${first%% *}" = from ] && first=${first#from }; [ "${first%% *}" = "$1" ]; } < "$STATE/recovering" \
    || die "$R_REFUSED" "$STATE/recovering holds an unfinished recovery of another host (${first%% *}): finish that one first"
  data recovered kind snapshot path "$(cut -d ' ' -f 3 <<< "$first")"
  while read -r kind path; do data recovered kind "$kind" path "$path"; done < <(tail -n +2 "$STATE/recovering")
}

# recover_env: each stack's .env held by the fetch placed where it was (relative to the system's folder) once
# its folder is there (setup cloned repo/ or the operator put it); one already there is kept and said; one
# whose folder is missing stays held (setup's to-do names the missing compose file).
recover_env() {
  local f rel
  HELD=$STATE/recovering.env
  [ -d "$HELD" ] || return 0
  while IFS= read -r -d '' f; do
    rel=${f#"$HELD"/}
    if [ -e "$BASE/$rel" ]; then say "info $BASE/$rel is on this host already: kept"; continue; fi
    [ -d "$(dirname "$BASE/$rel")" ] || { say "info $(dirname "$BASE/$rel") is missing: its .env waits in $HELD"; continue; }
    cp -p -- "$f" "$BASE/$rel" || die "$R_FAILED" "cannot place $BASE/$rel"
    data recovered kind env path "$BASE/$rel"
  done < <(find "$HELD" -type f -name .env -print0)
}

# recover_db STACK: STACK's database service started alone when it does not run (a new host: its clients
# must not start on an empty database), then waited for until it accepts TCP connections (PostgreSQL's image
# answers on its socket while its first-start scripts still run).
recover_db() {
  local stack=$1 out deadline
  if ! db_container "$stack" >/dev/null; then
    say "step start $stack's database service ${DB[$stack:service]} alone, before anything uses it"
    out=$(docker compose -p "${DB[$stack:project]}" -f "${SPEC_COMPOSE[$stack]}" up -d --no-deps "${DB[$stack:service]}" 2>&1) \
      || die "$R_NOT_STARTED" "cannot start the database service of $stack: $(printf '%s\n' "$out" | tail -n 1)"
  fi
  deadline=$(( $(date +%s) + ${SPEC_WAIT[$stack]:-120} ))
  until DB_C=$(db_container "$stack") && docker exec "$DB_C" pg_isready -q -h 127.0.0.1 >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || die "$R_NOT_STARTED" "the database service of $stack does not accept connections after ${SPEC_WAIT[$stack]:-120} s"
    sleep 1
  done
  db_open "$stack"
}

# recover_data STACK NAME: backup NAME's databases into STACK's database service on a host that holds none of
# their data: its roles (and their passwords) from the backup's globals.sql, then each database restored beside
# and swapped in. A database of NAME that holds a table here already is refused: a recovery never replaces data
# (but one it restored itself before it stopped is noted as done in STATE/recovering, and left as it is).
recover_data() {
  local stack=$1 name=$2 db counts
  if grep -qxF -- "restored $name" "$STATE/recovering" 2>/dev/null; then
    say "info $stack holds the data of $name already (restored by this recovery before it stopped)"
    return 0
  fi
  backup_check "$name"
  recover_db "$stack"
  for db in "${BACKUP_DBS[@]}"; do
    db_exists "$db" || continue
    counts=$(db_counts "$db") || die "$R_FAILED" "cannot count the tables of $db"
    [ "${counts% *}" = 0 ] || die "$R_REFUSED" "database $db of $stack holds ${counts% *} tables on this host already: a recovery never replaces data ('fab restore --live --from $name' does, after a backup)"
  done
  say "step roles of $name: the lost server's roles and their passwords (its globals.sql)"
  docker exec -i "$DB_C" psql -X -q -U "$DB_U" -d postgres < "$BACKUPS/$name/globals.sql" >/dev/null 2>&1 \
    || say "info some of $name's roles were here already (kept; their passwords set as the backup has them)"
  restore_in "$stack" "$name" ""
  [ ! -f "$STATE/recovering" ] || printf 'restored %s\n' "$name" >> "$STATE/recovering" \
    || say "info cannot note in $STATE/recovering that $name is restored (disk full?)"
  RESULT=ok
}

# recover_done: the system runs its recovered release: what marked the recovery unfinished goes.
recover_done() {
  rm -rf -- "$STATE/recovering.env" "$STATE/recovering" || say "info cannot remove $STATE/recovering (the recovery is done)"
  say "info the recovery of $SYSTEM is complete"
}

# recover_state FROM: the release history, current release and the tool's notes of FROM written into STATE
# (each whole, then renamed), last: once they are there, this host runs the system as far as the tool knows.
# The old host's audit lines go before this host's own.
recover_state() {
  local f
  for f in releases.jsonl current offsite.jsonl; do
    [ -f "$1/$f" ] || continue
    atomic_write "$STATE/$f" cat "$1/$f" || die "$R_FAILED" "cannot write $STATE/$f (disk full?)"
    RECOVERED+=("$STATE/$f")
    data recovered kind state path "$STATE/$f"
  done
  if [ -f "$1/audit.jsonl" ]; then   # the old host's lines first, then this host's own (kept if it fails)
    if [ -f "$STATE/audit.jsonl" ]; then atomic_write "$STATE/audit.jsonl" cat "$1/audit.jsonl" "$STATE/audit.jsonl"
    else atomic_write "$STATE/audit.jsonl" cat "$1/audit.jsonl"; fi || say "info cannot carry the old audit lines over (disk full?)"
  fi
}

# recover_scratch [PATH...]: a drill's host runs no container and none of the PATHs (the system's files outside
# its folder) holds anything, for the teardown after the drill to take away only what the drill made.
recover_scratch() {
  local ids p
  ids=$(docker ps -aq 2>&1) || die "$R_FAILED" "docker does not answer: $(printf '%s' "$ids" | tail -n 1)"
  [ -z "$ids" ] || die "$R_REFUSED" "this host has containers: a drill tears down what it made, so it runs on a scratch host that runs nothing"
  for p in "$@"; do
    [ -z "$(ls -A -- "$p" 2>/dev/null)" ] || die "$R_REFUSED" "$p holds files on this host: a drill's teardown would take them; use a scratch host"
  done
  say "info a scratch host: nothing runs here, the drill takes away what it makes"
}

# recover_teardown [PATH...]: what a drill made taken away: the system's compose projects with their volumes and
# networks, its binaries' units stopped and disabled, its state, data, secrets (the restic key, the token) and
# .env files, the PATHs (what it restored outside its folder, the binaries' files and unit files) and a binary's
# folder left empty, the registry login. repo/ stays (code, no secret); so do the images pulled (a cache).
recover_teardown() {
  local s out folders=() ok=0
  say "step teardown the drill's stacks, volumes, data, secrets and .env files"
  for s in "${STACKS[@]}"; do
    if is_binary "$s"; then
      out=$(systemctl disable --now "${BIN[$s:unit]}" 2>&1) \
        || { ok=1; say "info cannot stop ${BIN[$s:unit]}: $(printf '%s' "$out" | tail -n 1)"; }
      folders+=("$(dirname "${BIN[$s:path]}")")
      continue
    fi
    out=$(compose "$s" down -v --remove-orphans 2>&1) \
      || { ok=1; say "info cannot take stack $s down: $(printf '%s' "$out" | tail -n 1)"; }
    [ -z "${SPEC_COMPOSE[$s:env]:-}" ] || rm -f -- "${SPEC_COMPOSE[$s:env]}" || ok=1
  done
  rm -rf -- "$STATE" "$BASE/data" "$KEYS" "$@" || ok=1
  if [ "${#folders[@]}" -gt 0 ]; then   # (a binary's folder, made by the drill, goes when nothing else is in it)
    rmdir --ignore-fail-on-non-empty -- "${folders[@]}" && systemctl daemon-reload || ok=1
  fi
  [ -z "${REGISTRY:-}" ] || docker logout "$REGISTRY" >/dev/null 2>&1 || true
  [ "$ok" = 0 ] || die "$R_FAILED" "the teardown left something behind (said above): look at the host"
  RESULT=ok
}

# recover_undo (an EXIT_HOOK): what recover_key and recover_fetch placed, taken back when the program fails.
recover_undo() {
  [ "${#RECOVERED[@]}" = 0 ] && return 0
  rm -rf -- "${RECOVERED[@]}"
  say "info what the recovery had placed (the key, backups, .env files, history) was taken back: this host is as it was"
}
