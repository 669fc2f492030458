"""End-to-end (real tier): `fab deploy --plan` and `fab rollback --plan` (issue 25) on the sandbox VPS: the plan
changes nothing on the host (byte for byte, the same containers, no login), and the deploy that follows does
what it said: the digests it pins are the plan's, the stacks it said it leaves alone keep their containers and
the others get new ones; a changed .env is named with its stack."""
from __future__ import annotations

import json
import os
import pty
import time

import pytest

from tasks.core import errors

from .conftest import FAB, REPO

pytestmark = pytest.mark.e2e


def plan(vps, *args: str) -> dict:
    out = vps.ok(*args, "--host", "t1", "--plan", "--json").stdout
    return json.loads(out)["t1/ems_system"]


def containers_by_project(vps) -> dict[str, list[str]]:
    out = vps.host.docker("ps", "--no-trunc", "--format",
                          '{{.ID}} {{.Label "com.docker.compose.project"}}').stdout
    projects: dict[str, list[str]] = {}
    for line in out.splitlines():
        cid, project = line.split()
        projects.setdefault(project, []).append(cid)
    return {p: sorted(ids) for p, ids in projects.items()}


def test_the_plan_changes_nothing_and_the_deploy_then_does_what_it_said(vps):
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    before, running = vps.snapshot(), containers_by_project(vps)
    planned = plan(vps, "deploy", "--tag", "ems=v1.4.3")
    assert vps.snapshot() == before, "a plan locks, pulls, logs in and writes nothing"
    apps = {a["app"]: a for a in planned["apps"]}
    assert apps["ems"]["now"].startswith("v1.4.2@sha256:") and apps["ems"]["after"].startswith("v1.4.3@sha256:")
    assert apps["sms"]["now"] == apps["sms"]["after"], "sms keeps what it runs"
    fate = {s["stack"]: s["action"] for s in planned["stacks"]}
    assert fate["ems"] == "up" and fate["sms"] == "kept" and fate["infra"] == "kept", fate
    assert planned["lock"].endswith("/lock (free now)") and not planned["problems"] and not planned["files"]

    vps.ok("deploy", "--host", "t1", "--tag", "ems=v1.4.3")
    assert vps.running()["images"] == {a: p["after"] for a, p in apps.items()}, "the digests it pinned are the plan's"
    after = containers_by_project(vps)
    for stack, action in fate.items():
        project = f"ems_system-{stack}"
        if project in running:
            assert (after[project] == running[project]) == (action == "kept"), (stack, action)

    sms = vps.host.root / "ems_system/repo/servers/sms/container"
    (sms / ".env").write_text((sms / ".env").read_text() + "LOG_LEVEL=debug\n")
    planned = plan(vps, "deploy", "--tag", "ems=v1.4.3")
    assert planned["files"] == ["repo/servers/sms/container/.env"], planned
    assert {s["stack"]: s["action"] for s in planned["stacks"]}["sms"] == "kept", "its compose file reads no LOG_LEVEL"
    compose = sms / "docker-compose.prod.yml"
    compose.write_text(compose.read_text().replace("    restart: unless-stopped\n",
                                                   "    restart: unless-stopped\n    environment:\n      LOG_LEVEL: ${LOG_LEVEL}\n"))
    planned = plan(vps, "deploy", "--tag", "ems=v1.4.3")
    assert sorted(planned["files"]) == ["repo/servers/sms/container/.env",
                                        "repo/servers/sms/container/docker-compose.prod.yml"], planned
    fate = {s["stack"]: s["action"] for s in planned["stacks"]}
    assert fate == {**fate, "sms": "up", "ems": "kept"} and not planned["problems"], planned
    running = containers_by_project(vps)
    vps.ok("deploy", "--host", "t1", "--tag", "ems=v1.4.3")
    after = containers_by_project(vps)
    assert after["ems_system-sms"] != running["ems_system-sms"] and after["ems_system-ems"] == running["ems_system-ems"]

    back = plan(vps, "rollback", "--to", "v1.4.2")
    assert {a["app"]: a["after"] for a in back["apps"]} == {
        a: p for a, p in vps.releases()[-1]["images"].items()}, "a rollback's plan names the recorded digests"


def test_a_plan_names_a_tag_the_registry_does_not_have_and_a_held_lock(vps):
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    (vps.state / "lock").mkdir()
    (vps.state / "lock" / "info").write_text("ana@laptop deploy v9 pid 1")
    planned = plan(vps, "deploy", "--tag", "v9.9.9")
    assert "now held by ana@laptop deploy v9 pid 1" in planned["lock"], planned["lock"]
    assert all(a["why"] == "the registry has no such tag (404)" for a in planned["apps"]), planned["apps"]
    (vps.state / "lock" / "info").unlink()
    (vps.state / "lock").rmdir()
    (vps.host.root / "ems_system/repo/servers/sms/container/docker-compose.prod.yml").write_text("services: [\n")
    refused = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3", "--plan", "--json")
    assert refused.returncode == errors.BAD_INPUT and "preflight would refuse this run on t1/ems_system" in refused.stderr
    problems = json.loads(refused.stdout)["t1/ems_system"]["problems"]
    assert len(problems) == 1 and problems[0].startswith("stack sms: docker compose config fails"), problems


def at_a_terminal(vps, answer: str, *args: str) -> tuple[int, str]:
    """fab run at a terminal (a pty for stdin and stdout; CI not set), ``answer`` typed at its question."""
    pid, fd = pty.fork()
    if pid == 0:   # (the child: fab, at the terminal)
        env = {k: v for k, v in vps.env().items() if k != "CI"}
        os.chdir(REPO)
        os.execve(FAB, [FAB, *args], env)
    out, deadline = b"", time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:   # (the child ended: the terminal closed)
            break
        out += chunk
        if out.endswith(b"[y/N] "):
            os.write(fd, answer.encode() + b"\n")
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_at_a_terminal_a_deploy_shows_its_plan_and_asks_once(vps):
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    before = vps.snapshot()
    code, out = at_a_terminal(vps, "n", "deploy", "--host", "t1", "--tag", "v1.4.3")
    assert code == errors.BAD_INPUT and "not confirmed: nothing was changed" in out, out
    assert out.count("[y/N]") == 1 and "app ems: v1.4.2@sha256:" in out and "stack ems: brought up" in out, out
    assert vps.snapshot() == before
    code, out = at_a_terminal(vps, "y", "deploy", "--host", "t1", "--tag", "v1.4.3")
    assert code == 0 and vps.version() == "v1.4.3", out
    code, out = at_a_terminal(vps, "", "deploy", "--host", "t1", "--tag", "v1.4.2", "--yes")
    assert code == 0 and "[y/N]" not in out and vps.version() == "v1.4.2", out
