# shellcheck shell=bash
# The tool's own state on the VPS: releases.jsonl (one JSON line per state change of a release), current (the
# running good release and its pins: what a failed deploy restores), and what status reports.
# shellcheck disable=SC2034,SC2154  # globals shared across files; STATE, SECRETS, META, EXPECT_HISTORY and R_* come from the program's head

# pins_json: this release's pins as a JSON object.
pins_json() {
  local s sep="" out=""
  for s in "${!PINS[@]}"; do out+="$sep$(json_str "$s"):$(json_str "${PINS[$s]}")"; sep=","; done
  printf '{%s}' "$out"
}

# record STATE: one line of the release history (deploying, good, failed), with the configuration, the
# backups taken before it, its run-once jobs' results, its binaries' units and sizes and, once good, what its services that pin nothing
# run (when there are).
record() {
  local bins="" jobs=""
  [ -z "${RELEASE_BINARIES:-}" ] || bins=",\"binaries\":{$RELEASE_BINARIES}"
  [ -z "${JOBS:-}" ] || jobs=",\"jobs\":{$JOBS}"
  if [ "$1" = good ] && ! INFRA=$(infra_digests 2>/dev/null); then
    INFRA=${UNTOUCHED_INFRA:-}
    say "info what the stacks that pin nothing run could not be read: this release does not record it"
  fi
  [ -z "${INFRA:-}" ] || bins+=",\"infra\":{$INFRA}"
  append_line "$STATE/releases.jsonl" "$(printf '{%s,"state":"%s","at":"%s","images":%s%s}' "$META" "$1" "$(now)" \
      "$(pins_json)" "${CONFIG:+,\"config\":$CONFIG}${TAKEN:+,\"backups\":[$TAKEN]}$jobs$bins")" \
    || die "$R_FAILED" "cannot write the release history $STATE/releases.jsonl (disk full?)"
}

# mark_reverted: a fleet run put the release before it back on this host because another host failed: that
# release (REVERTED, its record's fixed part) passed its gate here, but is recorded reverted, so that a plain
# rollback never goes back to it. Nothing when this program reverts nothing.
mark_reverted() {
  [ -n "${REVERTED:-}" ] || return 0
  append_line "$STATE/releases.jsonl" "$(printf '{%s,"state":"reverted","at":"%s"}' "$REVERTED" "$(now)")" \
    || say "info cannot record the run's release as reverted in $STATE/releases.jsonl (disk full?)"
}

# mark_interrupted RELEASE META: a release whose program died mid-way (its lock taken over) is recorded
# interrupted, with its record's fixed part from its lock (the file META); not when the history does not know
# it (it died before it changed anything). HISTORY_READ keeps the history's checksum from before this line:
# what a rollback chose from was read before it.
mark_interrupted() {
  local record
  # shellcheck disable=SC2034  # (check_history reads it; a program that checks no history does not)
  HISTORY_READ=$(history_sha)
  [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] && grep -q -F "\"release\":\"$1\"" "$STATE/releases.jsonl" 2>/dev/null \
    || return 0
  record=$(head -n 1 "$2" 2>/dev/null) && [[ $record == *"\"release\":\"$1\""* ]] || return 0
  if append_line "$STATE/releases.jsonl" "$(printf '{%s,"state":"interrupted","at":"%s"}' "$record" "$(now)")"; then
    data interrupted release "$1"
  else
    say "info cannot record release $1 as interrupted in $STATE/releases.jsonl (disk full?)"
  fi
}

# write_current: this release becomes the running good one; stacks it did not touch keep their pins.
write_current() {
  atomic_write "$STATE/current.new" current_text || die "$R_FAILED" "cannot write $STATE/current (disk full?)"
  data switched release "$RELEASE" from "$(current_line release)"
  mv -f "$STATE/current.new" "$STATE/current" || die "$R_FAILED" "cannot write $STATE/current"
}

# current_text: state/current as this release makes it: its id and label, the pins of the apps it did not
# touch as they were, then its own (fails when the old file cannot be read).
current_text() {
  local kept key s pin
  printf 'release %s\ntag %s\n' "$RELEASE" "$TAG"
  if [ -f "$STATE/current" ]; then
    kept=$(grep '^pin ' "$STATE/current") || [ $? = 1 ] || return 1
    while read -r key s pin; do
      if [ "$key" = pin ] && [ -z "${PINS[$s]:-}" ]; then printf 'pin %s %s\n' "$s" "$pin"; fi
    done <<< "$kept"
  fi
  for s in "${!PINS[@]}"; do printf 'pin %s %s\n' "$s" "${PINS[$s]}"; done
}

# current_line KEY / current_pin STACK / current_tag: what the current file says runs.
current_line() { [ -f "$STATE/current" ] && after_prefix "$1 " < "$STATE/current"; }
current_pin() { current_line "pin $1"; }
current_tag() { current_line tag; }

history_sha() { { [ ! -f "$STATE/releases.jsonl" ] || cat "$STATE/releases.jsonl"; } | sha256sum | cut -d' ' -f1; }

# check_history: a rollback chosen from the history refuses if the history changed since it was read.
check_history() {
  [ -z "$EXPECT_HISTORY" ] && return 0
  [ "${HISTORY_READ:-$(history_sha)}" = "$EXPECT_HISTORY" ] || die "$R_CONFLICT" "the release history of $SYSTEM changed since it was read; run the command again"
}

# show_state: the release history (with its checksum), the current release and the lock.
show_state() {
  data history sha256 "$(history_sha)"
  [ ! -f "$STATE/releases.jsonl" ] || sed 's/^/@@text history /' "$STATE/releases.jsonl"
  show_current
}

# show_current: the running release and its pins, and the lock (what status needs, without the history).
show_current() {
  if [ -f "$STATE/current" ]; then
    local key a b rel="" tag=""
    while read -r key a b; do
      case $key in
        release) rel=$a ;;
        tag) tag=$a ;;
        pin) data current_pin app "$a" pin "$b" ;;
      esac
    done < "$STATE/current"
    data current release "$rel" tag "$tag"
  fi
  lock_report
}

# show_stack STACK COMPOSE PROJECT: compose's own JSON of the stack's containers.
show_stack() {
  local out
  out=$(docker compose -p "$3" -f "$2" ps -a --format json 2>/dev/null)
  data stack name "$1" containers "$out"
}

# show_secrets: the token file's mode and age (never its content).
show_secrets() {
  if [ -f "$SECRETS" ]; then data secrets mode "$(stat -c %a "$SECRETS")" mtime "$(stat -c %Y "$SECRETS")"
  else data secrets missing 1; fi
  [ ! -f "$STATE/token-rotated" ] || data rotated at "$(cat "$STATE/token-rotated")"
}
