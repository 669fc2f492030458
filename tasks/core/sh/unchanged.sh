# shellcheck shell=bash
# Unchanged stacks: a stack `compose up` would not change is left running, known without asking compose from the
# record of its last passed gate (state/stacks/STACK.up: preflight's rendering and its containers' configuration
# hashes), or because its apps run other images than the previous good release (then it changes anyway).
# Globals: RENDERED (preflight.sh: each stack's rendering's sha256), AGAIN (stacks rendered again after their
# .env changed: render_again), STACKS, SPEC_*, PINS.
# shellcheck disable=SC2034,SC2154  # globals shared across files; STATE and R_* come from the program's head

# unchanged STACK: `compose up` would change nothing in STACK, so it is not run (the health URL is still
# checked), and no compose call asks: preflight rendered STACK's configuration (RENDERED: its sha256) exactly as
# when STACK last passed its gate (record_up), and its running containers carry the configuration hashes
# recorded then (compose's label), run the image IDs their image names have now, healthy where they have a
# healthcheck, as many as its replicas (scale:, else one), nothing else in the project. Any doubt (no record, a
# damaged one, a docker call failing, a container starting or stopped) says no.
unchanged() {
  local project=${SPEC_PROJECT[$1]} record=$STATE/stacks/$1.up ids have svc hash run health image ref word
  declare -A count=() wanted=() id=()
  declare -gA RENDERED
  [ -n "${RENDERED[$1]:-}" ] && [ -f "$record" ] || return 1
  { read -r word hash && [ "$word $hash" = "rendered ${RENDERED[$1]}" ] || return 1
    while read -r svc hash; do
      [[ $svc =~ ^[A-Za-z0-9._-]+$ && $hash =~ ^[0-9a-f]{64}$ ]] || return 1
      wanted[$svc]=$hash; count[$svc]=0
    done; } < "$record" 2>/dev/null || return 1
  [ "${#wanted[@]}" != 0 ] || return 1
  ids=$(project_containers "$project" 2>/dev/null) && [ -n "$ids" ] || return 1
  # shellcheck disable=SC2086  # one container id per word
  have=$(docker inspect --format '{{index .Config.Labels "com.docker.compose.service"}} {{index .Config.Labels "com.docker.compose.config-hash"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{index .Config.Labels "com.docker.compose.image"}} {{.Config.Image}}' $ids 2>/dev/null) \
    || return 1
  while read -r svc hash run health image ref; do
    [ -n "$svc" ] && [ "${wanted[$svc]:-}" = "$hash" ] && [ "$run" = running ] || return 1
    [ "$health" = healthy ] || [ "$health" = none ] || return 1
    [ -n "${id[$ref]:-}" ] || id[$ref]=$(docker image inspect --format '{{.Id}}' "$ref" 2>/dev/null) || return 1
    [ "$image" = "${id[$ref]}" ] || return 1
    count[$svc]=$(( count[$svc] + 1 ))
  done <<< "$have"
  for svc in "${!wanted[@]}"; do
    [ "${count[$svc]}" = "$(replicas "$1" "$svc")" ] || return 1
  done
}

# record_up STACK: STACK passed its gate with the configuration preflight rendered: that rendering's sha256 and
# each service's configuration hash on its containers, for the next deploy's `unchanged` (written whole or not
# at all; a record that cannot be written only means the next deploy brings STACK up again).
record_up() {
  local ids lines
  declare -gA RENDERED AGAIN
  [ -n "${RENDERED[$1]:-}" ] || return 0
  [ -z "${AGAIN[$1]:-}" ] || rendered_again "$1" || return 0
  ids=$(project_containers "${SPEC_PROJECT[$1]}" 2>/dev/null) && [ -n "$ids" ] || return 0
  # shellcheck disable=SC2086  # one container id per word
  lines=$(docker inspect --format '{{index .Config.Labels "com.docker.compose.service"}} {{index .Config.Labels "com.docker.compose.config-hash"}}' $ids 2>/dev/null | sort -u) \
    || return 0
  mkdir -p "$STATE/stacks" 2>/dev/null \
    && atomic_write "$STATE/stacks/$1.up" printf 'rendered %s\n%s\n' "${RENDERED[$1]}" "$lines" 2>/dev/null
  return 0
}

# render_again STACK: STACK's .env changed after preflight rendered STACK, and a service that reads it
# (`env_file: .env`, seed 001) runs with its new lines: preflight's rendering is not what runs, and recorded it
# would roll the stack again on the next identical deploy. STACK's configuration is rendered once more, in the
# background while it is brought up, for record_up.
render_again() {
  declare -gA AGAIN RENDERED
  [ -n "${RENDERED[$1]:-}" ] || return 0   # (a program that rendered nothing records nothing)
  { compose_config "$1" > "$RENDER_DIR/$1.again" 2>/dev/null; echo $? > "$RENDER_DIR/$1.again.tmp"
    mv "$RENDER_DIR/$1.again.tmp" "$RENDER_DIR/$1.again.rc"; } &
  AGAIN[$1]=$! TMP_WRITERS+=("$!")
}

# rendered_again STACK: RENDERED[STACK] is render_again's rendering, once it ended (30 s at most; a subshell of
# up_all cannot `wait` for it, so its status file is looked for); fails when it failed.
rendered_again() {
  local i sum
  for (( i = 0; i < 600; i++ )); do
    [ ! -f "$RENDER_DIR/$1.again.rc" ] || break
    sleep 0.05
  done
  [ "$(cat "$RENDER_DIR/$1.again.rc" 2>/dev/null)" = 0 ] && sum=$(sha256sum < "$RENDER_DIR/$1.again") || return 1
  RENDERED[$1]=${sum%% *}
}

# pins_moved STACK: this release runs another image for one of STACK's apps than the previous good release:
# compose will recreate it, no need to ask (the question costs a compose call).
pins_moved() {
  local word
  declare -gA PINS   # (a program that pins nothing: empty)
  for word in ${SPEC_APPS[$1]}; do
    [ "${PINS[${word%%=*}]:-}" = "$(current_pin "${word%%=*}")" ] || return 0
  done
  return 1
}
