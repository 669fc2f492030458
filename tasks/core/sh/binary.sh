# shellcheck shell=bash
# Binary stacks (seed 003): one executable run by a systemd unit. Each release is a folder
# <releases>/<tag>/ beside the live path, holding the file and its sha256; the live path is a symlink to it,
# switched by renaming a new symlink over it (atomic); then the unit is restarted and gated on `active` and the
# health URL. Globals: BIN ("STACK:path", :unit, :owner, :mode, :keep), PREV_TARGET (what each live path
# pointed at before this program switched it: what a failed release goes back to), ARTIFACTS (where the tool
# uploads a binary, named by its sha256).
# shellcheck disable=SC2034,SC2154  # globals shared across files; ARTIFACTS and R_* come from the program's head

# add_binary STACK PATH RELEASES UNIT OWNER MODE KEEP WAIT HEALTH: declare a binary stack, in order with the
# others (RELEASES: the folder of its release folders, beside PATH), and the functions that bring it up, switch
# it and check it (stacks.sh's `does`).
add_binary() {
  declare -gA BIN SPEC_KIND SPEC_COMPOSE SPEC_PROJECT SPEC_WAIT SPEC_HEALTH SPEC_APPS SPEC_SCALE SPEC_DOES
  STACKS+=("$1")
  SPEC_KIND[$1]=binary SPEC_COMPOSE[$1]="" SPEC_PROJECT[$1]="" SPEC_WAIT[$1]=$8 SPEC_HEALTH[$1]=$9
  SPEC_APPS[$1]="$1=" SPEC_SCALE[$1]=""
  SPEC_DOES[$1:up]=unit_up SPEC_DOES[$1:pin]=link_binary SPEC_DOES[$1:check]=check_binary
  BIN[$1:path]=$2 BIN[$1:releases]=$3 BIN[$1:unit]=$4.service BIN[$1:owner]=$5 BIN[$1:mode]=$6 BIN[$1:keep]=$7
}

# release_file STACK TAG: where release TAG of STACK's binary lives.
release_file() { printf '%s/%s/%s' "${BIN[$1:releases]}" "$2" "$(basename "${BIN[$1:path]}")"; }

file_sha() { sha256sum < "$1" | cut -d' ' -f1; }

# selinux_label PATH...: the SELinux labels the policy gives (seed 003 on Oracle Linux: without them the unit
# fails with 203/EXEC); nothing where SELinux is not enabled.
selinux_label() {
  command -v selinuxenabled >/dev/null 2>&1 && selinuxenabled || return 0
  restorecon -R "$@" >/dev/null || say "info restorecon -R $* failed"
}

# fetch_binary STACK TAG SHA PIN [GOOD...]: this release's binary in its folder. A deploy (TAG, SHA) installs
# the uploaded ARTIFACTS/SHA, checked, as releases/TAG/ (built aside, renamed into place; a TAG already there
# with other bytes only if it never ran: see replaceable; GOOD are the pins that passed their gate, from the
# history); a rollback or a kept stack (PIN tag@sha256:...) uses the release kept there, checked.
# RELEASE_BINARIES gets its unit and size, for the release history.
fetch_binary() {
  local stack=$1 tag=$2 sha=$3 pin=$4 file dir tmp
  if [ -n "$pin" ]; then tag=${pin%@*} sha=${pin#*@sha256:}; fi
  file=$(release_file "$stack" "$tag")
  dir=${file%/*}
  say "step binary $stack: $tag (sha256 ${sha:0:12}) in $dir"
  if [ -e "$file" ] && [ "$(file_sha "$file")" = "$sha" ]; then
    :
  elif [ -e "$file" ] && { [ -n "$pin" ] || ! replaceable "$stack" "$tag" "$file" "${@:5}"; }; then
    die "$R_REFUSED" "release $tag of $stack is on the host with other bytes than sha256 ${sha:0:12} (it runs, or once passed its gate): give this build a new tag"
  elif [ -n "$pin" ]; then
    die "$R_PULL" "release $tag of $stack is no longer on the host (pruned): deploy it again with --artifact"
  else
    [ -f "$ARTIFACTS/$sha" ] || die "$R_PULL" "the binary of $stack $tag was not uploaded to $ARTIFACTS"
    [ "$(file_sha "$ARTIFACTS/$sha")" = "$sha" ] || { rm -f "$ARTIFACTS/$sha"
      die "$R_PULL" "the uploaded binary of $stack $tag is damaged (not sha256 ${sha:0:12}): removed; deploy again"; }
    (umask 022 && mkdir -p "${dir%/*}") || die "$R_FAILED" "cannot create ${dir%/*}"
    tmp=$(mktemp -d "${dir%/*}/.new.XXXXXX") || die "$R_FAILED" "cannot create a folder in ${dir%/*} (disk full?)"
    TMP_FILES+=("$tmp")
    { cp "$ARTIFACTS/$sha" "$tmp/${file##*/}" && chmod "${BIN[$stack:mode]}" "$tmp/${file##*/}" \
        && printf '%s\n' "$sha" > "$tmp/sha256" && chmod 755 "$tmp" && sync "$tmp/${file##*/}"; } \
      || die "$R_FAILED" "cannot write $tmp (disk full?)"
    [ -z "${BIN[$stack:owner]}" ] || chown -R "${BIN[$stack:owner]}" "$tmp" \
      || die "$R_REFUSED" "chown ${BIN[$stack:owner]} failed: does that user exist on the host?"
    [ ! -e "$dir" ] || { say "info release $tag of $stack is replaced by another build of that tag (it never passed its gate)"
      mv -T "$dir" "$tmp.old" && TMP_FILES+=("$tmp.old"); } || die "$R_FAILED" "cannot move $dir aside"
    mv -T "$tmp" "$dir" || die "$R_FAILED" "cannot rename $tmp to $dir"
    selinux_label "$dir"
  fi
  use_pin "$stack" "$tag@sha256:$sha"
  RELEASE_BINARIES+="${RELEASE_BINARIES:+,}$(json_str "$stack"):{\"unit\":$(json_str "${BIN[$stack:unit]}"),\"bytes\":$(stat -c %s "$file")}"
}

# replaceable STACK TAG FILE [GOOD...]: a release folder another build of the same tag may replace: not live,
# and not one of the GOOD pins (a build that failed its gate, or was never deployed).
replaceable() {
  local old
  [ "$(readlink "${BIN[$1:path]}")" != "$3" ] || return 1
  old=$(cat "${3%/*}/sha256" 2>/dev/null) || return 0
  [[ " ${*:4} " != *" $2@sha256:$old "* ]]
}

# link_binary STACK new|previous: the live path points at this release (new) or back at what it pointed at
# before this program switched it (previous): a new symlink renamed over it. A binary found there as a plain
# file (placed by hand, as seed 003 does) is first kept, hard-linked, as releases/adopted-<sha>/ and is what
# "previous" goes back to. Returns 2 when there is nothing to go back to, 1 when the link cannot be written.
link_binary() {
  local stack=$1 path=${BIN[$1:path]} target
  declare -gA PREV_TARGET
  if [ "$2" = new ]; then
    if [ -z "${PREV_TARGET[$stack]+set}" ]; then adopt_binary "$stack" || return 1; PREV_TARGET[$stack]=$RUNS; fi
    target=$(release_file "$stack" "${PINS[$stack]%@*}")
  else
    target=${PREV_TARGET[$stack]:-}
    [ -n "$target" ] || { say "info $stack had no binary before this release: nothing to go back to"; return 2; }
  fi
  ln -sfn "$target" "$path.fab-new" && mv -T "$path.fab-new" "$path" || return 1
  selinux_label "$path"
}

# adopt_binary STACK: RUNS becomes what the live path runs now (a symlink's target; a plain file, kept as
# releases/adopted-<sha>/ first); empty when there is none yet.
adopt_binary() {
  local path=${BIN[$1:path]} sha dir
  RUNS=""
  if [ -L "$path" ]; then RUNS=$(readlink "$path"); return 0; fi
  [ -f "$path" ] || return 0
  sha=$(file_sha "$path")
  dir=${BIN[$1:releases]}/adopted-${sha:0:12}
  (umask 022 && mkdir -p "$dir") && { [ -e "$dir/${path##*/}" ] || ln "$path" "$dir/${path##*/}"; } \
    && printf '%s\n' "$sha" > "$dir/sha256" || return 1
  say "info $path was a plain file (placed by hand): kept as $dir"
  RUNS=$dir/${path##*/}
}

# unit_up STACK: restart the unit, then gate: active (not activating, not restarting, not failed) and the
# health URL answering 2xx (without one: active on three looks in a row), within the stack's wait.
# The start rate limit (5 starts in 10 s by default) is reset first: it is there to stop a crash loop, and
# a broken release put back followed by a rollback are three deliberate starts plus systemd's own retries
# within seconds; left alone, systemd refuses the good release ("start request repeated too quickly").
unit_up() {
  local stack=$1 unit=${BIN[$1:unit]} wait=${SPEC_WAIT[$1]} active sub i steady=0 out
  systemctl reset-failed "$unit" 2>/dev/null
  out=$(systemctl restart "$unit" 2>&1) || { say "fail $stack: systemctl restart $unit failed: ${out//$'\n'/ }"; return 1; }
  for (( i = 0; i < wait * 2; i++ )); do
    active=$(systemctl show -p ActiveState --value "$unit") sub=$(systemctl show -p SubState --value "$unit")
    case $active/$sub in
      failed/*|*/auto-restart) break ;;
      active/*)
        steady=$((steady + 1))
        if [ -n "${SPEC_HEALTH[$stack]}" ]; then health_ok "${SPEC_HEALTH[$stack]}" && return 0
        elif [ "$steady" -ge 3 ]; then return 0; fi ;;
      *) steady=0 ;;
    esac
    sleep 0.5
  done
  say "fail $stack: $unit is $active ($sub, $(systemctl show -p Result --value "$unit"))${SPEC_HEALTH[$stack]:+; ${SPEC_HEALTH[$stack]} did not answer 2xx}"
  last_lines "$unit" journalctl -u "$unit" -n 30 -o short-iso --no-pager
  return 1
}

# check_binary STACK (preflight): the unit is installed, the live path is a symlink, a plain file or nothing.
check_binary() {
  local path=${BIN[$1:path]}
  systemctl cat "${BIN[$1:unit]}" >/dev/null 2>&1 \
    || problem "$1" "systemd unit ${BIN[$1:unit]} is not installed: 'fab setup' installs it from the stack's unit_template"
  [ ! -e "$path" ] || [ -L "$path" ] || [ -f "$path" ] \
    || problem "$1" "$path is neither a file nor a symlink: the tool will not replace it"
}

# prune_releases STACK [GOOD...]: keep the live release, the one it replaced, and the first BIN[:keep] folders
# in this order: those of the GOOD pins (STACK's good releases in the history, newest first: rollback
# targets), then the others (a build that failed its gate, a binary kept from by hand), newest first. Remove the rest and the
# uploaded artifacts no kept release holds. (By age alone, a never-live build outranked the release a
# rollback --to needed.)
prune_releases() {
  local stack=$1 live prev d n=0 keep=" " dirs root pin
  declare -A seen=()
  root=${BIN[$stack:releases]}
  live=$(readlink "${BIN[$stack:path]}") prev=${PREV_TARGET[$stack]:-}
  mapfile -t dirs < <(for pin in "${@:2}"; do [ ! -d "$root/${pin%@*}" ] || printf '%s/\n' "$root/${pin%@*}"; done
                      ls -1dt "$root"/*/ 2>/dev/null)
  for d in "${dirs[@]}"; do
    d=${d%/}
    [ -z "${seen[$d]:-}" ] || continue
    seen[$d]=1
    n=$((n + 1))
    if [ "$n" -le "${BIN[$stack:keep]}" ] || [ "${live%/*}" = "$d" ] || [ "${prev%/*}" = "$d" ]; then
      keep+="$(cat "$d/sha256" 2>/dev/null) "
    else
      rm -rf -- "$d" && say "info pruned release ${d##*/} of $stack"
    fi
  done
  for d in "$ARTIFACTS"/*; do
    [ -f "$d" ] && [[ $keep != *" ${d##*/} "* ]] && rm -f -- "$d"
  done
  return 0
}

# show_unit STACK UNIT PATH: the unit's state and the release its live path points at (status).
show_unit() {
  data unit_state stack "$1" unit "$2" \
    state "$(systemctl show -p ActiveState --value "$2" 2>/dev/null)" \
    sub "$(systemctl show -p SubState --value "$2" 2>/dev/null)" \
    since "$(systemctl show -p ActiveEnterTimestamp --value "$2" 2>/dev/null)" \
    target "$(readlink "$3" 2>/dev/null)"
}
