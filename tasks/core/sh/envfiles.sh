# shellcheck shell=bash
# fab env-check, read-only: per stack, the keys its .env template sets and its .env lacks and the placeholders
# left; and the values hosts.yml's must_match says are one (a database's password and its clients'), compared
# here. Only keys and equal/differ leave the host: never a value, nor a hash of one (a password's hash can be
# guessed back).
# shellcheck disable=SC2034,SC2154  # globals shared across files; R_* come from the program's head

# env_check [WHAT...]: each compose stack's keys that its template (WHAT template:STACK=NAME, else .env_example
# or .env.docker) sets and its .env does not (@@data env_missing; a .env that does not exist: key ""), and the
# keys still holding a placeholder (placeholders_left's, @@data env_placeholder).
env_check() {
  local s env name example key keys word
  placeholders_left "$@"
  for word in $PLACEHOLDERS_LEFT; do data env_placeholder stack "${word%%:*}" key "${word#*:}"; done
  for s in "${STACKS[@]}"; do
    is_compose "$s" || continue
    env=${SPEC_COMPOSE[$s:env]} name=""
    for word in "$@"; do [[ $word != "template:$s="* ]] || name=${word#*=}; done
    example=$(env_template "$(dirname "$env")" "$name") || continue
    [ -f "$env" ] || { data env_missing stack "$s" key ""; continue; }
    keys=$(env_keys "$env")
    while read -r key; do
      [ -z "$key" ] || grep -qxF -- "$key" <<< "$keys" || data env_missing stack "$s" key "$key"
    done < <(env_keys "$example")
  done
}

# env_file_of STACK: the env file STACK's values live in: a compose stack's .env, a binary's unit's first
# EnvironmentFile.
env_file_of() {
  local path
  if is_binary "$1"; then
    read -r path _ < <(unit_env_files "${BIN[$1:unit]}") && [ -n "$path" ] && printf '%s' "${path#-}"
  else
    printf '%s' "${SPEC_COMPOSE[$1:env]}"
  fi
}

# env_match STACK:KEY...: the values must_match says are one, compared here (@@data env_match: equal, differ
# with the ones that differ from the first, or missing with the ones no file sets).
env_match() {
  local where file value first="" seen=0 differ="" missing=""
  for where in "$@"; do
    file=$(env_file_of "${where%%:*}")
    if [ -z "$file" ] || [ ! -f "$file" ] || ! grep -qxF -- "${where#*:}" <(env_keys "$file"); then
      missing+=" $where"; continue
    fi
    value=$(env_value "$file" "${where#*:}")
    if [ "$seen" = 0 ]; then first=$value seen=1
    elif [ "$value" != "$first" ]; then differ+=" $where"; fi
  done
  first="" value=""
  if [ -n "$missing" ]; then data env_match keys "$*" result missing where "${missing# }"
  elif [ -n "$differ" ]; then data env_match keys "$*" result differ where "${differ# }"
  else data env_match keys "$*" result equal where ""; fi
}

# env_set STACK KEY: KEY's line of STACK's env file (env_file_of: a compose stack's .env, a binary's unit's
# EnvironmentFile) replaced (its first one; later ones dropped) or added, by the line that arrives on stdin after
# the program (KEY="...", encoded by the tool as compose and systemd read it back), the file written atomically
# (owner and mode kept; a new one is 600). The value is in no argument, never said.
env_set() {
  local env line how=added
  env=$(env_file_of "$1")
  [ -n "$env" ] || die "$R_REFUSED" "the unit of $1 names no EnvironmentFile to write into: add one (EnvironmentFile=/etc/$1.env) and deploy: nothing was changed"
  say "step env writing $2 into $env (its other lines as they are)"
  IFS= read -r line || die "$R_REFUSED" "no value arrived on standard input: nothing was changed"
  [[ $line == "$2="* ]] || die "$R_REFUSED" "what arrived is not a line for $2: nothing was changed"
  [ ! -f "$env" ] || ! grep -q -E "^[[:space:]]*(export[[:space:]]+)?$2=" "$env" || how=replaced
  atomic_write "$env" env_with "$env" "$2" "$line" || die "$R_FAILED" "cannot write $env (its folder missing? disk full?): it is as it was"
  line=""
  data env_set stack "$1" key "$2" result "$how" file "$env"
  RESULT=ok
  say ok
}

# env_with FILE KEY LINE: FILE's lines with KEY's first line replaced by LINE and its later ones dropped, or LINE
# added at the end (a function, its output a file: LINE is in no process's arguments).
env_with() {
  local l put=0
  if [ -f "$1" ]; then
    while IFS= read -r l || [ -n "$l" ]; do
      if [[ $l =~ ^[[:space:]]*(export[[:space:]]+)?$2= ]]; then
        [ "$put" = 1 ] || printf '%s\n' "$3"
        put=1
      else
        printf '%s\n' "$l"
      fi
    done < "$1" || return 1
  fi
  [ "$put" = 1 ] || printf '%s\n' "$3"
}
