"""A swarm system's stacks (sh/swarm_stacks.sh) under bash with a stub docker: the tool's own wait for a stack
to converge (replicas on the spec's image, running; an update the swarm paused fails at once, in its words),
preflight of `docker stack config` (without IPVS: virtual IPs and the ingress mesh refused; a pinned image line
checked) and the .env given to docker stack through exported variables, a value spanning lines refused.
Fast tier."""
import os

import pytest

from .conftest import Lab, finished

IMAGE = "r/enlevohub-backend:v2@sha256:" + "2" * 64
OLD = "r/enlevohub-backend:v1@sha256:" + "1" * 64
DECLARE = ('STACKS=(); run add_stack app /c/stack.yml /c/.env eh 30 "" "backend=BACKEND_TAG" ""; '
           'run on_swarm app; ')


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    yield lab
    finished(lab)


def converged(lab: Lab, tasks: str, update: str = "completed|", nodes: str = "n1 Ready\nn2 Ready\n") -> str:
    """swarm_converged's answer for a backend of 3 replicas whose tasks are ``tasks`` (image|node|desired|current).
    """
    return wait_answer(lab, f"eh_backend|{IMAGE}|3|any|{update}", tasks, nodes=nodes)


def wait_answer(lab: Lab, spec: str, tasks: str = "", error: str = "", nodes: str = "n1 Ready\nn2 Ready\n",
                jobs: str = "") -> str:
    """swarm_converged's last line ("rc=N PENDING") for a stack of one service, inspected as ``spec``
    (name|image|mode|restart|update state|message), its tasks ``tasks`` and, for a job, ``jobs`` (each task's
    "ITERATION STATE")."""
    name = spec.split("|")[0]
    lab.answer("docker", "service ls -q --filter label=com.docker.stack.namespace=eh", "s1\n")
    lab.answer("docker", "service inspect --format * s1", spec + "\n")
    lab.answer("docker", "node ls --format {{.Hostname}} {{.Status}}", nodes)
    if jobs:
        tasks = "".join(f"t{i}|{spec.split('|')[1]}|n1|Complete|Running|{name}.x|{error}\n"
                        for i in range(len(jobs.splitlines())))
    else:   # (ID|image|node|desired|current|slot|error; the error on the newest task of the spec's image)
        tasks = "".join(f"t{i}|{line}{'|' * (4 - line.count('|'))}|{error if not i else ''}\n"
                        for i, line in enumerate(tasks.splitlines()))
    lab.answer("docker", f"service ps --no-trunc --format * {name}", tasks)
    lab.answer("docker", "inspect --format * t*", jobs)
    run = lab.snippet(DECLARE + 'swarm_converged eh; echo "rc=$? $SWARM_PENDING"', {"run", "add_stack", "on_swarm",
                                                                                     "swarm_converged"})
    return run.stdout.strip().splitlines()[-1]


def test_a_stack_converged_has_its_replicas_running_on_the_spec_s_image_and_none_other(lab):
    running = f"{IMAGE}|n1|Running|Running 3 seconds ago\n" * 3 + f"{OLD}|n2|Shutdown|Shutdown 3 seconds ago\n"
    assert converged(lab, running) == "rc=0"


def test_an_old_replica_left_or_one_still_starting_is_not_converged(lab):
    tasks = f"{IMAGE}|n1|Running|Running 3 seconds ago\n{IMAGE}|n2|Running|Starting 1 second ago\n" \
            f"{OLD}|n1|Running|Running 5 minutes ago\n"
    assert converged(lab, tasks, "updating|update in progress") == \
        "rc=1 eh_backend: 1 of 3 running on enlevohub-backend:v2@sha256:" + "2" * 64 + " (update updating)"


def test_an_update_that_waits_only_for_a_task_of_a_node_that_is_down_is_done(lab):
    """Seen on the sandbox swarm: with sw2 down, its old task stays "Running" (desired Shutdown) and the swarm's
    update never completes; the stack runs on the live nodes as its spec says."""
    tasks = (f"{IMAGE}|n1|Running|Running 3 seconds ago\n" * 2 + f"{IMAGE}|n3|Running|Running 9 seconds ago\n"
             f"{OLD}|n2|Shutdown|Running 3 minutes ago\n{OLD}|n2|Running|Running 3 minutes ago\n")
    down = "n1 Ready\nn2 Down\nn3 Ready\n"
    assert converged(lab, tasks, "updating|update in progress", down) == "rc=0"


def test_an_update_blocked_by_a_node_that_went_down_is_not_converged_and_says_why(lab):
    """Seen on the sandbox (sw2's dockerd killed as the update began): the swarm runs slot 3's new task twice on
    the live nodes, and its update waits for slot 3's old task on sw2 to stop, so slots 1 and 2 stay old."""
    tasks = (f"{OLD}|n1|Running|Running 1 minute ago|b.1\n{OLD}|n3|Running|Running 1 minute ago|b.2\n"
             f"{IMAGE}|n1|Running|Running 39 seconds ago|b.3\n{IMAGE}|n3|Running|Running 39 seconds ago|b.3\n"
             f"{IMAGE}|n2|Shutdown|Assigned 1 minute ago|b.3\n{OLD}|n2|Shutdown|Running 1 minute ago|b.3\n")
    assert converged(lab, tasks, "updating|update in progress", "n1 Ready\nn2 Down\nn3 Ready\n") == (
        "rc=1 eh_backend: 2 of 3 running on enlevohub-backend:v2@sha256:" + "2" * 64 + " (update updating) (a task "
        "of it is on node n2, which is down: the swarm's update waits for it)")


def test_an_old_task_still_stopping_on_a_live_node_is_not_converged(lab):
    tasks = f"{IMAGE}|n1|Running|Running 3 seconds ago\n" * 3 + f"{OLD}|n1|Shutdown|Running 5 minutes ago\n"
    assert converged(lab, tasks, "updating|update in progress", "n1 Ready\nn2 Down\n").startswith("rc=1 eh_backend")


def test_an_update_the_swarm_paused_fails_at_once_in_its_words(lab):
    line = converged(lab, "", "paused|update paused due to failure of task x")
    assert line == "rc=2 the update of eh_backend stopped (paused): update paused due to failure of task x"


MIGRATE = "r/enlevohub-backend:v2@sha256:" + "2" * 64


def test_a_one_shot_that_completed_is_done_though_the_swarm_paused_its_update_for_early_termination(lab):
    """Seen on the sandbox: a service with restart_policy condition none whose task exits 0 has its update
    paused ("failure or early termination"); the newest task of its slot is what counts, not the older ones."""
    tasks = f"{MIGRATE}|n1|Shutdown|Complete 2 seconds ago|eh_seed.1\n{OLD}|n1|Shutdown|Failed 2 minutes ago|eh_seed.1\n"
    spec = f"eh_seed|{MIGRATE}|1|none|paused|update paused due to failure or early termination of task x"
    assert wait_answer(lab, spec, tasks) == "rc=0"


def test_a_one_shot_that_failed_fails_the_wait_at_once_with_its_error(lab):
    tasks = f"{MIGRATE}|n1|Shutdown|Failed 2 seconds ago|eh_seed.1\n{OLD}|n1|Shutdown|Complete 2 minutes ago|eh_seed.1\n"
    line = wait_answer(lab, f"eh_seed|{MIGRATE}|1|none|paused|update paused", tasks, "task: non-zero exit (3)")
    assert line == "rc=2 eh_seed.1 (a one-shot: restart_policy none) failed, last task error: task: non-zero exit (3)"


def test_a_one_shot_still_running_or_not_yet_on_the_new_image_is_waited_for(lab):
    tasks = f"{OLD}|n1|Shutdown|Complete 2 minutes ago|eh_seed.1\n"
    assert wait_answer(lab, f"eh_seed|{MIGRATE}|1|on-failure|updating|", tasks).startswith(
        "rc=1 eh_seed: 0 of 1 done or running on enlevohub-backend:v2@")


@pytest.mark.parametrize("mode, restart, jobs, answer", [
    ("job 1 2", "any", "1 complete\n2 running\n", "rc=1 eh_migrate: 0 of 1 runs of the job complete"),
    ("job 1 2", "any", "1 complete\n2 complete\n", "rc=0"),
    ("job 1 2", "any", "2 failed\n2 starting\n", "rc=1 eh_migrate: 0 of 1 runs of the job complete, "
                                                      "last task error: task: non-zero exit (1)"),
    ("job 1 2", "none", "2 failed\n", "rc=2 the job eh_migrate failed, last task error: task: non-zero exit (1)"),
    ("job 2 0", "any", "0 complete\n0 pending\n", "rc=1 eh_migrate: 1 of 2 runs of the job complete"),
    ("job all 3", "any", "3 complete\n3 running\n2 complete\n", "rc=1 eh_migrate: 1 of 2 runs of the job complete"),
    ("job all 3", "any", "3 complete\n3 complete\n2 failed\n", "rc=0"),
])
def test_a_job_is_done_when_this_iteration_s_runs_completed(lab, mode, restart, jobs, answer):
    """A job (replicated-job, global-job) runs again at every stack deploy: only this iteration's tasks count,
    never the runs of a deploy before."""
    error = "task: non-zero exit (1)" if "failed" in jobs else ""
    line = wait_answer(lab, f"eh_migrate|{MIGRATE}|{mode}|{restart}||", error=error, jobs=jobs)
    assert line == answer


def render(services: str) -> str:
    return 'version: "3.13"\nservices:\n' + services + "volumes:\n  pgdata: {}\n"


def preflight(lab: Lab, environment: str, rendered: str, compose_runs: str = ""):
    lab.answer("docker", "compose -p eh -f /c/stack.yml config --environment", environment)
    lab.answer("docker", "ps -q --filter label=com.docker.compose.project=eh", compose_runs)
    lab.answer("docker", "stack config -c /c/stack.yml", rendered)
    return lab.snippet(DECLARE + f'run add_image backend r/enlevohub-backend v2 ""; run use_pin backend {IMAGE.split(":", 1)[1]}; '
                       'PROBLEMS=(); swarm_check app; printf "%s\\n" "${PROBLEMS[@]}"',
                       {"run", "add_stack", "on_swarm", "add_image", "use_pin", "swarm_check"},
                       {"PIN_RE": "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}@sha256:[0-9a-f]{64}"})


@pytest.mark.skipif(os.path.isdir("/sys/module/ip_vs"), reason="this kernel has IPVS: nothing to refuse")
def test_without_ipvs_a_virtual_ip_or_an_ingress_port_is_refused_and_each_pinned_line_checked(lab):
    rendered = render(f"  backend:\n    deploy:\n      replicas: 3\n    image: {IMAGE}\n"
                      "  frontend:\n    deploy:\n      endpoint_mode: dnsrr\n    image: nginx:alpine\n    ports:\n"
                      "      - mode: ingress\n        target: 80\n        published: 8080\n"
                      "      - mode: host\n        target: 443\n        published: 443\n"
                      "  worker:\n    deploy:\n      endpoint_mode: dnsrr\n    image: r/enlevohub-backend:latest\n")
    run = preflight(lab, "DB_PASSWORD=s3cret\n", rendered)
    problems = run.stdout.strip().splitlines()
    assert any("service frontend publishes port 8080 through the ingress mesh" in p for p in problems), problems
    assert not any("port 443" in p for p in problems), problems
    assert any("service backend would get a virtual IP" in p for p in problems), problems
    assert not any("service frontend would get" in p for p in problems), problems
    assert any("service worker runs r/enlevohub-backend:latest, not app backend's release" in p for p in problems)
    assert "s3cret" not in run.stdout + "".join(lab.commands("docker"))


def test_a_value_spanning_lines_is_refused_and_values_never_reach_an_argument(lab):
    run = preflight(lab, "KEY=-----BEGIN KEY-----\nabc\n", render(""))
    assert "spans lines, which docker stack cannot be given" in run.stdout
    assert not [c for c in lab.commands("docker") if c.startswith("stack config")]


def test_an_older_release_s_task_error_is_not_given_as_this_deploy_s(lab):
    tasks = f"{OLD}|n1|Shutdown|Failed 9 minutes ago|eh_seed.1\n"
    line = wait_answer(lab, f"eh_seed|{MIGRATE}|1|none|updating|", tasks, "task: non-zero exit (3)")
    assert line == "rc=1 eh_seed: 0 of 1 done or running on enlevohub-backend:v2@sha256:" + "2" * 64


def test_a_compose_project_of_the_same_name_still_running_here_is_refused_with_how_to_stop_it(lab):
    """The move from the compose engine: its containers would hold the ports and, beside the swarm's tasks, the
    volumes the stack names alike (two PostgreSQL servers on one data folder)."""
    run = preflight(lab, "DB_PASSWORD=x\n", render(f"  backend:\n    deploy:\n      endpoint_mode: dnsrr\n    image: {IMAGE}\n"),
                    compose_runs="c1\nc2\nc3\n")
    problems = run.stdout.strip().splitlines()
    assert any("compose still runs project eh here (3 containers)" in p and "'docker compose -p eh down'" in p
               for p in problems), problems
