# shellcheck shell=bash
# setup: seed 001's hierarchy, .env files from their examples, external networks. Every step is idempotent and
# reports whether it created something or found it there, so a second run changes nothing and says so.
# shellcheck disable=SC2034,SC2154  # globals shared across files; R_* come from the program's head

# ensure_dir PATH MODE: create PATH (and parents, 755 as the seed's mkdir -p) if missing; MODE, if given, is
# enforced.
ensure_dir() {
  if [ -d "$1" ]; then
    if [ -n "$2" ] && [ "$(stat -c %a "$1")" != "$2" ]; then
      chmod "$2" "$1" || die "$R_FAILED" "cannot chmod $2 $1"
      data dir path "$1" result fixed mode "$2"
    else
      data dir path "$1" result exists
    fi
  else
    { (umask 022; mkdir -p "$1") && { [ -z "$2" ] || chmod "$2" "$1"; }; } || die "$R_FAILED" "cannot create $1"
    data dir path "$1" result created
  fi
}

# ensure_env STACK COMPOSE TEMPLATE VALUES [VARIABLE...]: .env from its template (TEMPLATE if configured, else
# .env_example or .env.docker) when missing (never overwritten); report its placeholders (VALUES: more of them,
# one per line, from hosts.yml) and the compose file's configuration as compose resolves it (the tool's
# VARIABLEs, set only by a deploy, given a stand-in), for its external networks and bind mounts.
ensure_env() {
  local dir key cfg template var stand_in=(); dir=$(dirname "$2")
  for var in "${@:5}"; do stand_in+=("$var=inspect"); done
  [ -f "$2" ] || { data env stack "$1" compose "$2" result missing-compose; return 0; }
  if [ ! -f "$dir/.env" ] && template=$(env_template "$dir" "$3"); then
    { cp "$template" "$dir/.env.tmp.$$" && chmod 600 "$dir/.env.tmp.$$" && mv "$dir/.env.tmp.$$" "$dir/.env"; } \
      || { rm -f "$dir/.env.tmp.$$"; die "$R_FAILED" "cannot create $dir/.env"; }
    data env stack "$1" path "$dir/.env" result created
  elif [ -f "$dir/.env" ]; then
    data env stack "$1" path "$dir/.env" result exists
  fi
  if [ -f "$dir/.env" ]; then
    placeholder_keys "$dir/.env" "$4" | while read -r key; do data placeholder path "$dir/.env" key "$key"; done
  fi
  cfg=$(cd "$dir" && env "${stand_in[@]}" docker compose -f "$2" config --format json 2>/dev/null) \
    || cfg=$(cd "$dir" && env "${stand_in[@]}" docker compose -f "$2" config --no-interpolate --format json 2>/dev/null)
  [ -z "$cfg" ] || data compose stack "$1" config "$cfg"
}

# check_token_file PATH: is the token there, with which mode (never its content).
check_token_file() {
  if [ ! -f "$1" ]; then data token path "$1" missing 1
  else data token path "$1" mode "$(stat -c %a "$1")"; fi
}

# ensure_network NAME: an external network the compose files need (seed 000: the forgotten step).
ensure_network() {
  if docker network inspect "$1" >/dev/null 2>&1; then
    data network name "$1" result exists
  else
    docker network create "$1" >/dev/null || die "$R_FAILED" "cannot create network $1"
    data network name "$1" result created
  fi
}

# inside PATH [FOLDER...]: PATH lies inside one of the FOLDERs (compared as text, after a normalised join).
inside() {
  local folder
  for folder in "${@:2}"; do [[ $1 == "${folder%/}/"* ]] && [[ $1 != *"/../"* ]] && return 0; done
  return 1
}

# ensure_unit UNITFILE TEMPLATE [FOLDER...]: a binary's systemd unit installed from its template in the repo when
# missing or different (then daemon-reload and enable), never readable by more than its template (644 at most),
# and each EnvironmentFile= it reads inside one of the FOLDERs (the tool's: /etc/<unit>/, the binary's own)
# present and root's only (created empty: its values are written on the VPS, never sent from the operator's
# machine). One elsewhere (/etc/environment) is the system's: left as it is, and said.
ensure_unit() {
  local unit=$1 template=$2 result=created env mode
  [ -f "$template" ] || { data unit path "$unit" template "$template" result missing-template; return 0; }
  if [ -f "$unit" ] && cmp -s "$template" "$unit"; then
    data unit path "$unit" template "$template" result exists
  else
    [ ! -f "$unit" ] || result=updated
    mode=$(printf '%o' $(( 8#$(stat -c %a "$template") & 8#644 )))
    { cp "$template" "$unit.tmp.$$" && chmod "$mode" "$unit.tmp.$$" && mv -f "$unit.tmp.$$" "$unit"; } \
      || { rm -f "$unit.tmp.$$"; die "$R_FAILED" "cannot write $unit"; }
    { systemctl daemon-reload && systemctl enable "${unit##*/}" >/dev/null 2>&1; } \
      || die "$R_FAILED" "systemctl daemon-reload / enable ${unit##*/} failed"
    data unit path "$unit" template "$template" result "$result"
  fi
  sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit" | while IFS= read -r env; do
    if ! inside "$env" "${@:3}"; then
      data unitenv unit "${unit##*/}" path "$env" result outside
    elif [ ! -f "$env" ]; then
      { (umask 022 && mkdir -p "$(dirname "$env")") && : > "$env" && chmod 600 "$env"; } || die "$R_FAILED" "cannot create $env"
      data unitenv unit "${unit##*/}" path "$env" result created
    elif [ "$(stat -c %a "$env")" != 600 ] && [ "$(stat -c %a "$env")" != 400 ]; then
      chmod 600 "$env" || die "$R_FAILED" "cannot chmod 600 $env"
      data unitenv unit "${unit##*/}" path "$env" result fixed
    fi
  done
}
