# shellcheck shell=bash
# Run-once jobs (hosts.yml's jobs:): `docker compose run --rm` of one of a stack's services with this release's
# pins and the stack's environment, in a container named after the job and the release, removed at its
# timeout. A `before` job runs once its stack's images are pulled and the stacks before it are up, before any
# container of its stack is replaced: the old ones still serve while it runs, and its failure switches nothing
# more. An `after` job runs once every stack of the release is healthy. Its output is said with the stack's
# .env values masked, and its result is recorded in the release.
# Globals: JOB_KEYS (STACK/NAME, in order), JOB_SPEC (SERVICE WHEN TIMEOUT), JOB_WORDS (its words, joined by
# the unit separator), JOBS (the results, JSON members for the release's record), JOB_FAILED (what failed, in
# words), JOB_RUNNING (the container of the job that runs, removed if the program stops).
# shellcheck disable=SC2034,SC2154  # globals shared across files; RELEASE, STATE and R_* come from the program's head

# add_job STACK NAME SERVICE before|after TIMEOUT ENTRYPOINT WORD...: declare a job of STACK (run by jobs_run);
# ENTRYPOINT (its words quoted as a shell would, compose's --entrypoint; "": the image's own); its words are
# kept joined by the unit separator (hosts.yml refuses control characters in them).
add_job() {
  declare -ga JOB_KEYS
  declare -gA JOB_SPEC JOB_WORDS JOB_ENTRY
  local IFS=$'\x1f'
  JOB_KEYS+=("$1/$2") JOB_ENTRY[$1/$2]=$6
  [ "${#JOB_KEYS[@]}" -gt 1 ] || EXIT_HOOKS+=(job_gone)   # (a program that stops under a job removes its container)
  JOB_SPEC[$1/$2]="$3 $4 $5"
  JOB_WORDS[$1/$2]="${*:7}"
}

# check_jobs STACK: preflight refuses a job whose service STACK's compose file does not have (IMAGES, BUILT:
# check_stack's reading of it).
check_jobs() {
  local key service
  for key in ${JOB_KEYS[@]+"${JOB_KEYS[@]}"}; do
    [ "${key%%/*}" = "$1" ] || continue
    service=${JOB_SPEC[$key]%% *}
    [ -n "${IMAGES[$service]:-}${BUILT[$service]:-}" ] \
      || problem "$1" "job ${key#*/} runs as service $service, which its compose file does not have (it has: ${!IMAGES[*]})"
  done
}

# jobs_run before|after [STACK...]: run the jobs of that kind of each STACK (default: every stack), in
# hosts.yml's order; the first that fails stops them (JOB_FAILED says which and why) and it returns 1.
jobs_run() {
  local key service when timeout stacks=("${@:2}")
  [ $# -gt 1 ] || stacks=("${STACKS[@]}")
  for key in ${JOB_KEYS[@]+"${JOB_KEYS[@]}"}; do
    in_words "${key%%/*}" "${stacks[@]}" || continue
    read -r service when timeout <<< "${JOB_SPEC[$key]}"
    [ "$when" = "$1" ] || continue
    run_job "$key" "$service" "$timeout" || return 1
  done
}

# run_job STACK/NAME SERVICE TIMEOUT: one job, with this release's pins in its environment (they win over the
# .env, which a `before` job's stack has not been switched to yet). Where the stack runs nothing yet (its first
# deploy) compose starts what the service depends on; otherwise the job runs beside what runs (--no-deps), so
# nothing is replaced before it passes. The job's container takes no traffic (traefik.enable=false).
run_job() {
  local stack=${1%%/*} name=${1#*/} words=() deps=(--no-deps) entry=() out rc t0 seconds result=ok
  IFS=$'\x1f' read -ra words <<< "${JOB_WORDS[$1]}"
  [ -z "${JOB_ENTRY[$1]}" ] || entry=(--entrypoint "${JOB_ENTRY[$1]}")
  [ -n "$(project_containers "${SPEC_PROJECT[$stack]}" 2>/dev/null)" ] || deps=()
  stack_pins "$stack" new || { JOB_FAILED="job $name of $stack: a damaged pin"; return 1; }
  say "step job $stack: $name (${words[*]}) as service $2, within ${3}s"
  out=$(mktemp "$STATE/job.XXXXXX") || { JOB_FAILED="job $name of $stack: cannot create a file in $STATE"; return 1; }
  TMP_FILES+=("$out")
  JOB_RUNNING="${SPEC_PROJECT[$stack]}-job-$name-$RELEASE" t0=$(date +%s)
  timeout -k 10 "$3" env ${STACK_PINS[@]+"${STACK_PINS[@]}"} docker compose -p "${SPEC_PROJECT[$stack]}" \
    -f "${SPEC_COMPOSE[$stack]}" run --rm -T --name "$JOB_RUNNING" --label traefik.enable=false \
    ${deps[@]+"${deps[@]}"} ${entry[@]+"${entry[@]}"} "$2" "${words[@]}" > "$out" 2>&1 < /dev/null
  rc=$? seconds=$(( $(date +%s) - t0 ))
  case $rc in
    0) ;;
    124|137) result=timeout; job_gone ;;
    *) result=failed ;;
  esac
  JOB_RUNNING=""
  job_output "$stack" "$out"
  JOBS+="${JOBS:+,}$(json_str "$1"):{\"result\":\"$result\",\"exit\":$rc,\"seconds\":$seconds}"
  data job stack "$stack" name "$name" result "$result" exit "$rc" seconds "$seconds"
  case $result in
    ok) say ok; return 0 ;;
    timeout) JOB_FAILED="job $name of $stack did not finish within ${3}s (its container was removed)" ;;
    *) JOB_FAILED="job $name of $stack failed (exit $rc)" ;;
  esac
  say "fail $JOB_FAILED"
  return 1
}

# job_gone: remove the container of the job that runs (its timeout, or the program stopping under it): the
# docker CLI stopped, its container would run on.
job_gone() {
  [ -n "${JOB_RUNNING:-}" ] || return 0
  docker rm -f "$JOB_RUNNING" >/dev/null 2>&1 || true
}

# job_output STACK FILE: the last 40 lines a job wrote, each value of STACK's .env (of 4 characters or more:
# a password, a key) masked as ***: a migration that prints its database URL does not print its password.
job_output() {
  local env=${SPEC_COMPOSE[$1:env]:-} values=() line value
  if [ -f "$env" ]; then
    while IFS= read -r line; do
      [[ $line =~ ^[[:space:]]*(export[[:space:]]+)?[A-Za-z_][A-Za-z0-9_]*=(.*)$ ]] || continue
      value=${BASH_REMATCH[2]%$'\r'}; value=${value#[\"\']}; value=${value%[\"\']}
      [ "${#value}" -lt 4 ] || values+=("$value")
    done < "$env"
  fi
  [ -s "$2" ] || { say "info the job wrote nothing"; return 0; }
  while IFS= read -r line; do
    for value in ${values[@]+"${values[@]}"}; do line=${line//"$value"/***}; done
    say "info   | $line"
  done < <(tail -n 40 "$2")
}

# pins_switched: a stack that pins an image (or a binary) was switched by this run, or by the interrupted run
# it took over (INHERITED): a failure has that to put back.
pins_switched() {
  local s
  for s in ${SWITCHED[@]+"${SWITCHED[@]}"} ${INHERITED[@]+"${INHERITED[@]}"}; do
    [ -z "${SPEC_APPS[$s]:-}" ] && ! is_binary "$s" || return 0
  done
  return 1
}

# job_stopped WHY: a `before` job failed before any stack that pins an image was switched: repo/ is put back
# where it was (deploy --ref) and the run ends (R_JOB); the release before still runs. The stacks that pin
# nothing and came up before the job (as their files say, as every deploy brings them up) are named.
job_stopped() {
  local running up=""
  undo_checkout || true
  running=$(current_tag 2>/dev/null)
  [ "${#SWITCHED[@]}" = 0 ] || up=" (stacks that pin no image came up before it: ${SWITCHED[*]})"
  RESULT=job-failed
  die "$R_JOB" "$1; nothing was switched${running:+: $running still runs}$up"
}
