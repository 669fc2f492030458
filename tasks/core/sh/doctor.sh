# shellcheck shell=bash
# What fab doctor judges, read on the host and said as facts (@@data): docker's answers are judged on the
# operator's machine (tasks/core/doctor.py), so each check's rule lives in one place and is tested with
# captured output. Read-only: nothing is locked, written or started.
# shellcheck disable=SC2154  # R_*, STACKS, SPEC_* and BIN come from the program's head, add_stack and add_binary

# doctor_facts [WHAT...]: dockerd's and compose's versions, the free space and inodes of / and of Docker's
# root, the networks, each compose stack's configuration as compose resolves it (or why it cannot), the keys
# still holding their template's placeholder (WHAT: as placeholders_left), the host's clock and the lock.
doctor_facts() {
  local engine compose_version s cfg word stand_in
  engine=$(docker version --format '{{.Server.Version}}' 2>/dev/null) || engine=""
  compose_version=$(docker compose version --short 2>/dev/null) || compose_version=""
  data versions engine "$engine" compose "$compose_version"
  doctor_fs /
  docker_room
  [ -z "$DOCKER_ROOT" ] || [ "$DOCKER_ROOT" = / ] || doctor_fs "$DOCKER_ROOT"
  [ -z "$engine" ] || data networks names "$(docker network ls --format '{{.Name}}' 2>/dev/null | paste -s -d ' ' -)"
  for s in "${STACKS[@]}"; do
    ! is_binary "$s" || continue
    mapfile -t stand_in < <(not_deployed "$s")
    if [ ! -f "${SPEC_COMPOSE[$s]}" ]; then data stack_error stack "$s" text "${SPEC_COMPOSE[$s]} is missing"
    elif cfg=$(env "${stand_in[@]}" docker compose -p "${SPEC_PROJECT[$s]}" -f "${SPEC_COMPOSE[$s]}" config \
        --format json 2>&1); then data compose stack "$s" config "$cfg"
    else data stack_error stack "$s" text "$(tail -n 1 <<< "$cfg")"; fi
  done
  placeholders_left "$@"
  for word in $PLACEHOLDERS_LEFT; do data placeholder path "${SPEC_COMPOSE[${word%%:*}:env]}" key "${word#*:}"; done
  doctor_units
  doctor_db_logins
  db_versions
  data clock epoch "$(date +%s)"
  lock_report
}

# doctor_fs PATH: the size, free bytes, inodes and free inodes of the filesystem PATH is on.
doctor_fs() {
  local size avail files ffree
  read -r size avail < <(df -B1 --output=size,avail "$1" 2>/dev/null | tail -n 1) || return 0
  read -r files ffree < <(df --output=itotal,iavail "$1" 2>/dev/null | tail -n 1) || return 0
  data fs path "$1" size "$size" avail "$avail" files "$files" ffree "$ffree"
}

# not_deployed STACK: VARIABLE=not-deployed-yet for each tag variable of STACK its .env does not set yet (a
# deploy writes them): compose reads the files of a stack never deployed instead of refusing its ${VAR:?}.
not_deployed() {
  local word
  for word in ${SPEC_APPS[$1]}; do
    grep -q "^${word#*=}=" "${SPEC_COMPOSE[$1:env]}" 2>/dev/null || printf '%s=not-deployed-yet\n' "${word#*=}"
  done
}

# doctor_units: the environment files each binary stack's unit reads: missing, setting nothing, or set
# (@@data unitenv), and their keys still holding a placeholder (@@data placeholder). Values never leave the host.
doctor_units() {
  local s unit files env rest
  for s in "${STACKS[@]}"; do
    is_binary "$s" || continue
    unit=${BIN[$s:unit]}
    files=$(unit_env_files "$unit") || continue
    while read -r env rest; do
      [ -n "$env" ] || continue
      if [ ! -f "$env" ]; then
        [[ $rest == *ignore_errors=yes* ]] || data unitenv unit "$unit" path "$env" result missing
      elif ! grep -q -E '^[[:space:]]*(export[[:space:]]+)?[A-Za-z_][A-Za-z0-9_]*=.' "$env" 2>/dev/null; then
        data unitenv unit "$unit" path "$env" result empty
      else
        data unitenv unit "$unit" path "$env" result set
        placeholder_keys "$env" | while read -r key; do data placeholder path "$env" key "$key"; done
      fi
    done <<< "$files"
  done
}

# unit_env_files UNIT: the environment files systemd reads for UNIT, one "PATH (ignore_errors=yes|no)" a line.
unit_env_files() { systemctl show -p EnvironmentFiles --value "$1" 2>/dev/null; }

# doctor_db_logins: each database stack (add_database) tried with its clients' credentials: the .env of every
# compose stack after it and the environment files of the binary units after it, wherever they name a DB_USER
# and a DB_PASSWORD (or DB_PASS): the answer PostgreSQL gives that login over TCP to the container's own
# address (the image trusts its loopback), as the clients connect (@@data dblogin: ok, or its reason). The
# password reaches psql on stdin only and never leaves the host.
doctor_db_logins() {
  local db s cid ip after env files
  for db in ${DATABASES[@]+"${DATABASES[@]}"}; do
    cid=$(db_container "$db") || { data dblogin stack "$db" result down; continue; }
    ip=$(docker inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$cid" 2>/dev/null)
    ip=${ip%% *}
    after=0
    for s in "${STACKS[@]}"; do
      if [ "$s" = "$db" ]; then after=1; continue; fi
      [ "$after" = 1 ] || continue
      if is_binary "$s"; then files=$(unit_env_files "${BIN[$s:unit]}")
      else files=${SPEC_COMPOSE[$s:env]}; fi
      while read -r env _; do [ ! -f "$env" ] || db_login "$db" "$cid" "${ip:-127.0.0.1}" "$s" "$env"; done <<< "$files"
    done
  done
}

# db_login DBSTACK CONTAINER ADDRESS CLIENT ENVFILE: CLIENT's login (ENVFILE's DB_USER, DB_PASSWORD or DB_PASS,
# DB_NAME) tried against DBSTACK's PostgreSQL at ADDRESS inside CONTAINER (see doctor_db_logins).
db_login() {
  local user pass name out
  user=$(env_value "$5" DB_USER) pass=$(env_value "$5" DB_PASSWORD) name=$(env_value "$5" DB_NAME)
  [ -n "$pass" ] || pass=$(env_value "$5" DB_PASS)
  [ -n "$user" ] && [ -n "$pass" ] || return 0
  # shellcheck disable=SC2016  # (expanded by the container's shell)
  if out=$(printf '%s' "$pass" | docker exec -i "$2" sh -c 'PGPASSWORD=$(cat) PGCONNECT_TIMEOUT=5 exec psql -h "$1" -U "$2" -d "$3" -tAc "SELECT 1"' \
      sh "$3" "$user" "${name:-postgres}" 2>&1); then
    data dblogin stack "$1" client "$4" path "$5" user "$user" database "${name:-postgres}" result ok
  else
    data dblogin stack "$1" client "$4" path "$5" user "$user" database "${name:-postgres}" result refused \
      text "$(grep -v '^[[:space:]]*$' <<< "$out" | tail -n 1)"
  fi
}

# db_versions: for each database stack's container, in whatever state (a server refusing its data restarts
# forever): the PostgreSQL major its image declares (PG_MAJOR) and the one that made its data folder (the
# PG_VERSION file under PGDATA, read through the mount that holds it) (@@data dbversion).
db_versions() {
  local db cid facts word dest src best file state major pgdata
  for db in ${DATABASES[@]+"${DATABASES[@]}"}; do
    cid=$(db_container "$db" any) || continue
    facts=$(docker inspect --format '{{.State.Status}}{{println}}{{range .Config.Env}}{{println .}}{{end}}' "$cid" \
      2>/dev/null) || continue
    state=${facts%%$'\n'*} major="" pgdata=/var/lib/postgresql/data
    while read -r word; do
      case $word in PG_MAJOR=*) major=${word#*=} ;; PGDATA=?*) pgdata=${word#*=} ;; esac
    done <<< "$facts"
    best="" file=""
    while read -r dest src; do
      if [ -z "$dest" ] || [ "${#dest}" -le "${#best}" ]; then continue; fi
      case $pgdata/ in "$dest"/*) best=$dest file=$src${pgdata#"$dest"}/PG_VERSION ;; esac
    done < <(docker inspect --format '{{range .Mounts}}{{.Destination}} {{.Source}}{{println}}{{end}}' "$cid" 2>/dev/null)
    data dbversion stack "$db" state "$state" image "$major" volume "$(head -c 16 "$file" 2>/dev/null | tr -dc '0-9.')"
  done
}

# doctor_tls [FOLDER...]: the certificate this host serves on :443 for each name a TLS router of Traefik routes
# (the Host(`...`) of a traefik.http.routers.R.rule label on a running container of the system's stacks whose
# router R has tls labels), asked with that name as SNI; then the first certificate of each file in FOLDER (a
# binary's certs folder, seed 003's autocert cache). Only certificates are said (@@data cert): a file's private
# key never leaves the host.
doctor_tls() {
  local s ids labels name folder file
  ids=()
  for s in "${STACKS[@]}"; do
    is_binary "$s" || mapfile -t -O "${#ids[@]}" ids < <(docker ps -q --filter "label=com.docker.compose.project=${SPEC_PROJECT[$s]}" 2>/dev/null)
  done
  if [ "${#ids[@]}" -gt 0 ]; then
    labels=$(docker inspect --format '{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{println}}{{end}}' "${ids[@]}" 2>/dev/null)
    while read -r name; do
      [ -z "$name" ] || data cert source traefik name "$name" pem "$(served_certificate "$name")"
    done < <(tls_router_names <<< "$labels")
  fi
  for folder in "$@"; do
    for file in "$folder"/*; do
      [ -f "$file" ] || continue
      data cert source "$folder" name "${file##*/}" pem "$(first_certificate < "$file")"
    done
  done
}

# tls_router_names: the Host(`...`) names of the routers, among the label lines on stdin, that have TLS labels.
tls_router_names() {
  local line key router
  local -A rule=() tls=()
  while IFS= read -r line; do
    key=${line%%=*}
    [[ $key == traefik.http.routers.?* ]] || continue
    key=${key#traefik.http.routers.} router=${key%%.*}
    [ -n "$router" ] || continue
    case ${key#"$router"} in .rule) rule[$router]=${line#*=} ;; .tls | .tls.*) tls[$router]=1 ;; esac
  done
  for router in "${!tls[@]}"; do
    # shellcheck disable=SC2016  # (backquotes of Traefik's rule syntax, not a shell's)
    grep -o 'Host(`[^`]*`)' <<< "${rule[$router]:-}" | sed 's/^Host(`\(.*\)`)$/\1/'
  done | sort -u
}

# served_certificate NAME: the certificate this host's :443 serves for NAME (SNI), empty if none answers.
served_certificate() {
  command -v openssl >/dev/null || return 0
  timeout 10 openssl s_client -connect 127.0.0.1:443 -servername "$1" < /dev/null 2>/dev/null | first_certificate
}

# first_certificate: the first PEM certificate block on stdin (a key in the same file is not printed).
first_certificate() { sed -n '/^-----BEGIN CERTIFICATE-----$/,/^-----END CERTIFICATE-----$/{p;/^-----END CERTIFICATE-----$/q;}'; }
