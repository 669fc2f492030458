"""fab doctor: the seeds' troubleshooting tables as checks, each OK, WARN or FAIL with its fix."""
from __future__ import annotations

import json as jsonlib
import time

from rich.table import Table

from .backup import where_databases
from .core.cli import command, select
from .core.errors import FOUND_BROKEN, WARNING, ToolError, worst
from .core.model import Stack
from .core.programs.doctor import doctor_program, findings
from .core.programs.finding import Finding
from .core.programs.protocol import execute
from .core.target import Target
from .core.ui import console, safe

EXIT = {"ok": 0, "warn": WARNING, "fail": FOUND_BROKEN}
STYLE = {"ok": "green", "warn": "yellow", "fail": "red"}


@command({"json": "print the findings as JSON: {host/system: [{check, level, text, fix}]}"})
def doctor(c, host=None, group=None, all=False, system=None, json=False):
    """Diagnose a host: the seeds' troubleshooting rows as checks, each OK, WARN or FAIL with its fix.

    dockerd and Compose, disk and inodes, external networks, ports published on every address, images pinned
    by nothing, .env placeholders, database logins and versions, TLS certificates, the token file and its expiry
    (GitHub asked from the host), a stale lock, the newest backups' age, the host's clock.
    Read-only. Exit 0 when every check is OK, 8 for a WARN, 11 for a FAIL (the worst finding)."""
    out: dict[str, list[dict]] = {}
    codes = []
    with select(host, system, all, group) as sel:
        placed: dict[str, dict[str, str]] = {}
        for target in sel.targets:
            dbs, elsewhere = _databases(sel, target, placed)
            program = doctor_program(target, sel.inventory.github_api_for(target.host), dbs)
            res = execute(sel.session(target), program, target.label, quiet=True)
            found = [_with_host(f, target.host.name) for f in findings(target, res, time.time(), dbs, elsewhere)]
            out[target.label] = [f.as_dict() for f in found]
            codes += [EXIT[f.level] for f in found]
            if not json:
                _show(target.label, found)
    if json:
        print(jsonlib.dumps(out, indent=2))
    code = worst(codes)
    if code:
        raise ToolError("doctor found " + ("something broken (FAIL)" if code == FOUND_BROKEN else "warnings (WARN)")
                        + ": the fix is beside each", code)


def _databases(sel, target: Target, placed: dict[str, dict[str, str]]) -> tuple[list[Stack], dict[str, str]]:
    """The database stacks doctor checks on ``target`` (a swarm system's: those whose task runs on its host,
    asked of a manager once per system, in ``placed``) and the others' hosts."""
    mine = target.system.databases
    if target.system.engine != "swarm" or not mine:
        return mine, {}
    if target.system.name not in placed:
        placed[target.system.name] = {s.name: t.host.name for t, stacks in where_databases(sel, [target]) for s in stacks}
    where = placed[target.system.name]
    return ([s for s in mine if where[s.name] == target.host.name],
            {s.name: where[s.name] for s in mine if where[s.name] != target.host.name})


def _with_host(f: Finding, host: str) -> Finding:
    return Finding(f.check, f.level, f.text, f.fix.replace("--host HOST", f"--host {host}"))


def _show(label: str, found: list[Finding]) -> None:
    table = Table("check", "", "finding", "fix", title=safe(label), title_justify="left")
    for f in found:
        table.add_row(f.check, f"[{STYLE[f.level]}]{f.level.upper()}[/]", safe(f.text), safe(f.fix))
    console.print(table)
