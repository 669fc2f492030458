"""The logs program (sh/logs.sh) under bash with stub docker and journalctl: each line led by its stack (a line
a container wrote can never pass for the protocol's), a service the stack lacks refused by name, a binary's
journal with its --since, and a followed reader ended when the operator's machine goes. Fast tier."""
import subprocess
import time

import pytest

from tasks.core import inventory
from tasks.core.programs.logs import Since, log_line, logs_program

from .conftest import HERE, Lab, finished

TEXT = "ems-1  | GET /health 200\nems-2  | @@error spoofed by a container\n"


@pytest.fixture
def logs_lab(tmp_path):
    lab = Lab(tmp_path)
    (lab.bin / "journalctl").symlink_to(HERE / "stub")
    yield lab
    finished(lab)


def stack(lab, name):
    return next(s for s in lab.target.system.stacks if s.name == name)


def test_each_line_is_led_by_its_stack_and_a_container_cannot_speak_the_protocol(logs_lab):
    lab = logs_lab
    lab.answer("docker", "compose -p * logs --no-color --tail 50 --since 600s", TEXT)
    run = lab.run(logs_program(lab.target, [stack(lab, "ems")], "", 50, Since("600s", "-600s"), False))
    assert run.code == 0 and run.result.errors == [], run.stdout
    shown = [log_line(line, set()) for line in run.result.log]
    assert shown[:2] == [("ems/ems-1", "GET /health 200"), ("ems/ems-2", "@@error spoofed by a container")]
    assert "--since 600s" in lab.commands("docker")[0]


def test_a_service_the_stack_does_not_have_is_refused_naming_those_it_has(logs_lab):
    lab = logs_lab
    lab.answer("docker", "compose -p * config --services", "ems\nredis\n")
    run = lab.run(logs_program(lab.target, [stack(lab, "ems")], "nope;reboot", 10, Since(), False))
    assert run.code == 16 and "stack ems has no service nope;reboot (it has: ems redis)" in run.error
    assert not [c for c in lab.commands("docker") if " logs " in f" {c} "], "nothing read"
    lab.answer("docker", "compose -p * logs --no-color --tail 10 -- redis", "redis-1  | Ready\n")
    run = lab.run(logs_program(lab.target, [stack(lab, "ems")], "redis", 10, Since(), False))
    assert run.code == 0 and log_line(run.result.log[0], set()) == ("ems/redis-1", "Ready")


def test_a_reader_that_fails_fails_the_program(logs_lab):
    lab = logs_lab
    lab.answer("docker", "compose -p * logs *", "no such project\n", code=1)
    run = lab.run(logs_program(lab.target, [stack(lab, "ems")], "", 10, Since(), False))
    assert run.code == 1 and "reading the logs of ems failed" in run.error


def binary_lab(lab):
    (lab.root / "hosts.yml").write_text(
        "registry: {server: r.example, username: u}\nsystems:\n  plantao:\n    stacks:\n"
        f"      escala: {{binary: {{path: '{lab.root}/opt/plantao/escala-plantao', unit: plantao}}}}\n"
        f"hosts:\n  lab: {{address: 127.0.0.1, root: '{lab.root}', systems: [plantao]}}\n")
    return inventory.load(lab.root / "hosts.yml").host("lab").targets()[0]


def test_a_binarys_unit_is_read_from_its_journal(logs_lab):
    lab = logs_lab
    target = binary_lab(lab)
    lab.answer("journalctl", "-u plantao.service --no-pager -o short-iso -n 30 --since=2026-12-05 14:30",
               "2026-12-05T14:31:00+0000 vps escala-plantao[81]: listening on :8080 | ready\n")
    run = lab.run(logs_program(target, list(target.system.stacks), "", 30, Since("x", "2026-12-05 14:30"), False))
    assert run.code == 0, run.stdout
    assert log_line(run.result.log[0], {"escala"}) == \
        ("escala", "2026-12-05T14:31:00+0000 vps escala-plantao[81]: listening on :8080 | ready")


def test_a_followed_reader_ends_when_the_operators_machine_goes(logs_lab):
    """The connection closes (Ctrl-C, a dropped link): the next 'alive' line fails and the reader is ended."""
    lab = logs_lab
    target = binary_lab(lab)
    (lab.bin / "journalctl").unlink()
    (lab.bin / "journalctl").write_text("#!/bin/bash\necho 'started'\nexec /bin/sleep 600.0417\n")
    (lab.bin / "journalctl").chmod(0o755)
    (lab.bin / "sleep").unlink()   # (logs_wait's 2 s for real)
    started = time.monotonic()
    code = lab.hang_up(logs_program(target, list(target.system.stacks), "", 5, Since(), True), after_lines=1)
    assert code == 0 and time.monotonic() - started < 15
    left = subprocess.run(["pgrep", "-f", "sleep 600.0417"], capture_output=True, text=True).stdout
    assert left == "", "the reader was ended"


def swarm_target():
    """EnlevoHub's swarm example: its stack app (namespace enlevohub-app) on a swarm."""
    return inventory.load(HERE.parents[1] / "examples/enlevohub/swarm.yml").host("sw1").targets()[0]


def test_a_swarm_stack_is_read_service_by_service_through_the_manager_named_without_its_namespace(logs_lab):
    lab, target = logs_lab, swarm_target()
    lab.answer("docker", "service ls --filter label=com.docker.stack.namespace=enlevohub-app --format {{.Name}}",
               "enlevohub-app_backend\nenlevohub-app_postgres\n")
    lab.answer("docker", "service logs --no-task-ids --tail 5 --since 600s enlevohub-app_backend",
               "enlevohub-app_backend.2@sw3    | GET /api/health 200\n")
    lab.answer("docker", "service logs --no-task-ids --tail 5 --since 600s enlevohub-app_postgres",
               "enlevohub-app_postgres.1@sw3    | ready to accept connections\n")
    run = lab.run(logs_program(target, list(target.system.stacks), "", 5, Since("600s", "-600s"), False))
    assert run.code == 0, run.stdout + run.stderr
    assert [log_line(line, set()) for line in run.result.log] == [
        ("app/backend.2@sw3", "GET /api/health 200"), ("app/postgres.1@sw3", "ready to accept connections")]
    run = lab.run(logs_program(target, list(target.system.stacks), "nginx", 5, Since(), False))
    assert run.code == 16 and "stack app has no service nginx (it has: backend postgres)" in run.error


def test_a_swarm_stack_s_logs_with_a_node_down_are_shown_and_said_incomplete(logs_lab):
    """Seen on the sandbox swarm with sw2 down: docker gives the other nodes' lines, then fails."""
    lab, target = logs_lab, swarm_target()
    lab.answer("docker", "service ls --filter label=com.docker.stack.namespace=enlevohub-app --format {{.Name}}",
               "enlevohub-app_backend\n")
    lab.answer("docker", "service logs --no-task-ids --tail 5 enlevohub-app_backend",
               "enlevohub-app_backend.2@sw1    | listening\nerror from daemon in stream: Error grabbing logs: rpc "
               "error: warning: incomplete log stream. some logs could not be retrieved: node x is not available\n",
               code=1)
    run = lab.run(logs_program(target, list(target.system.stacks), "backend", 5, Since(), False))
    assert run.code == 0 and log_line(run.result.log[0], set()) == ("app/backend.2@sw1", "listening")
    assert "incomplete log stream" in run.result.log[1]
    assert any("some logs of app could not be read" in line for line in run.stdout.splitlines())
