"""fab releases: the release history that rollback uses, newest first, marking the one that runs."""
from __future__ import annotations

import json as jsonlib

from rich.table import Table

from .core.cli import command, select
from .core.programs.state import read_state
from .core.ui import console, safe


@command({"json": "print the history as JSON (newest first) for scripts"})
def releases(c, host=None, group=None, all=False, system=None, json=False):
    """Show the release history (newest first), marking the one that runs."""
    out = {}
    with select(host, system, all, group, swarm_once=True) as sel:
        for target in sel.targets:
            state = read_state(sel.session(target), target)
            rows = [r.as_dict(running=r.id == state.current.release) for r in reversed(state.releases)]
            if json:
                out[target.system.name] = rows
            else:
                _table(target.label, rows)
    if json:
        print(jsonlib.dumps(out, indent=2))


def _table(label: str, rows: list[dict]) -> None:
    table = Table(title=f"{safe(label)} releases", title_justify="left")
    jobs = any(r["jobs"] for r in rows)
    for col in ("", "release", "tag", "action", "state", "started", "by", "apps (tag, digest)", "config",
                *(("jobs",) if jobs else ())):
        table.add_column(col)
    for r in rows:
        pins = " ".join(f"{s} {p.split('@')[0]} ({p.split('@')[-1][7:19]})" for s, p in sorted(r["images"].items()))
        style = {"good": "green", "failed": "red"}.get(r["state"], "yellow")
        table.add_row("▶" if r["running"] else "", safe(r["release"]), safe(r["tag"]), safe(r["action"]),
                      f"[{style}]{safe(r['state'])}[/]", safe(r["started"]), safe(r["by"]), safe(pins),
                      safe(_config(r["config"])), *((safe(_jobs(r["jobs"])),) if jobs else ()))
    console.print(table)
    if not rows:
        console.print("  no releases recorded yet")


def _config(config: dict) -> str:
    """The commit of repo/ a release ran with (short; * when it had local changes), else its files' count."""
    if not config:
        return "-"
    commit = config["commit"][:10] + ("*" if config["dirty"] else "") if config["commit"] else "no git"
    return f"{commit} ({len(config['files'])} files)"


def _jobs(jobs: dict) -> str:
    """A release's run-once jobs and how each ended: ``app/migrate ok 3s``, ``app/migrate failed (exit 1)``."""
    return " ".join(f"{k} {v['result']}" + (f" {v['seconds']}s" if v["result"] == "ok" else f" (exit {v['exit']})")
                    for k, v in sorted(jobs.items())) or "-"
