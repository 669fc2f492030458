# shellcheck shell=bash
# One deploy at a time per system: state/lock, a folder renamed into place whole, with who/when/what/pid in
# lock/info for people and the fields the tool decides by each in a file of its own (lock_fields): an
# operator's name can hold any text, so the info line is never parsed. A lock whose program died (lock_holder
# knows by its pid, start time and boot) is taken over only by a run that finishes what it left (a migration's
# by the next migration, a deploy's by a deploy or rollback of at least its stacks).
# A fleet run (several hosts as one transaction) takes every host's lock first, with the fleet's id in it: its
# programs take that lock over and leave it held, and the run frees them all at its end (FLEET set).
# shellcheck disable=SC2034,SC2154  # globals shared across files; STATE, SYSTEM, ACTION, BY, TAG, RELEASE, FLEET and R_* come from the program's head

# lock_holder: LOCK_INFO ("" when free, else what the holder wrote) and LOCK_STALE=1 when its program is gone
# (LOCK_GONE says how): the host booted since it took the lock, or its pid runs no process, or another one
# (its start time differs: a pid is reused). When it is free, LOCK_ELSEWHERE (a function, if set) says of the
# system's lock held elsewhere too (a swarm system's, in the swarm's store, by another manager).
lock_holder() {
  LOCK_STALE=0 LOCK_INFO="" LOCK_GONE=""
  if [ ! -d "$STATE/lock" ]; then
    [ -z "${LOCK_ELSEWHERE:-}" ] || "$LOCK_ELSEWHERE"
    return 0
  fi
  LOCK_INFO=$(cat "$STATE/lock/info" 2>/dev/null || echo "holder unknown")
  local pid boot started   # (a lock taken before the fields had their own files: the pid its info line ends with)
  pid=$(cat "$STATE/lock/pid" 2>/dev/null) || pid=$(printf '%s' "$LOCK_INFO" | sed -n 's/.*, pid \([0-9]*\))$/\1/p')
  boot=$(cat "$STATE/lock/boot" 2>/dev/null) started=$(cat "$STATE/lock/started" 2>/dev/null)
  # shellcheck disable=SC2034  # (LOCK_GONE: lock_take, lock_report and lock_break read it; a survey does not)
  if [ -n "$boot" ] && [ "$boot" != "$(boot_id)" ]; then
    LOCK_STALE=1 LOCK_GONE="the host rebooted since"
  elif [[ $pid =~ ^[0-9]+$ ]] && ! alive "$pid" "$started"; then
    LOCK_STALE=1 LOCK_GONE="its program is gone (killed, or out of memory)"
  fi
  return 0
}

# boot_id: this boot's id (the kernel makes a new one at every boot).
boot_id() { cat /proc/sys/kernel/random/boot_id 2>/dev/null; }

# proc_stat PID: /proc/PID/stat's fields from the 3rd on (after the name in parentheses, which may hold
# spaces): the state first, the start time 20th; fails when PID runs no process.
proc_stat() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  read -r -a PROC_STAT <<< "${stat##*) }"
}

# start_time PID: when PID started, in clock ticks since boot (nothing when PID runs no process).
start_time() { ! proc_stat "$1" || printf '%s' "${PROC_STAT[19]:-}"; }

# alive PID [STARTED]: PID runs a process that is not a zombie (killed, not reaped yet: `kill -0` says yes to
# it), started at STARTED when given.
alive() {
  proc_stat "$1" && [[ ${PROC_STAT[0]} != [ZX] ]] && { [ -z "${2:-}" ] || [ "${PROC_STAT[19]:-}" = "$2" ]; }
}

# lock_fields DIR: this program's lock in DIR, a new folder (renamed into place whole): the info line for
# people and each field the tool reads in a file of its own: the action, the fleet, the program's pid, start
# time and boot (is it alive?), its release's id and record (what an interrupted one is recorded as) and the
# stacks it brings up (what the run that takes its lock over must bring up too).
lock_fields() {
  lock_info > "$1/info" && printf '%s' "$ACTION" > "$1/action" && printf '%s' "${FLEET:-}" > "$1/fleet" \
    && printf '%s' "$$" > "$1/pid" && start_time "$$" > "$1/started" && boot_id > "$1/boot" \
    && printf '%s' "${RELEASE:-}" > "$1/release" && printf '%s' "${META:-}" > "$1/meta" \
    && printf '%s' "${STACKS[*]:-}" > "$1/stacks"
}

# resumable_lock: a lock left by a migration that died (killed, host rebooted) is taken over by the next
# migration only.
resumable_lock() {
  [ "$LOCK_STALE" = 1 ] && [ "$ACTION" = migrate-layout ] && [ "$(cat "$STATE/lock/action" 2>/dev/null)" = "$ACTION" ]
}

# dead_deploy: the lock is a deploy's or a rollback's whose program died mid-way (DEAD_STACKS: the stacks it
# brought up; any of them may run its release, unverified, or two releases at once mid-rollout).
dead_deploy() {
  [ "$LOCK_STALE" = 1 ] && [ -z "$(cat "$STATE/lock/fleet" 2>/dev/null)" ] || return 1   # (a fleet run's lock
  # outlives its programs: its run on the operator's side frees it)
  case $(cat "$STATE/lock/action" 2>/dev/null) in deploy|rollback) ;; *) return 1 ;; esac
  DEAD_STACKS=$(cat "$STATE/lock/stacks" 2>/dev/null) || DEAD_STACKS="(unknown)"
}

# finishing_deploy: this deploy or rollback takes over a dead one's lock, and finishes its story: it brings up
# every stack the dead one did (each to this release, or back to the previous good one if this release fails:
# INHERITED, for restore), and records the dead release interrupted.
finishing_deploy() {
  local s missing=""
  case $ACTION in deploy|rollback) ;; *) return 1 ;; esac
  for s in $DEAD_STACKS; do
    in_words "$s" "${STACKS[@]}" || missing+=" $s"
  done
  [ -z "$missing" ] || return 1
  # shellcheck disable=SC2034  # (restore reads it; a program that restores nothing does not)
  read -r -a INHERITED <<< "$DEAD_STACKS"
}

# lock_take: the lock appears with its info already inside (a folder renamed into place, atomically; the
# rename fails when the lock exists), so a refused deploy can always name the holder. A lock held for this
# fleet run, or by a dead program this one may finish, is replaced the same way (lock_swap).
lock_take() {
  say "step lock taking the deploy lock"
  local new dead
  new=$(mktemp -d "$STATE/lock.new.XXXXXX") || die "$R_FAILED" "cannot create a lock in $STATE"
  TMP_FILES+=("$new" "$new.old")
  lock_fields "$new" || die "$R_FAILED" "cannot write a lock in $STATE (disk full?)"
  if mv -T "$new" "$STATE/lock" 2>/dev/null; then
    HOLDING=1
    return 0
  fi
  lock_holder
  if fleet_lock; then :
  elif resumable_lock; then say "info taking over the lock of an interrupted migration: $LOCK_INFO"
  elif dead_deploy && finishing_deploy; then
    dead=$(cat "$STATE/lock/release" 2>/dev/null)
    say "info interrupted: $LOCK_INFO: $LOCK_GONE; this run brings up its stacks ($DEAD_STACKS) again, or puts the previous good release back"
  elif dead_deploy; then
    die "$R_LOCKED" "interrupted: $LOCK_INFO: $LOCK_GONE, and its stacks ($DEAD_STACKS) may run its release unverified: deploy or roll back at least those stacks to finish it ('fab unlock --force' only removes the lock)"
  elif [ "$LOCK_STALE" = 1 ]; then
    die "$R_LOCKED" "another deploy holds the lock of $SYSTEM: $LOCK_INFO; its process is gone, so the lock is stale: 'fab unlock --force' releases it"
  else
    die "$R_LOCKED" "another deploy holds the lock of $SYSTEM: $LOCK_INFO"
  fi
  lock_swap "$new" || die "$R_LOCKED" "another program took the lock of $SYSTEM meanwhile"
  HOLDING=1
  [ -z "${dead:-}" ] || mark_interrupted "$dead" "$new.old/meta"
}

# lock_swap NEW: the lock (this fleet run's, or a dead program's) replaced by NEW: renamed aside, then NEW
# renamed into place (a program that takes the lock in between wins, and this one stops).
lock_swap() { mv -T "$STATE/lock" "$1.old" 2>/dev/null && mv -T "$1" "$STATE/lock" 2>/dev/null; }

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
  [ -z "$LOCK_INFO" ] || data lock holder "$LOCK_INFO" stale "$LOCK_STALE" gone "$LOCK_GONE" \
    interrupted "$(! dead_deploy || printf '%s' "$DEAD_STACKS")"
}

# lock_break: remove the lock, whoever holds it (unlock --force), saying whose it was.
lock_break() {
  lock_holder
  if [ -n "$LOCK_INFO" ]; then
    say "info removing the lock held by $LOCK_INFO$([ "$LOCK_STALE" = 0 ] || echo " ($LOCK_GONE)")"
    rm -rf "$STATE/lock"
  else
    say "info no lock was held"
  fi
}
