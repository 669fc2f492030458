# shellcheck shell=bash
# A swarm system's lock and state live in the swarm's own Raft store (docker configs, replicated to every
# manager), not only in the files of the manager a program runs on: a deploy goes through any manager, and
# losing one loses nothing. The lock is the config fab.SYSTEM.lock (a name is unique in the store: creating it
# is the cluster-wide test-and-set); the state is the config fab.SYSTEM.state.SEQ, the gzipped tar of
# releases.jsonl and current, a new one (SEQ+1) each time a program changed them. The manager's STATE files
# stay the working copy: every program of a swarm system first brings them up to the newest snapshot.
# shellcheck disable=SC2034,SC2153,SC2154  # globals shared across files; STATE and SYSTEM come from the program's head

# swarm_hold_state: after lock_take on a manager: the swarm's lock too, the state brought up to the swarm's
# newest, and whatever way the program ends, what it changed stored back and the swarm's lock released.
swarm_hold_state() {
  swarm_lock_take
  swarm_read_state
  DONE_HOOKS+=(swarm_state_done)
}

# swarm_lock_take: the lock fab.SYSTEM.lock in the swarm's store, labelled with this node. Held by this node,
# it is a dead program's (this one holds the manager's own lock: lock_take judged that holder); held by a node
# that is not ready (a manager down), it is stale; either is replaced and said. Held by a live other node: refused.
swarm_lock_take() {
  local name="fab.$SYSTEM.lock" node
  node=$(docker info --format '{{.Swarm.NodeID}}' 2>/dev/null) || node=""
  [ -n "$node" ] || die "$R_REFUSED" "this host is in no swarm: 'fab swarm init' makes the swarm of hosts.yml"
  if ! lock_info | docker config create --label "fab.node=$node" "$name" - >/dev/null 2>&1; then
    swarm_lock_node "$node" || die "$R_FAILED" "cannot take the swarm's lock of $SYSTEM (is this node a manager, and the swarm in quorum?)"
    [ -n "$SWARM_HOLDER_GONE" ] || die "$R_LOCKED" "a deploy through manager $SWARM_HOLDER holds the swarm's lock of $SYSTEM: $(swarm_lock_info)"
    say "info taking over the swarm's lock of $SYSTEM left by $(swarm_lock_info) ($SWARM_HOLDER_GONE)"
    local taken="another program took the swarm's lock of $SYSTEM meanwhile"
    docker config rm "$name" >/dev/null 2>&1 || die "$R_LOCKED" "$taken"
    lock_info | docker config create --label "fab.node=$node" "$name" - >/dev/null 2>&1 || die "$R_LOCKED" "$taken"
  fi
  SWARM_LOCKED=1
}

# swarm_lock_node NODE: who holds the swarm's lock of SYSTEM, seen from node NODE (this one): SWARM_HOLDER
# (its manager's hostname) and SWARM_HOLDER_GONE, why its program cannot be running ("" when it may be): its
# manager is not ready, or it is NODE, whose own lock the caller found free or stale. Fails when the lock is
# not held (or the store cannot be read).
swarm_lock_node() {
  local holder state
  holder=$(docker config inspect --format '{{index .Spec.Labels "fab.node"}}' "fab.$SYSTEM.lock" 2>/dev/null) || return 1
  state=$(docker node inspect --format '{{.Status.State}} {{.Description.Hostname}}' "$holder" 2>/dev/null) \
    || state="gone (left the swarm)"
  SWARM_HOLDER=${state#* } SWARM_HOLDER_GONE=""
  if [ "${state%% *}" != ready ]; then SWARM_HOLDER_GONE="its manager $SWARM_HOLDER is ${state%% *}"
  elif [ "$holder" = "$1" ]; then SWARM_HOLDER_GONE="its program on this manager is gone"
  fi
}

# swarm_lock_holder: lock_holder's answer when this manager's own lock is free: the swarm's lock of SYSTEM, held
# through another manager (or left by one that is down, or by a program on this one that died: stale).
swarm_lock_holder() {
  swarm_lock_node "$(docker info --format '{{.Swarm.NodeID}}' 2>/dev/null)" || return 0
  LOCK_INFO="$(swarm_lock_info) through manager $SWARM_HOLDER"
  [ -z "$SWARM_HOLDER_GONE" ] || LOCK_STALE=1 LOCK_GONE=$SWARM_HOLDER_GONE
}

# swarm_lock_break: unlock --force of a swarm system: after the manager's own lock, the swarm's, whoever holds it.
swarm_lock_break() {
  swarm_lock_node "$(docker info --format '{{.Swarm.NodeID}}' 2>/dev/null)" || return 0
  say "info removing the swarm's lock of $SYSTEM held by $(swarm_lock_info) through manager $SWARM_HOLDER"
  docker config rm "fab.$SYSTEM.lock" >/dev/null || die "$R_FAILED" "cannot remove the swarm's lock of $SYSTEM"
}

# swarm_lock_info: who holds the swarm's lock (its content: lock_info's line).
swarm_lock_info() {
  docker config inspect --format '{{json .Spec.Data}}' "fab.$SYSTEM.lock" 2>/dev/null | tr -d '"' | base64 -d 2>/dev/null \
    | head -c 300
}

# swarm_state_seq: the newest snapshot's SEQ in the swarm's store (0: none); fails when the store cannot be read
# (a store that does not answer is never taken for an empty one).
swarm_state_seq() {
  local names
  names=$(docker config ls --filter "label=fab.state=$SYSTEM" --format '{{.Name}}') || return 1
  sed -n "s/^fab\.$SYSTEM\.state\.\([0-9]\{1,9\}\)$/\1/p" <<< "$names" | sort -n | tail -n 1 | grep . || echo 0
}

# state_sha: the checksum of the state a snapshot holds (what tells whether a program changed it).
state_sha() { cat "$STATE/releases.jsonl" "$STATE/current" 2>/dev/null | sha256sum | cut -d' ' -f1; }

# swarm_read_state: STATE brought up to the swarm's newest snapshot when it is newer than the one this
# manager's files come from (STATE/swarm-seq: its SEQ and the state's checksum then): unpacked aside, checked,
# then renamed into place. A history of this manager's own that the snapshot does not continue is kept beside
# it (releases.jsonl.kept-SEQ) and said. Files changed since their last snapshot (one that could not be
# stored) are stored by this program's end.
swarm_read_state() {
  local seq mine=0 stored="" new unreadable
  seq=$(swarm_state_seq) || die "$R_FAILED" "cannot read the swarm's store (is this node a manager, and the swarm in quorum?)"
  [ ! -f "$STATE/swarm-seq" ] || read -r mine stored < "$STATE/swarm-seq"
  [[ $mine =~ ^[0-9]{1,9}$ ]] || mine=0
  # shellcheck disable=SC2034  # (swarm_state_done reads them; a program that only reads the state does not)
  STATE_SEQ=$seq STATE_READ=$(state_sha)
  [ -n "${SWARM_LOCKED:-}" ] || LOCK_ELSEWHERE=swarm_lock_holder   # (the swarm's lock, unless this program holds it)
  if [ "$seq" -le "$mine" ]; then
    [ "$STATE_READ" = "$stored" ] || [ ! -f "$STATE/releases.jsonl" ] || STATE_READ=unstored
    return 0
  fi
  mkdir -p "$STATE" || die "$R_FAILED" "cannot create $STATE"
  new=$(mktemp -d "$STATE/swarm-state.XXXXXX") || die "$R_FAILED" "cannot unpack the swarm's state in $STATE"
  TMP_FILES+=("$new")
  unreadable="the swarm's state snapshot fab.$SYSTEM.state.$seq cannot be read: nothing was changed"
  docker config inspect --format '{{json .Spec.Data}}' "fab.$SYSTEM.state.$seq" | tr -d '"' | base64 -d > "$new/tgz" \
    || die "$R_FAILED" "$unreadable"
  tar -xzf "$new/tgz" -C "$new" releases.jsonl 2>/dev/null || die "$R_FAILED" "$unreadable"
  [ -s "$new/releases.jsonl" ] || die "$R_FAILED" "$unreadable"
  tar -xzf "$new/tgz" -C "$new" current 2>/dev/null || rm -f "$new/current"
  if [ -s "$STATE/releases.jsonl" ] && ! cmp -s "$STATE/releases.jsonl" <(head -c "$(stat -c %s "$STATE/releases.jsonl")" "$new/releases.jsonl"); then
    cp -p "$STATE/releases.jsonl" "$STATE/releases.jsonl.kept-$seq" || die "$R_FAILED" "cannot keep $STATE/releases.jsonl aside"
    say "info this manager's release history of $SYSTEM had lines the swarm's does not: kept in $STATE/releases.jsonl.kept-$seq"
  fi
  if [ ! -f "$new/current" ]; then rm -f "$STATE/current"; fi
  [ ! -f "$new/current" ] || mv -f "$new/current" "$STATE/current" || die "$R_FAILED" "cannot write $STATE/current"
  mv -f "$new/releases.jsonl" "$STATE/releases.jsonl" || die "$R_FAILED" "cannot write $STATE/releases.jsonl"
  STATE_READ=$(state_sha)
  printf '%s %s\n' "$seq" "$STATE_READ" > "$STATE/swarm-seq" || die "$R_FAILED" "cannot write $STATE/swarm-seq"
}

# swarm_state_done (a DONE_HOOK): a state this program changed becomes the swarm's snapshot SEQ+1 (the two
# before it kept, older ones removed); then the swarm's lock is released. A snapshot that cannot be stored is
# said: this manager's files still hold it, and its next program stores it.
swarm_state_done() {
  local next=$(( ${STATE_SEQ:-0} + 1 )) old files=(releases.jsonl)
  [ ! -f "$STATE/current" ] || files+=(current)
  if [ -n "${STATE_READ:-}" ] && [ -f "$STATE/releases.jsonl" ] && [ "$(state_sha)" != "$STATE_READ" ]; then
    if tar -cz -C "$STATE" "${files[@]}" 2>/dev/null \
        | docker config create --label "fab.state=$SYSTEM" "fab.$SYSTEM.state.$next" - >/dev/null 2>&1; then
      printf '%s %s\n' "$next" "$(state_sha)" > "$STATE/swarm-seq"
      for old in $(docker config ls --filter "label=fab.state=$SYSTEM" --format '{{.Name}}'); do
        [ "${old##*.}" -ge $(( next - 2 )) ] 2>/dev/null || docker config rm "$old" >/dev/null 2>&1
      done
    else
      say "info the release history could not be stored in the swarm (fab.$SYSTEM.state.$next): only this manager has it until its next program"
    fi
  fi
  [ "${SWARM_LOCKED:-0}" = 0 ] || docker config rm "fab.$SYSTEM.lock" >/dev/null 2>&1 || true
}
