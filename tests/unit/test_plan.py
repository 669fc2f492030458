"""The plan (deploy/rollback --plan) read from what its program reported: the pins, the stacks, the files that
changed against the running release's record, what hosts.yml says the run does; a damaged report refused; and
the exit when preflight would refuse. Fast tier (no host: the reports are written here)."""
import json
from dataclasses import replace
from pathlib import Path

import pytest

from tasks.core import inventory, plans
from tasks.core.errors import BAD_INPUT, ToolError
from tasks.core.jobs import Job
from tasks.core.model import Database
from tasks.core.programs.declare import Intent
from tasks.core.programs.plan import plan_of, plan_program
from tasks.core.programs.protocol import Result

REPO = Path(__file__).resolve().parents[2]
OLD, NEW = "v1.4.2@sha256:" + "2" * 64, "v1.4.3@sha256:" + "3" * 64


@pytest.fixture
def target():
    return inventory.load(REPO / "hosts.yml").host("vps1").targets()[0]


def intent(**kw) -> Intent:
    return Intent(**{**dict(action="deploy", release="r2", tag="v1.4.3", by="ana@laptop", origin="laptop",
                            tags={"ems": "v1.4.3"}), **kw})


def reported(files: dict, lock: dict | None = None, now: str = OLD) -> Result:
    record = {"release": "r1", "tag": "v1.4.2", "action": "deploy", "by": "a", "from": "l", "state": "good",
              "at": "2026-12-01T00:00:00Z", "images": {"ems": OLD},
              "config": {"commit": "", "dirty": False, "files": {"repo/a/.env": "a" * 64, "repo/a/c.yml": "c" * 64}}}
    return Result(data={"current": [{"release": "r1", "tag": "v1.4.2"}], "current_pin": [{"app": "ems", "pin": now}],
                        "plan_pin": [{"app": "ems", "now": now, "after": NEW, "why": ""}],
                        "plan_stack": [{"stack": "infra", "action": "kept"}, {"stack": "ems", "action": "up"}],
                        "config": [{"commit": "", "dirty": False, "files": files}], **({"lock": [lock]} if lock else {})},
                  text={"history": [json.dumps(record)]})


def test_a_plan_names_pins_stacks_changed_files_jobs_backups_and_the_lock(target):
    stacks = [replace(s, jobs=(Job("migrate", "ems", ("x",), "before", 60),)) if s.name == "ems" else s
              for s in target.system.stacks]
    plan = plan_of(target, stacks, intent(), reported({"repo/a/.env": "b" * 64, "repo/a/c.yml": "c" * 64}))
    assert plan.apps == [{"app": "ems", "now": OLD, "after": NEW, "why": ""}]
    assert plan.stacks == [{"stack": "infra", "action": "kept"}, {"stack": "ems", "action": "up"}]
    assert plan.files == ["repo/a/.env"] and plan.jobs == ["ems/migrate (before)"]
    assert plan.lock.endswith("/state/lock (free now)") and not plan.problems and not plan.notes
    assert plan_of(target, stacks, intent(jobs=False), reported({})).jobs == [], "a rollback without --jobs runs none"
    assert plan.backups == [], "no backup: {before_deploy: true}"
    stacks = [replace(s, database=Database("db", None, ())) if s.name == "infra" else s for s in stacks]
    backed = replace(target, system=replace(target.system, backup=replace(target.system.backup, before_deploy=True)))
    assert plan_of(backed, stacks, intent(), reported({})).backups == ["infra"]


def test_a_held_lock_and_a_ref_are_said(target):
    lock = {"holder": "bob@ci deploy v9", "stale": "0", "gone": "", "interrupted": ""}
    plan = plan_of(target, list(target.system.stacks), intent(ref="main"), reported({}, lock))
    assert plan.lock.endswith("(now held by bob@ci deploy v9: the run would be refused (exit 3) until it is free)")
    assert plan.notes == ["repo/ moves to main first: the files and stacks above are read as repo/ is now"]


@pytest.mark.parametrize("now", ["v1\nDB_PASSWORD=x", "latest"])
def test_a_damaged_pin_in_the_report_is_refused(target, now):
    with pytest.raises(ToolError, match="cannot read"):
        plan_of(target, list(target.system.stacks), intent(), reported({}, now=now))


def test_the_plan_program_reads_and_writes_nothing_it_should_not(target):
    text = plan_program(target, list(target.system.stacks), intent()).text
    for step in ("lock_take", "registry_login", "fetch_images", "record", "go_live", "atomic_write \"$STATE"):
        assert f"run {step}" not in text, step
    assert "run plan_pins" in text and "run plan_stacks" in text


def test_a_plan_preflight_would_refuse_exits_2_after_it_is_printed(target, capsys):
    plan = plan_of(target, list(target.system.stacks), intent(), reported({}))
    plan.problems = ["stack sms: docker compose config fails: yaml"]
    with pytest.raises(ToolError) as e:
        plans.show([plan], as_json=True)
    assert e.value.code == BAD_INPUT and "preflight would refuse this run on vps1/" in str(e.value)
    assert json.loads(capsys.readouterr().out)[plan.target]["problems"] == plan.problems
