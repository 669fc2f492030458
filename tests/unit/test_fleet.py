"""The fleet engine's decisions (unit tier): steps from the stacks' order, rolling batches that stop at a
failure, reverts of the switched hosts in reverse order, locks first, the worst exit code, the JSON events.
The transport is replaced by a recorder here (``execute``); the e2e tier runs the same engine on real hosts."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.core import cli, errors, fleet, inventory
from tasks.core.errors import ToolError, worst
from tasks.core.fleet import Leg, Rollout, Run
from tasks.core.programs.declare import Intent
from tasks.core.programs.protocol import Program, Result
from tasks.core.programs.state import free_program, hold_program

from .test_inventory import FLEET

INVENTORY = FLEET   # seed 002's five servers: db on en4, replica on en5, backends on en1-3, nginx on en1


@pytest.fixture
def hosts(tmp_path, monkeypatch):
    """Every host selected, sessions that are never opened, and the programs sent recorded: a program named
    in ``failing`` fails with that code."""
    path = tmp_path / "hosts.yml"
    path.write_text(INVENTORY)
    monkeypatch.setenv("FAB_INVENTORY", str(path))
    sent, failing = [], {}

    def execute(session, program, label, quiet=False, display=None):
        sent.append((label.split("/")[0], program.name.split(" ")[0]))
        code = failing.get((label.split("/")[0], program.name.split(" ")[0]))
        if code:
            raise ToolError(f"{label}: boom", code)
        result = Result()
        result.data["switched"] = [{"release": "new", "from": "old-" + label.split("/")[0]}]
        return result

    monkeypatch.setattr(fleet, "execute", execute)
    sel = cli.select(None, all_hosts=True)
    sel.sessions = {h: object() for h in sel.inventory.hosts}
    return sel, sent, failing


def jobs_for(run: Run, sel) -> list[Leg]:
    out = []
    for target in sel.targets:
        stacks = target.system.stacks
        intent = Intent("deploy", run.release, "v2", "ana", "laptop", fleet=run.fleet)
        out.append(Leg(target, Program(f"deploy v2 on {target.label}"), intent, run.stage_of(target, list(stacks))))
    return out


def revert(session, target, previous, undone) -> Program:
    return Program(f"rollback to {previous}")


def test_the_database_host_goes_first_then_the_app_hosts_and_every_lock_is_taken_before(hosts, capsys):
    sel, sent, _ = hosts
    run = Run(sel, sel.targets, "deploy", Rollout(), json=True)
    run.go(jobs_for(run, sel), revert)
    holds, deploys, frees = sent[:5], sent[5:10], sent[10:]
    assert holds == [(h, "hold") for h in ("en1", "en2", "en3", "en4", "en5")]   # name order
    assert deploys[:2] == [("en4", "deploy"), ("en5", "deploy")] and {h for h, _ in deploys[2:]} == {"en1", "en2", "en3"}
    assert sorted(frees) == [(h, "free") for h in ("en1", "en2", "en3", "en4", "en5")]
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[0]["stages"] == [["en4/enlevohub"], ["en5/enlevohub"],
                                  ["en1/enlevohub", "en2/enlevohub", "en3/enlevohub"]]
    assert events[-1]["exit"] == 0 and {h["result"] for h in events[-1]["hosts"]} == {"switched"}


def test_a_failing_host_stops_the_batches_and_the_switched_hosts_go_back_last_step_first(hosts, capsys):
    sel, sent, failing = hosts
    failing[("en2", "deploy")] = errors.ROLLED_BACK
    run = Run(sel, sel.targets, "deploy", Rollout(batch="1"))
    with pytest.raises(ToolError) as e:
        run.go(jobs_for(run, sel), revert)
    assert e.value.code == errors.ROLLED_BACK
    assert "3 reverted" in str(e.value) and "1 failed" in str(e.value) and "1 untouched" in str(e.value)
    changes = [s for s in sent if s[1] in ("deploy", "rollback")]
    assert changes == [("en4", "deploy"), ("en5", "deploy"), ("en1", "deploy"), ("en2", "deploy"),
                       ("en1", "rollback"), ("en5", "rollback"), ("en4", "rollback")]
    out = capsys.readouterr().out
    assert "en3/enlevohub: untouched" not in out and "│ en3  │ enlevohub │ untouched" in out


def test_no_revert_keeps_them_and_a_failed_revert_is_the_worst_code(hosts, capsys):
    sel, sent, failing = hosts
    failing[("en1", "deploy")] = errors.REMOTE_FAILED
    run = Run(sel, sel.targets, "deploy", Rollout(batch="1", revert=False))
    with pytest.raises(ToolError) as e:
        run.go(jobs_for(run, sel), revert)
    assert e.value.code == errors.REMOTE_FAILED and ": 2 kept, 1 failed, 2 untouched" in str(e.value)
    assert not [s for s in sent if s[1] == "rollback"]
    sent.clear()
    failing[("en4", "rollback")] = errors.ROLLED_BACK
    run = Run(sel, sel.targets, "deploy", Rollout(batch="1"))
    with pytest.raises(ToolError) as e:
        run.go(jobs_for(run, sel), revert)
    assert e.value.code == errors.NEEDS_ATTENTION and "1 revert failed" in str(e.value)


def test_a_refused_lock_changes_nothing_and_frees_every_lock(hosts):
    sel, sent, failing = hosts
    failing[("en3", "hold")] = errors.BUSY
    run = Run(sel, sel.targets, "deploy", Rollout())
    with pytest.raises(ToolError, match="nothing was changed on any host") as e:
        run.go(jobs_for(run, sel), revert)
    assert e.value.code == errors.BUSY
    assert [s for s in sent if s[1] == "hold"] == [("en1", "hold"), ("en2", "hold"), ("en3", "hold")]
    assert not [s for s in sent if s[1] == "deploy"] and len([s for s in sent if s[1] == "free"]) == 5


def test_one_host_runs_its_own_program_without_a_fleet_lock(hosts, monkeypatch):
    sel, sent, _ = hosts
    one = cli.Selection(sel.inventory, sel.targets[:1], sel.sessions)
    seen = []
    monkeypatch.setattr(fleet, "run_release", lambda session, target, intent, program: seen.append(intent) or Result())
    run = Run(one, one.targets, "deploy")
    run.go(jobs_for(run, one), revert)
    assert not sent and seen[0].fleet == "" and "FLEET" not in seen[0].head()


def test_hold_and_free_programs_are_pinned(tmp_path):
    target = inventory.load(_write(tmp_path)).host("en1").targets()[0]
    intent = Intent("deploy", "r1", "v2", "ana", "laptop", fleet="r1")
    hold = hold_program(target, intent)
    assert hold.steps == [("lock_hold",)] and hold.head["FLEET"] == "r1"
    assert hold.head["STATE"] == "/root/enlevohub/state"
    free = free_program(target, "r1")
    assert free.steps == [("lock_free",)] and free.head == {"STATE": "/root/enlevohub/state", "FLEET": "r1"}


@pytest.mark.parametrize("parallel, batch, message", [
    ("0", None, "--parallel must be"), ("x", None, "--parallel must be"),
    (None, "0", "--batch must be"), (None, "150%", "--batch must be"), (None, "a%", "--batch must be"),
])
def test_rollout_options_are_checked(parallel, batch, message):
    with pytest.raises(ToolError, match=message) as e:
        Rollout.parse(parallel, batch, False)
    assert e.value.code == errors.BAD_INPUT


def test_batches_and_the_worst_code():
    assert Rollout.parse("2", "25%", False).batches(list(range(5))) == [[0, 1], [2, 3], [4]]
    assert Rollout.parse(None, "2", True).batches([1, 2, 3]) == [[1, 2], [3]]
    assert Rollout().batches([1, 2, 3]) == [[1, 2, 3]]
    assert worst([0, errors.BUSY, errors.ROLLED_BACK, errors.BAD_INPUT]) == errors.ROLLED_BACK
    assert worst([errors.NEEDS_ATTENTION, errors.FAILED]) == errors.NEEDS_ATTENTION
    assert worst([0, 0]) == 0


def _write(tmp_path) -> Path:
    path = tmp_path / "inv.yml"
    path.write_text(INVENTORY)
    return path


@pytest.mark.parametrize("args, message", [
    (["-H", "en1,nosuch", "status"], "unknown host 'nosuch'"),
    (["-H", "en1", "status", "--host", "en2"], "give either -H or --host, not both"),
])
def test_fabrics_hosts_flag_names_hosts_of_the_inventory(tmp_path, args, message):
    fab = str(Path(sys.executable).parent / "fab")
    res = subprocess.run([fab, *args], env={"FAB_INVENTORY": str(_write(tmp_path)), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert res.returncode == errors.BAD_INPUT and message in res.stderr, res.stdout + res.stderr


def test_a_hosts_first_release_is_kept_when_another_host_fails(hosts, monkeypatch):
    """Nothing ran before this run on en4 (a new server): there is nothing to put back, and that is no failure."""
    sel, sent, failing = hosts
    recorded = fleet.execute

    def first_on_en4(session, program, label, **kw):
        result = recorded(session, program, label, **kw)
        if label.startswith("en4/"):
            result.data["switched"] = [{"release": "new", "from": ""}]
        return result

    monkeypatch.setattr(fleet, "execute", first_on_en4)
    failing[("en1", "deploy")] = errors.ROLLED_BACK
    run = Run(sel, sel.targets, "deploy", Rollout(batch="1"))
    with pytest.raises(ToolError) as e:
        run.go(jobs_for(run, sel), revert)
    assert e.value.code == errors.ROLLED_BACK and "1 kept, 1 reverted, 1 failed, 2 untouched" in str(e.value)
    assert ("en4", "rollback") not in sent and ("en5", "rollback") in sent


def test_at_a_terminal_each_host_has_a_live_line_and_the_lines_still_print(monkeypatch):
    """The rich Live view (a terminal) and the plain one (elsewhere) from the same events."""
    import io
    import re

    from rich.console import Console

    from tasks.core import ui
    for terminal in (True, False):
        out = io.StringIO()
        monkeypatch.setattr(ui, "console", Console(file=out, force_terminal=terminal, width=120, highlight=False))
        view = ui.FleetView()
        assert (view.live is not None) == terminal
        view.show({"event": "plan", "action": "deploy", "release": "r1", "stages": [["en4/s"], ["en1/s", "en2/s"]]})
        view.show({"event": "step", "host": "en4", "system": "s", "step": "up", "text": "db: up", "state": "started"})
        view.show({"event": "step", "host": "en4", "system": "s", "step": "up", "text": "db: up", "state": "ok",
                   "seconds": 1.5})
        view.show({"event": "host", "host": "en4", "system": "s", "result": "switched", "detail": "v2 is live"})
        view.close()
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
        assert "deploy r1: [en4/s] then [en1/s, en2/s]" in text and "en4/s db: up (1.5s)" in text
        assert "en4/s: switched v2 is live" in text
