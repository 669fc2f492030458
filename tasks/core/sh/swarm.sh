# shellcheck shell=bash
# Docker Swarm: the facts of a node, the swarm made and joined, its nodes labelled, drained and reported. Docker's
# answers go back whole (@@data swarm_* json) and are read in Python (programs/swarm.py). A join token reaches a
# node on stdin, after the program, and goes to dockerd's API on curl's stdin: never an argument, never printed.
# shellcheck disable=SC2154  # R_* come from the program's head

# swarm_facts: this node's part in a swarm, read-only (docker info's Swarm object: its state, node id, whether
# it manages, the cluster a manager knows).
swarm_facts() {
  local out
  out=$(docker info --format '{{json .Swarm}}' 2>&1) || die "$R_FAILED" "docker info failed: $(tail -n 1 <<< "$out")"
  data swarm_info json "$out"
}

# swarm_init ADDRESS: a new swarm with this node as its first manager, listening and advertised at ADDRESS (an
# IP: the port is Swarm's 2377). Its output, which holds a join token, is never shown.
swarm_init() {
  local out
  say "step init docker swarm init --advertise-addr $1"
  out=$(docker swarm init --advertise-addr "$1" --listen-addr "$(node_port "$1")" 2>&1 >/dev/null) \
    || die "$R_FAILED" "docker swarm init failed: $(tail -n 1 <<< "$out")"
  say ok
  swarm_facts
}

# node_port ADDRESS: ADDRESS with Swarm's port, an IPv6 one in brackets.
node_port() { if [[ $1 == *:* ]]; then printf '[%s]:2377' "$1"; else printf '%s:2377' "$1"; fi; }

# swarm_tokens: the join tokens of this manager's swarm, for the nodes the tool joins next, sealed with the
# one-time pad that follows the program on stdin (hex, 128 bytes for each token): everything a host prints is
# masked on its way to the tool, and a token printed in clear would also reach any log of this output.
swarm_tokens() {
  local pad worker manager
  IFS= read -r pad || die "$R_REFUSED" "no pad arrived on standard input"
  [[ $pad =~ ^[0-9a-f]{512}$ ]] || die "$R_REFUSED" "what arrived on standard input is not a pad"
  if ! worker=$(docker swarm join-token -q worker 2>/dev/null) || ! manager=$(docker swarm join-token -q manager 2>/dev/null); then
    die "$R_FAILED" "cannot read the swarm's join tokens: is this node a manager?"
  fi
  [ $(( ${#worker} > ${#manager} ? ${#worker} : ${#manager} )) -le 128 ] || die "$R_FAILED" "a join token longer than its pad"
  data swarm_tokens worker "$(sealed "${pad:0:256}" "$worker")" manager "$(sealed "${pad:256}" "$manager")"
}

# sealed PAD VALUE: each byte of VALUE xor'ed with the next of PAD (hex), in hex (bash's own arithmetic: no
# process sees either).
sealed() {
  local i c out=""
  for ((i = 0; i < ${#2}; i++)); do
    printf -v c '%d' "'${2:i:1}"
    printf -v out '%s%02x' "$out" $((c ^ 16#${1:i*2:2}))
  done
  printf '%s' "$out"
}

# swarm_join ADDRESS MANAGER: join the swarm of MANAGER (an IP) with the token that follows the program on stdin
# (its kind makes this node a worker or a manager), listening and advertised at ADDRESS. dockerd's API takes the
# token on curl's stdin: `docker swarm join --token` would show it to every process list of the host.
swarm_join() {
  local token sock out
  say "step join joining the swarm of $2 (the token read from the SSH channel)"
  IFS= read -r token || die "$R_REFUSED" "no join token arrived on standard input: nothing was changed"
  [[ $token =~ ^SWMTKN-1-[A-Za-z0-9-]+$ ]] || die "$R_REFUSED" "what arrived on standard input is not a join token"
  sock=$(docker_socket) || die "$R_REFUSED" "DOCKER_HOST=$DOCKER_HOST is not a local socket: join the node on the host itself"
  out=$(join_body "$1" "$2" "$token" | curl -sS --max-time 120 --unix-socket "$sock" -H 'Content-Type: application/json' \
          --data-binary @- -w '\n%{http_code}' http://localhost/swarm/join 2>&1)
  unset token
  [ "$(tail -n 1 <<< "$out")" = 200 ] || die "$R_FAILED" "the node could not join the swarm of $2: $(head -n 1 <<< "$out")"
  say ok
  swarm_facts
}

# join_body ADDRESS MANAGER TOKEN: the JSON of dockerd's POST /swarm/join (printf is bash's own: no process
# sees the token).
join_body() {
  printf '{"ListenAddr":"%s","AdvertiseAddr":"%s","RemoteAddrs":["%s"],"JoinToken":"%s"}' \
    "$(node_port "$1")" "$1" "$(node_port "$2")" "$3"
}

# docker_socket: the path of the local dockerd's socket (DOCKER_HOST's, or the default); fails for a remote one.
docker_socket() {
  local where=${DOCKER_HOST:-unix:///var/run/docker.sock}
  [[ $where == unix://* ]] || return 1
  printf '%s' "${where#unix://}"
}

# swarm_node NODE HOST manager|worker [LABEL...]: on a manager, NODE (an id; HOST the inventory's name for it)
# given the role hosts.yml says (promoted or demoted) and each LABEL (name=value: added or changed; labels
# hosts.yml does not name stay).
swarm_node() {
  local node=$1 host=$2 role=$3 out label args=(); shift 3
  say "step node $host ($node): $role, labels $*"
  if [ "$(docker node inspect --format '{{.Spec.Role}}' "$node" 2>/dev/null)" != "$role" ]; then
    out=$(docker node "$([ "$role" = manager ] && echo promote || echo demote)" "$node" 2>&1) \
      || die "$R_FAILED" "cannot make node $node a $role: $(tail -n 1 <<< "$out")"
    [ "$role" = worker ] || manager_reachable "$node" 30 || die "$R_FAILED" "node $host was promoted but is not a reachable manager after 30 s"
  fi
  for label in "$@"; do args+=(--label-add "$label"); done
  if [ ${#args[@]} -gt 0 ]; then
    out=$(docker node update "${args[@]}" "$node" 2>&1) || die "$R_FAILED" "cannot label node $node: $(tail -n 1 <<< "$out")"
  fi
  say ok
}

# manager_reachable NODE SECONDS: NODE (just promoted) counts in the managers' quorum within SECONDS.
manager_reachable() {
  local left=$2
  until [ "$(docker node inspect --format '{{if .ManagerStatus}}{{.ManagerStatus.Reachability}}{{end}}' "$1" 2>/dev/null)" = reachable ]; do
    [ "$left" -gt 0 ] || return 1
    sleep 1; left=$((left - 1))
  done
}

# swarm_availability HOST LABEL active|pause|drain WAIT: on a manager, the node labelled LABEL (the tool's
# fab.host=HOST) set to that availability; a drain then waits up to WAIT seconds for its tasks to move.
swarm_availability() {
  local node out left=$4
  node=$(docker node ls -q --filter "node.label=$2" 2>&1) || die "$R_FAILED" "cannot list the swarm's nodes: $node"
  [ -n "$node" ] || die "$R_REFUSED" "no node of this swarm is host $1 (fab swarm init labels each node it joins $2)"
  say "step availability node $1 ($node): $3"
  out=$(docker node update --availability "$3" "$node" 2>&1) || die "$R_FAILED" "cannot set node $1 to $3: $(tail -n 1 <<< "$out")"
  say ok
  [ "$3" = drain ] || return 0
  say "step drain waiting (up to $4 s) for the tasks of $1 to run on other nodes"
  until moved_off "$node"; do
    [ "$left" -gt 0 ] || break
    sleep 1; left=$((left - 1))
  done
  [ "$left" -gt 0 ] || say "info after $4 s, not every task has moved (see the services' replicas below)"
  say ok
}

# moved_off NODE: no task runs on NODE any more, and every task the swarm wants running elsewhere runs (one
# still pending or starting is not there yet).
moved_off() {
  local here services everywhere
  here=$(docker node ps --format '{{.CurrentState}}' "$1" 2>/dev/null) || return 1
  ! grep -q '^Running' <<< "$here" || return 1
  services=$(docker service ls -q 2>/dev/null) || return 1
  [ -n "$services" ] || return 0
  # shellcheck disable=SC2086  # one id per word
  everywhere=$(docker service ps --format '{{.DesiredState}} {{.CurrentState}}' $services 2>/dev/null) || return 1
  ! awk '($1 == "Running" || $1 == "Ready") && $2 != "Running" { found = 1 } END { exit !found }' <<< "$everywhere"
}

# swarm_report: on a manager, every node, every service and the tasks of each (docker's JSON, one per line).
swarm_report() {
  local line
  answer docker node ls -q
  # shellcheck disable=SC2086  # one id per word
  answer docker node inspect --format '{{json .}}' $ANSWER
  while IFS= read -r line; do data swarm_node json "$line"; done <<< "$ANSWER"
  answer docker service ls -q
  [ -n "$ANSWER" ] || return 0
  local services=$ANSWER
  # shellcheck disable=SC2086
  answer docker service inspect --format '{{json .}}' $services
  while IFS= read -r line; do data swarm_service json "$line"; done <<< "$ANSWER"
  # shellcheck disable=SC2086
  answer docker service ps --no-trunc --format '{{json .}}' $services
  while IFS= read -r line; do [ -z "$line" ] || data swarm_task json "$line"; done <<< "$ANSWER"
}

# answer COMMAND...: ANSWER becomes what COMMAND prints (in this shell: a failure stops the program, saying
# COMMAND's last line).
answer() {
  ANSWER=$("$@" 2>&1) || die "$R_FAILED" "$* failed: $(tail -n 1 <<< "$ANSWER")"
}

# swarm_placed STACK SERVICE: the node that runs the task of SERVICE (a database service of STACK: one replica),
# as the inventory host its fab.host label names: `@@data placed stack STACK host HOST`. Refused when no task of
# it runs, or its node is none of hosts.yml's (joined by hand: no label).
swarm_placed() {
  local out node host
  out=$(docker service ps --no-trunc --filter desired-state=running --format '{{.Node}}|{{.CurrentState}}' "$2" 2>&1) \
    || die "$R_REFUSED" "stack $1: the swarm has no service $2 ($(tail -n 1 <<< "$out")): deploy it first"
  node=$(awk -F'|' '$2 ~ /^Running/ { print $1; exit }' <<< "$out")
  [ -n "$node" ] || die "$R_REFUSED" "stack $1: service $2 has no running task: deploy it first"
  host=$(docker node inspect --format '{{index .Spec.Labels "fab.host"}}' "$node" 2>/dev/null) || host=""
  [ -n "$host" ] || die "$R_REFUSED" "stack $1: $2 runs on node $node, which has no fab.host label: it is none of hosts.yml's hosts ('fab swarm init' labels them)"
  data placed stack "$1" host "$host"
}
