"""fab swarm's programs (sh/swarm.sh) under bash with stub docker and curl, answering with docker's own output
captured from a sandbox swarm: a join token only ever on stdin (never an argument of any command, the JSON to
dockerd's API on curl's stdin), the tokens sealed with the run's one-time pad, dockerd's refusal said, the
report read whole. Fast tier."""
import json

import pytest

from tasks.core import inventory
from tasks.core.cluster import Swarm
from tasks.core.model import Host, Registry
from tasks.core.programs.protocol import Code
from tasks.core.programs.swarm import (
    availability_program,
    facts,
    join_program,
    nodes_program,
    pad,
    placed,
    placed_program,
    report_program,
    swarm_report,
    tokens,
    tokens_program,
)

from .conftest import CAPTURED, HERE, Lab, finished

WORKER = "SWMTKN-1-" + "3" * 50 + "-" + "w" * 25
MANAGER = "SWMTKN-1-" + "3" * 50 + "-" + "m" * 25
SOCK = "unix:///run/lab/docker.sock"


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    yield lab
    finished(lab)


def host(name: str, address: str, **kw) -> Host:
    return Host(name, address, (), Registry("r", "u", False, None), "root", 22, "/root", None, None, (), **kw)


def test_a_node_joins_with_the_token_on_stdin_and_never_as_an_argument(lab):
    lab.answer("curl", "*", "\n200")
    lab.answer("docker", "info --format {{json .Swarm}}", captured="swarm-info-worker.json")
    run = lab.run(join_program(host("sw3", "10.200.11.2"), host("sw1", "10.200.9.2")), stdin_tail=WORKER + "\n",
                  env={"DOCKER_HOST": SOCK})
    assert run.code == 0, run.stdout
    assert not any(WORKER in arg for c in lab.calls() for arg in c.argv)
    (curl,) = lab.calls("curl")
    assert "--unix-socket" in curl.argv and "/run/lab/docker.sock" in curl.argv
    assert json.loads(curl.stdin) == {"ListenAddr": "10.200.11.2:2377", "AdvertiseAddr": "10.200.11.2",
                                      "RemoteAddrs": ["10.200.9.2:2377"], "JoinToken": WORKER}
    assert facts(run.result).state == "active" and not facts(run.result).manager


def test_an_ipv6_node_listens_in_brackets(lab):
    lab.answer("curl", "*", "\n200")
    lab.answer("docker", "info --format {{json .Swarm}}", captured="swarm-info-worker.json")
    lab.run(join_program(host("n", "2001:db8::2"), host("m", "2001:db8::1")), stdin_tail=WORKER + "\n")
    body = json.loads(lab.calls("curl")[0].stdin)
    assert body["ListenAddr"] == "[2001:db8::2]:2377" and body["RemoteAddrs"] == ["[2001:db8::1]:2377"]


@pytest.mark.parametrize("sent", ["", "not-a-token", WORKER + " --force", "SWMTKN-1-abc;reboot"])
def test_what_is_not_a_join_token_joins_nothing(lab, sent):
    run = lab.run(join_program(host("sw3", "10.200.11.2"), host("sw1", "10.200.9.2")), stdin_tail=sent + "\n")
    assert run.code == 16 and not lab.calls()


def test_a_remote_docker_host_is_refused_before_the_token_goes_anywhere(lab):
    run = lab.run(join_program(host("sw3", "10.200.11.2"), host("sw1", "10.200.9.2")), stdin_tail=WORKER + "\n",
                  env={"DOCKER_HOST": "tcp://10.0.0.1:2375"})
    assert run.code == 16 and "not a local socket" in run.error and not lab.calls()


def test_dockerd_refusing_the_join_is_said_in_its_words(lab):
    lab.answer("curl", "*", captured="swarm-join-refused.txt")
    run = lab.run(join_program(host("sw3", "10.200.11.2"), host("sw1", "10.200.9.2")), stdin_tail=WORKER + "\n")
    assert run.code == 1 and "This node is already part of a swarm" in run.error
    assert WORKER not in run.stdout + run.stderr


def test_the_tokens_leave_the_manager_sealed_with_the_runs_pad(lab):
    lab.answer("docker", "swarm join-token -q worker", WORKER + "\n")
    lab.answer("docker", "swarm join-token -q manager", MANAGER + "\n")
    for what in ("node ls -q", "service ls -q"):
        lab.allow("docker", what)
    lab.answer("docker", "node inspect --format {{json .}}", "")
    once = pad()
    run = lab.run(tokens_program(host("sw1", "10.200.9.2")), stdin_tail=once.hex() + "\n")
    assert run.code == 0, run.stdout
    assert WORKER not in run.stdout and MANAGER not in run.stdout and "SWMTKN" not in run.stdout
    assert tokens(run.result, once) == {"worker": WORKER, "manager": MANAGER}
    other = lab.run(tokens_program(host("sw1", "10.200.9.2")), stdin_tail=pad().hex() + "\n")
    assert other.result.one("swarm_tokens") != run.result.one("swarm_tokens")   # (a new pad, other bytes)


def test_no_pad_no_tokens(lab):
    run = lab.run(tokens_program(host("sw1", "10.200.9.2")), stdin_tail="00ff\n")
    assert run.code == 16 and not lab.calls()


def test_the_report_is_read_whole_and_says_what_needs_a_look(lab):
    lab.answer("docker", "node ls -q", "a\nb\nc\n")
    lab.answer("docker", "node inspect --format {{json .}} a b c", captured="swarm-node-inspect.jsonl")
    lab.answer("docker", "service ls -q", "s1\ns2\n")
    lab.answer("docker", "service inspect --format {{json .}} s1 s2", captured="swarm-service-inspect.jsonl")
    lab.answer("docker", "service ps --no-trunc --format {{json .}} s1 s2", captured="swarm-service-ps.jsonl")
    run = lab.run(report_program())
    assert run.code == 0, run.stdout
    report = swarm_report(run.result)
    assert {n.host: (n.role, n.manager) for n in report.nodes} == {
        "sw1": ("manager", "leader"), "sw2": ("manager", "reachable"), "sw3": ("worker", "")}
    assert {s.name: (s.mode, s.replicas) for s in report.services} == {"web": ("replicated", 3),
                                                                       "broken": ("replicated", 2)}
    assert report.running("web") == 3 and report.running("broken") == 0
    assert [report.replicas(s) for s in report.services] == ["0/2", "3/3"]
    assert report.failures("broken")[0].error == "task: non-zero exit (1)"
    problems = report.problems(Swarm(("sw1", "sw2"), ("sw3",)))
    assert "service broken runs 0 of 2 replicas" in problems
    assert any("2 managers survive the loss of 0" in p for p in problems)
    assert not any("web" in p for p in problems)


def test_a_docker_that_fails_mid_report_stops_it(lab):
    lab.answer("docker", "node ls -q", "a\n")
    lab.answer("docker", "node inspect --format {{json .}} a", "Error: node a not found\n", code=1, stderr=True)
    run = lab.run(report_program())
    assert run.code == 1 and "node a not found" in run.error


def test_a_node_is_promoted_waited_for_and_labelled(lab):
    lab.answer("docker", "node inspect --format {{.Spec.Role}} n3", "worker\n")
    lab.allow("docker", "node promote n3")
    lab.answer("docker", "node inspect --format {{if .ManagerStatus}}* n3", "reachable\n")
    lab.answer("docker", "node inspect --format {{if .ManagerStatus}}* n3", "", once=True)
    lab.allow("docker", "node update --label-add fab.host=sw3 --label-add zone=b n3")
    for what in ("node ls -q", "service ls -q"):
        lab.allow("docker", what)
    lab.answer("docker", "node inspect --format {{json .}}", "")
    run = lab.run(nodes_program([("n3", "manager", host("sw3", "10.0.0.3", labels=(("zone", "b"),)))]))
    assert run.code == 0, run.stdout
    docker = lab.commands("docker")
    assert "node promote n3" in docker and sum("ManagerStatus" in c for c in docker) == 2


def test_drain_waits_for_the_tasks_to_run_elsewhere(lab):
    lab.answer("docker", "node ls -q --filter node.label=fab.host=sw3", "n3\n")
    lab.allow("docker", "node update --availability drain n3")
    lab.answer("docker", "node ps --format {{.CurrentState}} n3", "Shutdown 1 second ago\n")
    lab.answer("docker", "node ps --format {{.CurrentState}} n3", "Running 1 second ago\n", once=True)
    lab.answer("docker", "service ls -q", "s1\n")
    lab.answer("docker", "service ps --format {{.DesiredState}} {{.CurrentState}} s1", "Running Running 1 second ago\n"
               "Running Running 4 minutes ago\nShutdown Shutdown 2 seconds ago\n")
    lab.answer("docker", "service ps --format {{.DesiredState}} {{.CurrentState}} s1", "Ready Pending 1 second ago\n"
               "Running Running 4 minutes ago\n", once=True)
    lab.allow("docker", "node ls -q")
    lab.answer("docker", "node inspect --format {{json .}}", "")
    lab.answer("docker", "service inspect --format {{json .}} s1", "")
    lab.answer("docker", "service ps --no-trunc --format {{json .}} s1", "")
    run = lab.run(availability_program("sw3", "drain"))
    assert run.code == 0, run.stdout
    polls = [c for c in lab.commands("docker") if c.startswith("service ps --format")]
    assert len(polls) == 2 and "not every task has moved" not in run.stdout


def test_a_host_the_swarm_does_not_know_is_refused(lab):
    lab.allow("docker", "node ls -q --filter node.label=fab.host=sw9")
    run = lab.run(availability_program("sw9", "activate"))
    assert run.code == 16 and "no node of this swarm is host sw9" in run.error


def test_the_captured_outputs_are_docker_s(lab):
    """(The fixtures above are real: docker info of a worker says it is one.)"""
    info = json.loads((CAPTURED / "swarm-info-worker.json").read_text())
    assert info["LocalNodeState"] == "active" and info["ControlAvailable"] is False


def test_a_job_counts_its_completed_tasks_and_is_never_short_of_replicas():
    from tasks.core.programs.swarm import Service, SwarmReport, Task
    job = Service("enl_migrate", "replicated-job", 1, "img@sha256:" + "1" * 64)
    done = Task("enl_migrate", "sw1", "Complete", "Complete 3 seconds ago", "", job.image)
    report = SwarmReport([], [job], [done])
    assert report.replicas(job) == "1/1 completed" and report.running("enl_migrate") == 0
    assert not [p for p in report.problems(Swarm(("sw1",), ())) if "enl_migrate" in p]


def enlevohub_on_swarm():
    """EnlevoHub's swarm example through manager sw1: its stack app (namespace enlevohub-app) holds PostgreSQL."""
    target = inventory.load(HERE.parents[1] / "examples/enlevohub/swarm.yml").host("sw1").targets()[0]
    return target, target.system.databases


def test_a_database_is_found_on_the_node_its_running_task_is_on_named_as_hosts_yml_names_it(lab):
    target, stacks = enlevohub_on_swarm()
    lab.answer("docker", "service ps --no-trunc --filter desired-state=running --format * enlevohub-app_postgres",
               "sw2|Preparing 2 seconds ago\nnode-3|Running 5 minutes ago\n")
    lab.answer("docker", 'node inspect --format {{index .Spec.Labels "fab.host"}} node-3', "sw3\n")
    run = lab.run(placed_program(target, stacks))
    assert run.code == 0 and placed(run.result) == {"app": "sw3"}, run.stdout + run.stderr


@pytest.mark.parametrize("tasks, label, message", [
    ("", "sw3\n", "stack app: service enlevohub-app_postgres has no running task: deploy it first"),
    ("node-9|Running 1 minute ago\n", "\n", "stack app: enlevohub-app_postgres runs on node node-9, which has no "
                                            "fab.host label: it is none of hosts.yml's hosts"),
])
def test_a_database_not_running_or_on_a_node_hosts_yml_does_not_know_is_refused(lab, tasks, label, message):
    target, stacks = enlevohub_on_swarm()
    lab.answer("docker", "service ps --no-trunc --filter desired-state=running --format * enlevohub-app_postgres", tasks)
    lab.answer("docker", 'node inspect --format {{index .Spec.Labels "fab.host"}} node-9', label)
    run = lab.run(placed_program(target, stacks))
    assert run.code == Code.REFUSED and message in run.error, run.stdout + run.stderr


def test_a_swarm_system_s_database_container_is_the_swarm_s_task_on_this_node(lab):
    snippet = 'DATABASES=(); run add_database app eh-app postgres "" "" swarm; db_container app || echo none'
    lab.answer("docker", "ps -q --filter label=com.docker.swarm.service.name=eh-app_postgres --filter status=running",
               "c0ffee\nbeef\n")
    run = lab.snippet(snippet, {"run", "add_database", "db_container"}, {})
    assert run.stdout.strip() == "c0ffee", run.stdout + run.stderr
