# shellcheck shell=bash
# Copies of the backups off the VPS (backup: {offsite: [...]} of a system): after the local backups of a run
# are verified, restic sends them, with the tool's state (the release history), to each repository, encrypted
# with the system's restic key (RESTIC_KEY, a root-only file on the VPS, read by restic from that file: never
# an argument, never printed), deduplicated against what the repository holds. Snapshots are made as host
# SYSTEM (the system's name, not the server's: a rebuilt server continues the same history) with the tags fab
# and system=SYSTEM; retention forgets them by the same counts as the local backups.
# shellcheck disable=SC2034,SC2154  # globals shared across files; RESTIC_KEY, SYSTEM, STATE, BACKUPS, TAKEN and R_* come from the head

# offsite_key: RESTIC_KEY made when missing (32 random bytes, base64; mode 600 in a 700 folder) and said so:
# without it no copy can be read, so the operator keeps a copy off the VPS ('fab backup-key').
offsite_key() {
  if [ -s "$RESTIC_KEY" ]; then chmod 600 "$RESTIC_KEY" || die "$R_BACKUP" "cannot make $RESTIC_KEY root's only"; return 0; fi
  { mkdir -p "${RESTIC_KEY%/*}" && chmod 700 "${RESTIC_KEY%/*}"; } || die "$R_BACKUP" "cannot create ${RESTIC_KEY%/*}"
  (umask 077 && head -c 32 /dev/urandom | base64 > "$RESTIC_KEY.new" && sync -f "$RESTIC_KEY.new" && mv "$RESTIC_KEY.new" "$RESTIC_KEY") \
    || { rm -f "$RESTIC_KEY.new"; die "$R_BACKUP" "cannot write $RESTIC_KEY"; }
  say "info a new restic key in $RESTIC_KEY: keep a copy off the VPS ('fab backup-key' says how); without it no offsite copy can be read"
}

# offsite_env: the repositories' credentials, when RESTIC_KEY's folder holds restic.env (NAME=VALUE lines the
# operator writes there, mode 600: S3's AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
# AWS_DEFAULT_REGION; a REST server's RESTIC_REST_USERNAME, RESTIC_REST_PASSWORD, read by restic 0.16 and later)
# exported for restic, never on an argument. A line that is not one of those names is refused by its number
# (never its text: it may hold a secret).
offsite_env() {
  local file="${RESTIC_KEY%/*}/restic.env" line name n=0
  [ -e "$file" ] || return 0
  chmod 600 "$file" || die "$R_BACKUP" "cannot make $file root's only"
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    name=${line%%=*}
    case "$name" in
      AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|AWS_DEFAULT_REGION|RESTIC_REST_USERNAME|RESTIC_REST_PASSWORD)
        [ "$name" != "$line" ] || die "$R_REFUSED" "$file:$n: not NAME=VALUE"
        export "$name=${line#*=}" ;;
      *) die "$R_REFUSED" "$file:$n: not a credential restic reads (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_DEFAULT_REGION, RESTIC_REST_USERNAME, RESTIC_REST_PASSWORD)" ;;
    esac
  done < "$file"
}

# offsite_open REPO: REPO answers and opens with the key; a repository that does not exist yet is made
# (restic init). Fails with OFFSITE_ERR (restic's own last words) when it is down or the key does not open it.
offsite_open() {
  local out
  out=$(restic -r "$1" --password-file "$RESTIC_KEY" cat config 2>&1 >/dev/null) && return 0
  if [[ $out == *"Is there a repository at the following location?"* ]]; then   # (down: init says why)
    out=$(restic -r "$1" --password-file "$RESTIC_KEY" init 2>&1 >/dev/null) \
      && { say "info a new restic repository at $1"; return 0; }
  fi
  OFFSITE_ERR=$(printf '%s\n' "$out" | grep -m 1 '^Fatal' || printf '%s\n' "$out" | tail -n 1)
  return 1
}

# offsite_ready: before a backup that will be sent takes anything: restic installed, the key there (made when
# missing) and the repositories' credentials exported (offsite_env); what cannot be sent refuses the run here,
# before a backup is taken that would then not reach its copy.
offsite_ready() {
  command -v restic >/dev/null 2>&1 || die "$R_REFUSED" "restic is not installed on this host: 'fab bootstrap' installs it (apt-get install restic)"
  offsite_key
  offsite_env
}

# offsite_send LAST DAILY WEEKLY MONTHLY REPO...: the backups this program took (TAKEN), what exists of CARRIED
# (one path per line: the stacks' .env files, each binary's releases and environment folder: what no repository
# holds, encrypted in the copy like the rest) and
# the tool's state sent to each REPO and the repository checked (offsite_copy), then each repository's snapshots of
# the system beyond the retention counts forgotten and pruned. Every repository is tried; one that failed: exit
# 10 naming each and why (the local backups are kept).
offsite_send() {
  local keep=(--keep-last "$1" --keep-daily "$2" --keep-weekly "$3" --keep-monthly "$4") repo names n out t0
  local paths=() failed=()
  shift 4
  IFS=, read -ra names <<< "${TAKEN:-}"
  for n in "${names[@]}"; do paths+=("$BACKUPS/${n//\"/}"); done
  [ "${#paths[@]}" -gt 0 ] || return 0
  while IFS= read -r n; do [ -z "$n" ] || [ ! -e "$n" ] || paths+=("$n"); done <<< "${CARRIED:-}"
  for repo in "$@"; do
    say "step offsite $repo: this run's backups and the release history, encrypted, then the repository checked"
    t0=$EPOCHREALTIME
    if ! offsite_copy "$repo" "${paths[@]}"; then
      failed+=("$repo ($OFFSITE_ERR)"); data offsite repo "$repo" result failed error "$OFFSITE_ERR"; continue
    fi
    data offsite repo "$repo" result ok summary "$OFFSITE_SUMMARY" seconds "$(backup_seconds "$t0")"
    out=$(restic -r "$repo" --password-file "$RESTIC_KEY" forget --host "$SYSTEM" --tag fab --group-by host,tags \
      "${keep[@]}" --prune 2>&1) \
      || say "info retention in $repo did not finish ($(printf '%s\n' "$out" | tail -n 1)): the next backup tries again"
  done
  [ "${#failed[@]}" = 0 ] || die "$R_BACKUP" "the offsite copy failed: ${failed[*]}; the local backups are kept"
}

# offsite_copy REPO PATH...: one snapshot of PATHs and the tool's state (not the lock) in REPO (opened or
# made), then restic check of the repository's structure (every pack there at its indexed size, every tree
# readable): a snapshot is "verified" only then. Its restic summary in OFFSITE_SUMMARY, and a line in
# offsite.jsonl (fab backups reads sizes and checks there); fails with OFFSITE_ERR.
offsite_copy() {
  local repo=$1 out
  shift
  offsite_open "$repo" || return 1
  out=$(restic -r "$repo" --password-file "$RESTIC_KEY" backup --json --host "$SYSTEM" --tag fab --tag "system=$SYSTEM" \
    --exclude "$STATE/lock" -- "$@" "$STATE" 2>&1) \
    || { OFFSITE_ERR=$(printf '%s\n' "$out" | grep -v '^{' | tail -n 1); return 1; }
  OFFSITE_SUMMARY=$(printf '%s\n' "$out" | grep -m 1 '"message_type":"summary"') \
    || { OFFSITE_ERR="restic finished without its summary: the snapshot is not known"; return 1; }
  if offsite_verify "$repo"; then
    offsite_note "$repo" sent "\"check\":\"ok\",\"summary\":$OFFSITE_SUMMARY"
  elif [ "$OFFSITE_LOCKED" = 1 ]; then   # another host's run holds it: sent, not verified (fab backups says so)
    offsite_note "$repo" sent "\"check\":\"locked\",\"summary\":$OFFSITE_SUMMARY"
    say "info $repo was locked by another run (${OFFSITE_ERR}): the copy is there, not verified yet ('fab backup-check' verifies it)"
  else
    offsite_note "$repo" sent "\"check\":\"failed\",\"error\":$(json_str "$OFFSITE_ERR"),\"summary\":$OFFSITE_SUMMARY"
    OFFSITE_ERR="sent, but restic check found: $OFFSITE_ERR"
    return 1
  fi
}

# offsite_verify REPO [--read-data-subset=N%]: restic check of REPO (with a share of the packs read back
# whole and decrypted, when given); fails with restic's first finding in OFFSITE_ERR. check locks the
# repository: when another host's run holds it (a repository shared by a fleet), tried 3 times 10 s apart,
# then OFFSITE_LOCKED=1 (not a finding about the data).
offsite_verify() {
  local out try
  OFFSITE_LOCKED=0
  for try in 1 2 3; do
    out=$(restic -r "$1" --password-file "$RESTIC_KEY" check "${@:2}" 2>&1) && return 0
    [[ $out == *"repository is already locked"* ]] || break
    OFFSITE_LOCKED=1
    [ "$try" = 3 ] || sleep 10
  done
  OFFSITE_ERR=$(printf '%s\n' "$out" | grep -m 1 -iE '^(pack |error|Fatal: (wrong|unable|create)|.*already locked)' \
    || printf '%s\n' "$out" | tail -n 1)
  [[ $out == *"repository is already locked"* ]] || OFFSITE_LOCKED=0
  return 1
}

# offsite_note REPO KIND JSON-FIELDS: a line in STATE/offsite.jsonl (the newest 5000 kept): when, which
# repository, what (sent, check) and its fields. A failed write is said, not fatal: the copy is there, and
# fab backups then shows it unverified (the safe side).
offsite_note() {
  local line
  line=$(printf '{"at":"%s","repo":%s,"kind":"%s",%s}' "$(now)" "$(json_str "$1")" "$2" "$3")
  atomic_write "$STATE/offsite.jsonl" offsite_notes "$STATE/offsite.jsonl" "$line" \
    || say "info cannot record the copy in $STATE/offsite.jsonl (disk full?): fab backups will show it unverified"
}

# offsite_notes FILE LINE: FILE's newest 4999 lines, then LINE.
offsite_notes() { if [ -f "$1" ]; then tail -n 4999 "$1" || return 1; fi; printf '%s\n' "$2"; }

# offsite_check SUBSET REPO...: the scheduled check: each REPO's structure, then (when it is sound: restic
# retries a short pack for minutes) SUBSET of its packs (a percentage or n/m) read back and decrypted, the
# result recorded; one that fails: exit 10 naming each and why.
offsite_check() {
  local subset=$1 repo failed=() t0
  shift
  for repo in "$@"; do
    say "step check $repo: restic check, $subset of the data read back"
    t0=$EPOCHREALTIME
    if offsite_verify "$repo" && offsite_verify "$repo" "--read-data-subset=$subset"; then
      offsite_note "$repo" check "\"subset\":$(json_str "$subset"),\"result\":\"ok\""
      data offsite_check repo "$repo" result ok seconds "$(backup_seconds "$t0")"
    else
      offsite_note "$repo" check "\"subset\":$(json_str "$subset"),\"result\":\"failed\",\"error\":$(json_str "$OFFSITE_ERR")"
      data offsite_check repo "$repo" result failed error "$OFFSITE_ERR" seconds "$(backup_seconds "$t0")"
      failed+=("$repo ($OFFSITE_ERR)")
    fi
  done
  [ "${#failed[@]}" = 0 ] || die "$R_BACKUP" "restic check failed: ${failed[*]}"
}

# offsite_list REPO...: read-only: each REPO's snapshots of the system as restic lists them, and the lines of
# offsite.jsonl (sizes, checks); a repository that cannot be read is reported with restic's reason. Without a
# key on the VPS nothing was ever sent.
offsite_list() {
  local repo out line
  if [ ! -s "$RESTIC_KEY" ]; then
    for repo in "$@"; do data offsite_listed repo "$repo" error "no restic key on this host yet: nothing was sent"; done
    return 0
  fi
  offsite_env
  for repo in "$@"; do
    if out=$(restic -r "$repo" --password-file "$RESTIC_KEY" --no-lock snapshots --json --host "$SYSTEM" --tag fab 2>&1); then
      data offsite_listed repo "$repo" snapshots "$out"
    else
      data offsite_listed repo "$repo" error "$(printf '%s\n' "$out" | grep -m 1 '^Fatal' || printf '%s\n' "$out" | tail -n 1)"
    fi
  done
  if [ -f "$STATE/offsite.jsonl" ]; then
    while IFS= read -r line; do data offsite_note line "$line"; done < "$STATE/offsite.jsonl"
  fi
}

# offsite_fetch REPO SNAPSHOT SOURCE...: the backup folders SOURCE (their paths in the snapshot) of SNAPSHOT in
# REPO restored into BACKUPS under their own names (each blob authenticated by restic as it decrypts it; no
# --verify pass reading them again: a backup is used only after its own checksums pass, backup_check,
# files_check, which read every file anyway). The key must be on this host already
# (fab recover puts the operator's copy there): a new one would open nothing. A failure leaves nothing behind.
offsite_fetch() {
  local repo=$1 snap=$2 scratch=$BACKUPS/.fetch src out includes=()
  shift 2
  [ -s "$RESTIC_KEY" ] || die "$R_REFUSED" "no restic key in $RESTIC_KEY: nothing was ever sent from here, and a new key would open no copy"
  offsite_env
  for src in "$@"; do includes+=(--include "$src"); done
  { rm -rf -- "$scratch" && mkdir -p "$BACKUPS" && mkdir -m 700 "$scratch"; } || die "$R_BACKUP" "cannot create $scratch"
  TMP_FILES+=("$scratch")
  say "step fetch ${*##*/} from snapshot ${snap:0:8} of $repo"
  out=$(restic -r "$repo" --password-file "$RESTIC_KEY" restore "$snap" --target "$scratch" "${includes[@]}" 2>&1) \
    || die "$R_BACKUP" "cannot restore snapshot ${snap:0:8} from $repo: $(printf '%s\n' "$out" | grep -m 1 -iE '^(Fatal|error)' || printf '%s\n' "$out" | tail -n 1)"
  for src in "$@"; do
    [ -d "$scratch$src" ] || die "$R_BACKUP" "snapshot ${snap:0:8} of $repo holds no $src"
    [ ! -e "$BACKUPS/${src##*/}" ] || die "$R_REFUSED" "$BACKUPS/${src##*/} is there already: not replaced"
    mv -T -- "$scratch$src" "$BACKUPS/${src##*/}" || die "$R_BACKUP" "cannot move ${src##*/} into $BACKUPS"
  done
  rm -rf -- "$scratch"
}

# offsite_scratch: BACKUPS, a drill's own folder for what it fetches (.offsite-drill beside the backups, mode
# 700), made empty and removed when the program ends, however it ends.
offsite_scratch() {
  [[ $BACKUPS == */.offsite-drill ]] || die "$R_FAILED" "not a drill's folder: $BACKUPS"
  { rm -rf -- "$BACKUPS" && mkdir -p "${BACKUPS%/*}" && mkdir -m 700 "$BACKUPS"; } || die "$R_BACKUP" "cannot create $BACKUPS"
  TMP_FILES+=("$BACKUPS")
}

# offsite_key_show show|send sftp|none: the system's restic key (made when missing) by its path, mode and
# sha256, its value only with send (fab backup-key --save writes it on the operator's machine); and root's SSH
# public key, which the server of an SFTP repository must authorise: with sftp, an ed25519 key is made when
# root has none (restic's ssh logs in to that server with it). SYSROOT prefixes /root (the fast tier's folder).
offsite_key_show() {
  local ssh="$SYSROOT/root/.ssh" pub="" f value=()
  offsite_key
  if [ "$2" = sftp ] && ! compgen -G "$ssh/id_*" >/dev/null; then
    { mkdir -p "$ssh" && chmod 700 "$ssh" && ssh-keygen -q -t ed25519 -N '' -C "fab-offsite@$SYSTEM" -f "$ssh/id_ed25519"; } \
      || die "$R_FAILED" "cannot make an SSH key for root in $ssh"
    say "info a new SSH key for root, /root/.ssh/id_ed25519: authorise its public key on the SFTP repository's server"
  fi
  for f in "$ssh/id_ed25519.pub" "$ssh/id_ecdsa.pub" "$ssh/id_rsa.pub"; do
    if [ -s "$f" ]; then pub=$(head -n 1 "$f"); break; fi
  done
  [ "$1" = send ] && value=(value "$(cat "$RESTIC_KEY")")
  data restic_key path "$RESTIC_KEY" mode "$(stat -c %a "$RESTIC_KEY")" sha256 "$(sha256sum < "$RESTIC_KEY" | cut -d' ' -f1)" \
    ssh_public "$pub" "${value[@]}"
}
