"""fab backup, fab restore: backups of a system's PostgreSQL databases and of its files and named
volumes (backup: {paths, volumes}), made, verified and kept on the VPS (in <root>/<system>/data/backups/), and
restored from there: by default a drill into a scratch database or folder, with --live over the live data."""
from __future__ import annotations

import json as jsonlib
import time

from .core import grammar, hooks
from .core.backupplan import FILES
from .core.cli import command, confirm, new_release_id, operator, print_program, select
from .core.errors import BAD_INPUT, ToolError
from .core.model import Stack
from .core.programs.backup import (
    backup_program,
    drill_program,
    drilled,
    files_drilled,
    files_restore_program,
    list_program,
    listed,
    preview_program,
    restore_program,
    retention,
    series,
    taken,
)
from .core.programs.declare import Intent
from .core.programs.offsite import sent
from .core.programs.protocol import Program, execute
from .core.programs.swarm import placed, placed_program
from .core.target import Target
from .core.ui import console, safe, size
from .offsite import offsite_drill


@command({"all": "every host of hosts.yml whose systems have something to back up (one after another)",
          "json": "print the result as JSON (the backups taken, what retention kept and pruned)",
          "dry-run": "print the exact program, then preview what retention would prune (nothing is written); with "
                     "--json only the preview"})
def backup(c, host=None, group=None, all=False, system=None, dry_run=False, json=False):
    """Back up the databases (pg_dump -Fc), then the files and volumes, verified; then prune by retention.

    Each dump is read back whole and every copied file read back and checksummed before the backup counts; old
    backups are pruned by the retention counts only after a verified one was made."""
    out = {}
    with select(host, system, all, group, swarm_once=True) as sel:
        by, origin = operator()
        chosen = with_backups(sel.targets)
        with hooks.around(sel.inventory, "backup", "", chosen, "", skip=dry_run):
            for target, stacks in where_databases(sel, chosen):
                intent = Intent("backup", new_release_id(), "+".join(series(target, stacks)), by, origin)
                out[target.label] = (_preview if dry_run else _take)(sel, target, stacks, intent, json)
    if json:
        print(jsonlib.dumps(out, indent=2))


@command({"from": "the backup to restore, as 'fab backups' names it (e.g. postgres-20261126T020000Z or "
                  "files-20261126T020000Z), or latest (the newest of the one database stack; for a scheduled drill)",
          "live": "restore over the live databases, folders and volumes (a fresh verified backup first; the stacks "
                  "that use them are stopped meanwhile) instead of a drill into a scratch database or folder",
          "yes": "--live without asking (no terminal, e.g. CI)",
          "offsite": "drill from the newest copy off the VPS (backup: {offsite}) that holds the backup, fetched by "
                     "restic into a scratch folder: the copy a disaster would use",
          "snapshot": "with --offsite: that restic snapshot (its id or first 8 characters, as 'fab backups' shows)",
          "json": "print the drill's figures as JSON",
          "dry-run": "print the exact program and change nothing"})
def restore(c, host=None, system=None, from_=None, dry_run=False, json=False, live=False, yes=False, offsite=False,
            snapshot=None):
    """Restore a backup: a drill into a scratch database or folder (nothing live changes), or --live over it.

    A database drill reports tables, rows and time restored; a files drill copies every part out, checks each
    file against its checksum and the counts against the backup's. --live takes a fresh backup first and swaps
    the restored databases in by renames in one transaction, the restored folders by renames."""
    name = from_
    if not name or not (name == "latest" or grammar.BACKUP_NAME.fullmatch(name)):
        raise ToolError("say which backup: --from NAME, as 'fab backups' lists it (e.g. postgres-20261126T020000Z), "
                        "or --from latest", BAD_INPUT)
    if snapshot and not (offsite and isinstance(snapshot, str) and grammar.SNAPSHOT_ID.fullmatch(snapshot)):
        raise ToolError("--snapshot ID (8 to 64 hex characters, as 'fab backups' shows) goes with --offsite", BAD_INPUT)
    if offsite and live:
        raise ToolError("--offsite drills from a copy off the VPS; to bring a lost server back from one: fab recover",
                        BAD_INPUT)
    with select(host, system, swarm_once=True) as sel, \
            hooks.around(sel.inventory, "restore", "", sel.targets, name, skip=dry_run, hooked=False):
        target, stack, name, program = offsite_drill(sel, name, snapshot) if offsite else _chosen(sel, name, live)
        if dry_run:
            print_program(target, program)
            return
        if live and not yes:
            what = "databases" if stack else "folders and volumes"
            confirm(f"Replace the live {what} of {target.label} with backup {name}? (a fresh backup is taken first)")
        started = time.monotonic()
        result = execute(sel.session(target), program, target.label, quiet=json)
        if live:
            console.print(f"[green]✓ {safe(target.label)}: {safe(stack.name if stack else 'files')} restored from {safe(name)}[/] "
                          f"({time.monotonic() - started:.1f}s; what ran before is in backup "
                          f"{safe((result.one('restored') or {}).get('before', '?'))})")
        else:
            _show_drill(name, stack, result, json)


def _preview(sel, target: Target, stacks: list[Stack], intent: Intent, json: bool) -> dict:
    """--dry-run: the program, then what retention would prune (read on the host)."""
    if not json:
        print_program(target, backup_program(target, stacks, intent))
    kept = retention(execute(sel.session(target), preview_program(target, stacks), target.label, quiet=True))
    if not json:
        _show_retention(target, kept, "would")
    return {"backups": [], "retention": _rows(kept)}


def _take(sel, target: Target, stacks: list[Stack], intent: Intent, json: bool) -> dict:
    """A backup of ``target`` taken: what it made, kept, pruned and sent off the VPS."""
    result = execute(sel.session(target), backup_program(target, stacks, intent), target.label, quiet=json)
    made, kept = taken(result), retention(result)
    if not json:
        for b in made:
            console.print(f"[green]✓ {safe(target.label)}: backup {safe(b['name'])}[/] "
                          f"({size(b['bytes'])}, {safe(b['holds'])}, {b['seconds']}s, verified)")
        _show_retention(target, kept, "")
        for r in sent(result):
            console.print(f"[green]✓ {safe(target.label)}: offsite {safe(r['repo'])}[/] snapshot "
                          f"{safe(r['snapshot'])} ({size(r['added'])} new, {r['files']} files, "
                          f"{r['seconds']}s, encrypted)")
    return {"backups": made, "retention": _rows(kept), "offsite": sent(result)}


def _chosen(sel, name: str, live: bool) -> tuple[Target, Stack | None, str, Program]:
    """The local backup ``name`` (latest: the newest of the one database stack), whose system and stack, and the
    program that drills it (or restores it over the live data)."""
    if name == "latest":
        name = _latest(sel, with_backups(sel.targets))
    target, stack = _owner(with_backups(sel.targets), name)
    if target.system.engine == "swarm":
        if live:
            raise ToolError(f"{target.label}: restore --live is not done on a swarm yet (its clients run as "
                            "services on other nodes): drill it, then restore by hand on the database's node", BAD_INPUT)
        ((target, _),) = where_databases(sel, [target], [stack])
    if not live:
        return target, stack, name, drill_program(target, stack, name)
    intent = Intent("restore", new_release_id(), name, *operator())
    return target, stack, name, (restore_program(target, stack, name, intent) if stack
                                 else files_restore_program(target, name, intent))


def _show_drill(name: str, stack: Stack | None, result, json: bool) -> None:
    """A drill's figures: per database (tables, rows), or per part of a files backup (files, bytes)."""
    key, figures = ("databases", drilled(result)) if stack else ("parts", files_drilled(result))
    if json:
        print(jsonlib.dumps({"backup": name, key: figures}, indent=2))
        return
    for f in figures:
        what, after = ((f"{safe(f['database'])}[/] restored {f['tables']} tables, {f['rows']} rows", "scratch database dropped")
                       if stack else (f"{safe(f['part'])}[/] copied out {f['files']} files, {size(f['bytes'])}",
                                      "every checksum matches, scratch folder removed"))
        console.print(f"[green]✓ drill of {safe(name)}: {what} in {f['seconds']:.1f}s ({after})")


def _rows(kept: list[tuple[str, str, str, str]]) -> list[dict]:
    return [dict(zip(("stack", "name", "action", "reason"), k, strict=True)) for k in kept]


def with_backups(targets: list[Target]) -> list[Target]:
    """The targets whose system has something to back up; none is a clear error."""
    chosen = [t for t in targets if t.system.databases or t.system.backup.has_files]
    if not chosen:
        names = ", ".join(t.label for t in targets)
        raise ToolError(f"{names}: no stack has database: in hosts.yml and no backup: {{paths, volumes}} is set, "
                        "so there is nothing to back up (mark the PostgreSQL stack with database: {service: NAME})",
                        BAD_INPUT)
    return chosen


def where_databases(sel, targets: list[Target], stacks: list[Stack] | None = None) -> list[tuple[Target, list[Stack]]]:
    """Where each target's database ``stacks`` (default: all of them) are dumped and their backups kept: on its
    own host, or for a swarm system on the host whose node runs each database's task (asked of the manager)."""
    out = []
    for target in targets:
        mine = target.system.databases if stacks is None else stacks
        if target.system.engine != "swarm" or not mine:
            out.append((target, mine))
            continue
        hosts = placed(execute(sel.session(target), placed_program(target, mine), target.label, quiet=True))
        for name in dict.fromkeys(hosts[s.name] for s in mine):
            out.append((Target(sel.inventory.host(name), target.system), [s for s in mine if hosts[s.name] == name]))
    return out


def _latest(sel, targets: list[Target]) -> str:
    """--from latest: the newest backup of the one database stack of the one system chosen (of its files when
    it has no database)."""
    chosen = [(t, series(t, t.system.databases)[:len(t.system.databases) or 1]) for t in targets]
    if len(chosen) != 1 or len(chosen[0][1]) != 1:
        raise ToolError("--from latest needs one database stack: add --system (or name the backup)", BAD_INPUT)
    target, (name,) = chosen[0]
    target = where_databases(sel, [target])[0][0]   # (a swarm system's: the host its database runs on)
    found = [b for b in listed(execute(sel.session(target), list_program(target), target.label, quiet=True))
             if b.stack == name]
    if not found:
        raise ToolError(f"{target.label}: no backup yet ('fab backup' takes one)", BAD_INPUT)
    return found[0].name


def _owner(targets: list[Target], name: str) -> tuple[Target, Stack | None]:
    """The system and database stack a backup name belongs to (its name starts with the stack's); None for
    the stack: the system's files."""
    found = [(t, t.system.backup_stack(name)) for t in targets
             if t.system.backup_stack(name) or (t.system.backup.has_files and _is_files(name))]
    if len(found) != 1:
        stacks = ", ".join(f"{t.label}:{s}" for t in targets for s in series(t, t.system.databases))
        why = "several systems have it: add --system" if found else "it names none of the backup series"
        raise ToolError(f"backup {name}: {why} ({stacks})", BAD_INPUT)
    return found[0]


def _is_files(name: str) -> bool:
    return name.startswith(FILES + "-") and bool(grammar.BACKUP_STAMP.fullmatch(name[len(FILES) + 1:]))


def _show_retention(target: Target, kept: list[tuple[str, str, str, str]], mood: str) -> None:
    pruned = [n for _, n, action, _ in kept if action == "prune"]
    verb = "would prune" if mood else "pruned"
    console.print(f"  {safe(target.label)}: retention ({safe(target.system.backup.keep)}): {len(kept) - len(pruned)} kept, "
                  f"{verb} {len(pruned)}{': ' + safe(', '.join(pruned)) if pruned else ''}")
    for _, name, action, reason in kept:
        if action == "keep":
            console.print(f"    keep {safe(name)} ({safe(reason)})")
