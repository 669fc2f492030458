"""fab backup, fab backups, fab restore: PostgreSQL backups of a system's database stacks, made, verified and
kept on the VPS (in <root>/<system>/data/backups/), and restored from there: by default a drill into a scratch
database, with --live over the live one."""
from __future__ import annotations

import json as jsonlib
import time
from datetime import datetime, timezone

from rich.table import Table

from .core import grammar
from .core.cli import command, confirm, new_release_id, operator, print_program, select
from .core.errors import BAD_INPUT, ToolError
from .core.model import Stack
from .core.programs.backup import (
    backup_program,
    drill_program,
    drilled,
    list_program,
    listed,
    preview_program,
    restore_program,
    retention,
    taken,
)
from .core.programs.declare import Intent
from .core.programs.protocol import execute
from .core.target import Target
from .core.ui import console, safe


@command({"all": "every host of hosts.yml whose systems have a database stack (one after another)",
          "json": "print the result as JSON (the backups taken, what retention kept and pruned)",
          "dry-run": "print the exact program, then preview what retention would prune (nothing is written); with "
                     "--json only the preview"})
def backup(c, host=None, group=None, all=False, system=None, dry_run=False, json=False):
    """Back up every database stack on the VPS (pg_dump -Fc and roles), verified, then prune by retention.

    Each dump is read back whole and checksummed before the backup counts; old backups are pruned by the
    retention counts only after a verified one was made."""
    out = {}
    with select(host, system, all, group) as sel:
        targets = _with_databases(sel.targets)
        by, origin = operator()
        for target in targets:
            stacks = target.system.databases
            intent = Intent("backup", new_release_id(), "+".join(s.name for s in stacks), by, origin)
            if dry_run:
                if not json:
                    print_program(target, backup_program(target, stacks, intent))
                kept = retention(execute(sel.session(target), preview_program(target, stacks), target.label,
                                         quiet=True))
                out[target.label] = {"backups": [], "retention": _rows(kept)}
                if not json:
                    _show_retention(target, kept, "would")
                continue
            result = execute(sel.session(target), backup_program(target, stacks, intent), target.label, quiet=json)
            made, kept = taken(result), retention(result)
            out[target.label] = {"backups": made, "retention": _rows(kept)}
            if not json:
                for b in made:
                    console.print(f"[green]✓ {safe(target.label)}: backup {safe(b['name'])}[/] "
                                  f"({_size(b['bytes'])}, {safe(b['databases'])}, {b['seconds']}s, verified)")
                _show_retention(target, kept, "")
    if json:
        print(jsonlib.dumps(out, indent=2))


@command({"all": "every host of hosts.yml whose systems have a database stack",
          "json": "print the list as JSON for scripts"})
def backups(c, host=None, group=None, all=False, system=None, json=False):
    """List the backups kept on the VPS (newest first): size, age, databases, the release they were taken for."""
    out = {}
    with select(host, system, all, group) as sel:
        for target in _with_databases(sel.targets):
            found = listed(execute(sel.session(target), list_program(target), target.label, quiet=True))
            out[target.label] = [b.as_dict() for b in found]
            if not json:
                _table(target, found)
    if json:
        print(jsonlib.dumps(out, indent=2))


@command({"from": "the backup to restore, as 'fab backups' names it (e.g. postgres-20261126T020000Z), or latest "
                  "(the newest; for a scheduled drill)",
          "live": "restore over the live databases (a fresh verified backup first; the stacks after the database "
                  "are stopped meanwhile) instead of a drill into a scratch database",
          "yes": "--live without asking (no terminal, e.g. CI)",
          "json": "print the drill's figures as JSON",
          "dry-run": "print the exact program and change nothing"})
def restore(c, host=None, system=None, from_=None, dry_run=False, json=False, live=False, yes=False):
    """Restore a backup: a drill into a scratch database (nothing live changes), or --live over the live ones.

    The drill reports tables, rows and time restored; --live takes a fresh backup first and swaps the restored
    databases in by renames, in one transaction."""
    name = from_
    if not name or not (name == "latest" or grammar.BACKUP_NAME.fullmatch(name)):
        raise ToolError("say which backup: --from NAME, as 'fab backups' lists it (e.g. postgres-20261126T020000Z), "
                        "or --from latest", BAD_INPUT)
    with select(host, system) as sel:
        if name == "latest":
            name = _latest(sel, _with_databases(sel.targets))
        target, stack = _owner(_with_databases(sel.targets), name)
        if live:
            program = restore_program(target, stack, name, Intent("restore", new_release_id(), name, *operator()))
        else:
            program = drill_program(target, stack, name)
        if dry_run:
            print_program(target, program)
            return
        if live and not yes:
            confirm(f"Replace the live databases of {target.label} with backup {name}? (a fresh backup is taken "
                    "first)")
        started = time.monotonic()
        result = execute(sel.session(target), program, target.label, quiet=json)
        if live:
            console.print(f"[green]✓ {safe(target.label)}: {safe(stack.name)} restored from {safe(name)}[/] "
                          f"({time.monotonic() - started:.1f}s; what ran before is in backup "
                          f"{safe((result.one('restored') or {}).get('before', '?'))})")
            return
        figures = drilled(result)
        if json:
            print(jsonlib.dumps({"backup": name, "databases": figures}, indent=2))
            return
        for f in figures:
            console.print(f"[green]✓ drill of {safe(name)}: {safe(f['database'])}[/] restored "
                          f"{f['tables']} tables, {f['rows']} rows in {f['seconds']:.1f}s (scratch database dropped)")


def _rows(kept: list[tuple[str, str, str, str]]) -> list[dict]:
    return [dict(zip(("stack", "name", "action", "reason"), k, strict=True)) for k in kept]


def _with_databases(targets: list[Target]) -> list[Target]:
    """The targets whose system has a database stack; none is a clear error (nothing to back up)."""
    chosen = [t for t in targets if t.system.databases]
    if not chosen:
        names = ", ".join(t.label for t in targets)
        raise ToolError(f"{names}: no stack has database: in hosts.yml, so there is nothing to back up "
                        "(mark the PostgreSQL stack with database: {service: NAME})", BAD_INPUT)
    return chosen


def _latest(sel, targets: list[Target]) -> str:
    """--from latest: the newest backup of the one system with a database stack that was chosen."""
    if len(targets) != 1 or len(targets[0].system.databases) != 1:
        raise ToolError("--from latest needs one database stack: add --system (or name the backup)", BAD_INPUT)
    found = listed(execute(sel.session(targets[0]), list_program(targets[0]), targets[0].label, quiet=True))
    if not found:
        raise ToolError(f"{targets[0].label}: no backup yet ('fab backup' takes one)", BAD_INPUT)
    return found[0].name


def _owner(targets: list[Target], name: str) -> tuple[Target, Stack]:
    """The database stack a backup name belongs to (its name starts with the stack's)."""
    found = [(t, t.system.backup_stack(name)) for t in targets if t.system.backup_stack(name)]
    if len(found) != 1:
        stacks = ", ".join(f"{t.label}:{s.name}" for t in targets for s in t.system.databases)
        why = "several systems have it: add --system" if found else "it names none of the database stacks"
        raise ToolError(f"backup {name}: {why} ({stacks})", BAD_INPUT)
    return found[0]


def _show_retention(target: Target, kept: list[tuple[str, str, str, str]], mood: str) -> None:
    pruned = [n for _, n, action, _ in kept if action == "prune"]
    verb = "would prune" if mood else "pruned"
    console.print(f"  {safe(target.label)}: retention ({safe(target.system.keep)}): {len(kept) - len(pruned)} kept, "
                  f"{verb} {len(pruned)}{': ' + safe(', '.join(pruned)) if pruned else ''}")
    for _, name, action, reason in kept:
        if action == "keep":
            console.print(f"    keep {safe(name)} ({safe(reason)})")


def _table(target: Target, found) -> None:
    table = Table(title=f"{safe(target.label)} backups in {safe(target.backups)}", title_justify="left")
    for col in ("backup", "stack", "databases", "size", "age", "taken by", "verified"):
        table.add_column(col)
    now = datetime.now(timezone.utc)
    for b in found:
        age = now - datetime.fromisoformat(b.created.replace("Z", "+00:00"))
        table.add_row(safe(b.name), safe(b.stack), safe(" ".join(b.databases)), _size(b.bytes), _age(age.total_seconds()),
                      safe(f"{b.taken} {b.release}" if b.taken in ("deploy", "rollback") else b.taken),
                      "[green]yes[/]" if b.verified else "[red]no[/]")
    console.print(table)
    if not found:
        console.print("  no backups yet ('fab backup' takes one)")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
