# shellcheck shell=bash
# One deploy at a time per system: an atomic mkdir of state/lock, with who/when/what/pid in lock/info for people
# and the fields the tool decides by each in a file of its own (action, fleet, pid): an operator's name can hold
# any text, so the info line is never parsed.
# A fleet run (several hosts as one transaction) takes every host's lock first, with the fleet's id in it: its
# programs take that lock over and leave it held, and the run frees them all at its end (FLEET set).
# shellcheck disable=SC2034,SC2154  # globals shared across files; STATE, SYSTEM, ACTION, BY, TAG, RELEASE, FLEET and R_* come from the program's head

# lock_holder: LOCK_INFO ("" when free, else what the holder wrote) and LOCK_STALE=1 when its process is gone.
lock_holder() {
  LOCK_STALE=0 LOCK_INFO=""
  [ -d "$STATE/lock" ] || return 0
  LOCK_INFO=$(cat "$STATE/lock/info" 2>/dev/null || echo "holder unknown")
  local pid   # (a lock taken before the fields had their own files: the pid its info line ends with)
  pid=$(cat "$STATE/lock/pid" 2>/dev/null) || pid=$(printf '%s' "$LOCK_INFO" | sed -n 's/.*, pid \([0-9]*\))$/\1/p')
  if [[ $pid =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null; then LOCK_STALE=1; fi
  return 0
}

# lock_fields DIR: this program's lock in DIR: the info line and the fields the tool reads (each written whole).
lock_fields() {
  atomic_write "$1/info" lock_info && atomic_write "$1/action" printf '%s' "$ACTION" \
    && atomic_write "$1/fleet" printf '%s' "${FLEET:-}" && atomic_write "$1/pid" printf '%s' "$$"
}

# resumable_lock: a lock left by a migration that died (killed, host rebooted) is taken over by the next
# migration only.
resumable_lock() {
  [ "$LOCK_STALE" = 1 ] && [ "$ACTION" = migrate-layout ] && [ "$(cat "$STATE/lock/action" 2>/dev/null)" = "$ACTION" ]
}

# lock_take: the lock appears with its info already inside (a folder renamed into place, atomically; the
# rename fails when the lock exists), so a refused deploy can always name the holder.
lock_take() {
  say "step lock taking the deploy lock"
  local new
  new=$(mktemp -d "$STATE/lock.new.XXXXXX") || die "$R_FAILED" "cannot create a lock in $STATE"
  TMP_FILES+=("$new")
  lock_fields "$new" || die "$R_FAILED" "cannot write a lock in $STATE (disk full?)"
  if mv -T "$new" "$STATE/lock" 2>/dev/null; then
    HOLDING=1
    return 0
  fi
  lock_holder
  if fleet_lock; then
    lock_fields "$STATE/lock" || die "$R_FAILED" "cannot write $STATE/lock"
    HOLDING=1
  elif resumable_lock; then
    say "info taking over the lock of an interrupted migration: $LOCK_INFO"
    lock_fields "$STATE/lock" || die "$R_FAILED" "cannot write $STATE/lock"
    HOLDING=1
  elif [ "$LOCK_STALE" = 1 ]; then
    die "$R_LOCKED" "another deploy holds the lock of $SYSTEM: $LOCK_INFO; its process is gone, so the lock is stale: 'fab unlock --force' releases it"
  else
    die "$R_LOCKED" "another deploy holds the lock of $SYSTEM: $LOCK_INFO"
  fi
}

lock_info() {
  printf '%s since %s (%s %s, release %s%s, pid %s)\n' "$BY" "$(now)" "$ACTION" "$TAG" "$RELEASE" \
    "${FLEET:+, fleet $FLEET}" "$$"
}

# fleet_lock: the lock is this program's fleet run's own (taken for it before any host changed).
fleet_lock() { [ -n "${FLEET:-}" ] && [ "$(cat "$STATE/lock/fleet" 2>/dev/null)" = "$FLEET" ]; }

# lock_hold: a fleet run's first step on each host, before any host changes (on_exit leaves it held).
lock_hold() {
  mkdir -p "$STATE" || die "$R_FAILED" "cannot create $STATE"
  lock_take
}

# lock_free: the end of a fleet run: its lock is released (only its own: another holder's stays).
lock_free() {
  lock_holder
  if fleet_lock; then rm -rf "$STATE/lock"; fi
  return 0
}

# lock_report: the lock's holder for status and rollback (nothing when it is free).
lock_report() {
  lock_holder
  [ -z "$LOCK_INFO" ] || data lock holder "$LOCK_INFO" stale "$LOCK_STALE"
}

# lock_break: remove the lock, whoever holds it (unlock --force), saying whose it was.
lock_break() {
  lock_holder
  if [ -n "$LOCK_INFO" ]; then
    say "info removing the lock held by $LOCK_INFO$([ "$LOCK_STALE" = 0 ] || echo ' (its process is gone)')"
    rm -rf "$STATE/lock"
  else
    say "info no lock was held"
  fi
}
