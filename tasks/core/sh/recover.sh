# shellcheck shell=bash
# Bringing a lost server's system onto another host (fab recover): the operator's copy of the restic key put in
# place, then the newest (or a chosen) snapshot of a copy off the VPS fetched: its verified backups, its stacks'
# .env files and its release history, under this host's own folders. What the system then runs (its databases
# and files restored, its release deployed by digest) comes after, from these.
# shellcheck disable=SC2034,SC2154  # globals shared across files; RESTIC_KEY, RESTIC_KEY_RE, SYSTEM, STATE, BASE, BACKUPS and R_* come from the head

# recover_key: the restic key, read from stdin (after the program: never an argument), written as RESTIC_KEY
# (mode 600 in a 700 folder, whole or not at all; taken back if the recovery fails). A different key already
# there is refused: it may open copies of its own; the same one is kept.
recover_key() {
  local key
  RECOVERED=()
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

# recover_fetch REPO SNAPSHOT OLD: SNAPSHOT of REPO (an id, or latest: the system's newest) restored whole (every file read back) into a scratch folder,
# then what it holds of the system whose folder was OLD placed under this host's BASE: each backup into
# BACKUPS, each stack's .env where it was (relative to the system's folder), and last the release history and
# the tool's notes into STATE. A host that has a history of the system already is refused; a backup or .env
# already there is kept and said. A failure takes back what this program placed (RECOVERED).
recover_fetch() {
  local repo=$1 snap=$2 old=$3 scratch=$BASE/.fab-recover src out f rel
  [ ! -s "$STATE/releases.jsonl" ] || die "$R_REFUSED" "this host has a release history of $SYSTEM already ($STATE/releases.jsonl): recover brings a system to a host that does not run it"
  offsite_env
  { rm -rf -- "$scratch" && mkdir -m 700 "$scratch"; } || die "$R_BACKUP" "cannot create $scratch"
  TMP_FILES+=("$scratch")
  say "step fetch snapshot ${snap:0:8} of $repo: the backups, .env files and release history of $SYSTEM, every file read back"
  local which=("$snap")
  [ "$snap" != latest ] || which=(latest --host "$SYSTEM" --tag fab)   # (the system's newest, not another's)
  out=$(restic -r "$repo" --password-file "$RESTIC_KEY" restore "${which[@]}" --target "$scratch" --verify 2>&1) \
    || die "$R_BACKUP" "cannot restore snapshot ${snap:0:8} from $repo: $(printf '%s\n' "$out" | grep -m 1 -iE '^(Fatal|error)' || printf '%s\n' "$out" | tail -n 1)"
  src=$scratch$old
  [ -d "$src/state" ] || die "$R_BACKUP" "snapshot ${snap:0:8} holds no state of a system in $old: not a copy of $SYSTEM from that host"
  { mkdir -p "$BACKUPS" && chmod 700 "$BACKUPS"; } || die "$R_FAILED" "cannot create $BACKUPS"
  for f in "$src/data/backups"/*; do
    [ -d "$f" ] || continue
    if [ -e "$BACKUPS/${f##*/}" ]; then say "info backup ${f##*/} is on this host already: kept"; continue; fi
    mv -T -- "$f" "$BACKUPS/${f##*/}" || die "$R_FAILED" "cannot move backup ${f##*/} into $BACKUPS"
    RECOVERED+=("$BACKUPS/${f##*/}")
    data recovered kind backup path "$BACKUPS/${f##*/}"
  done
  while IFS= read -r -d '' f; do
    rel=${f#"$src"/}
    if [ -e "$BASE/$rel" ]; then say "info $BASE/$rel is on this host already: kept"; continue; fi
    { mkdir -p "$(dirname "$BASE/$rel")" && cp -p -- "$f" "$BASE/$rel"; } || die "$R_FAILED" "cannot place $BASE/$rel"
    RECOVERED+=("$BASE/$rel")
    data recovered kind env path "$BASE/$rel"
  done < <(find "$src" -path "$src/data" -prune -o -path "$src/state" -prune -o -type f -name .env -print0)
  recover_state "$src/state"
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

# recover_undo (an EXIT_HOOK): what recover_key and recover_fetch placed, taken back when the program fails.
recover_undo() {
  [ "${#RECOVERED[@]}" = 0 ] && return 0
  rm -rf -- "${RECOVERED[@]}"
  say "info what the recovery had placed (the key, backups, .env files, history) was taken back: this host is as it was"
}
