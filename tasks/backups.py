"""fab backups: what a system's backups are, wherever they are: the verified backups kept on the VPS and, with
backup: {offsite: [...]}, the snapshots in each restic repository (age, size, verified, the last check). With
backup: {max_age: 26h} it is the monitor of a schedule: exit 8 when the newest verified backup of a series, or
copy in a repository, is older, or a repository cannot be read or failed its last check."""
from __future__ import annotations

import json as jsonlib
from datetime import datetime, timezone

from rich.table import Table

from .backup import where_databases, with_backups
from .core.cli import command, select
from .core.errors import WARNING, ToolError
from .core.programs.backup import Backup, list_program, listed
from .core.programs.offsite import Repository, list_offsite, listed_offsite
from .core.programs.protocol import execute
from .core.target import Target
from .core.ui import console, safe, size


@command({"all": "every host of hosts.yml whose systems have something to back up",
          "json": "print the list as JSON for scripts: backups, offsite (per repository) and problems"})
def backups(c, host=None, group=None, all=False, system=None, json=False):
    """List the backups on the VPS and the copies off it (newest first): size, age, what each holds, verified.

    Exit 8 when a system's newest verified backup of a series, or copy in a repository, is older than its
    backup: {max_age}, or a repository cannot be read or failed its last check (each is named)."""
    out, problems = {}, []
    with select(host, system, all, group, swarm_once=True) as sel:
        for target in dict.fromkeys(t for t, _ in where_databases(sel, with_backups(sel.targets))):
            result = execute(sel.session(target), list_offsite(list_program(target), target), target.label, quiet=True)
            found, repos = listed(result), listed_offsite(result)
            mine = stale(target, found, repos, datetime.now(timezone.utc))
            out[target.label] = {"backups": [b.as_dict() for b in found], "offsite": [r.as_dict() for r in repos],
                                 "problems": mine}
            problems += [f"{target.label}: {p}" for p in mine]
            if not json:
                _table(target, found)
                _offsite_table(target, repos)
    if json:
        print(jsonlib.dumps(out, indent=2))
    if problems:
        raise ToolError("; ".join(problems), WARNING)


def stale(target: Target, found: list[Backup], repos: list[Repository], now: datetime) -> list[str]:
    """What a monitor must hear about: each series and repository whose newest verified backup is older than
    max_age (or that has none), a repository that cannot be read, one whose last check failed."""
    limit, out = target.system.backup.max_age, []
    if repos and repos[0].skipped:
        out.append(f"{repos[0].skipped} line(s) of {target.state_dir}/offsite.jsonl cannot be read (damaged): "
                   "skipped, with the marks they held (a copy they named may show as unverified)")
    for repo in repos:
        if repo.error:
            out.append(f"{repo.repo} cannot be read: {repo.error}")
        elif repo.last_check and repo.last_check.get("result") != "ok":
            out.append(f"the last check of {repo.repo} ({repo.last_check.get('at')}) failed: "
                       f"{repo.last_check.get('error', '')}")
    if limit is None:
        return out
    newest = {}
    for b in found:
        if b.verified and b.stack not in newest:
            newest[b.stack] = (now - _when(b.created)).total_seconds()
    for repo in repos:
        verified = [c for c in repo.copies if c.verified]
        if not repo.error:
            newest[repo.repo] = (now - verified[0].time).total_seconds() if verified else None
    wanted = [s.name for s in target.system.databases] + (["files"] if target.system.backup.has_files else [])
    for name in wanted + [r.repo for r in repos if not r.error]:
        age = newest.get(name)
        if age is None or age > limit:
            what = f"{age_text(age)} old" if age is not None else "none yet"
            out.append(f"newest verified backup of {name}: {what} (max_age {age_text(limit)})")
    return out


def _when(created: str) -> datetime:
    return datetime.fromisoformat(created.replace("Z", "+00:00"))


def _table(target: Target, found: list[Backup]) -> None:
    table = Table(title=f"{safe(target.label)} backups in {safe(target.backups)}", title_justify="left")
    for col in ("backup", "series", "holds", "size", "age", "taken by", "verified"):
        table.add_column(col)
    now = datetime.now(timezone.utc)
    for b in found:
        table.add_row(safe(b.name), safe(b.stack), safe(b.holds), size(b.bytes),
                      age_text((now - _when(b.created)).total_seconds()),
                      safe(f"{b.taken} {b.release}" if b.taken in ("deploy", "rollback") else b.taken),
                      "[green]yes[/]" if b.verified else "[red]no[/]")
    console.print(table)
    if not found:
        console.print("  no backups yet ('fab backup' takes one)")


def _offsite_table(target: Target, repos: list[Repository]) -> None:
    now = datetime.now(timezone.utc)
    for repo in repos:
        check = repo.last_check
        checked = (f"last check {safe(check['at'])}: {'ok' if check.get('result') == 'ok' else '[red]failed[/]'}"
                   if check else "never checked ('fab backup-check')")
        table = Table(title=f"{safe(target.label)} copies in {safe(repo.repo)} ({checked})", title_justify="left")
        for col in ("snapshot", "age", "size", "files", "verified"):
            table.add_column(col)
        for c in repo.copies:
            table.add_row(c.id[:8], age_text((now - c.time).total_seconds()),
                          size(c.bytes) if c.bytes is not None else "?", str(c.files if c.files is not None else "?"),
                          "[green]yes[/]" if c.verified else "[red]no[/]")
        console.print(table)
        if repo.error:
            console.print(f"  [red]cannot be read[/]: {safe(repo.error)}")
        elif not repo.copies:
            console.print("  no copies yet ('fab backup' sends one)")


def age_text(seconds: float) -> str:
    """An age as a person reads it."""
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
