"""The backup programs (sh/backup.sh, sh/restore.sh): take a verified backup of a system's database stacks and prune by the
retention counts, preview that pruning, list the backups, restore one into a scratch database (a drill) or
over the live ones; and the parsers of what they report."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from .. import grammar
from ..backupplan import FILES
from ..model import Stack
from ..target import Target
from .declare import Intent, add_databases, add_files, add_stacks
from .offsite import ready_offsite, send_offsite
from .protocol import Program, Result, count, fields, report, whole


def _head(target: Target, intent: Intent | None = None) -> dict:
    """Where the backups are; for a program that locks, also the system (named by the lock) and the intent."""
    locking = {"SYSTEM": target.system.name, **intent.head()} if intent else {}
    return {"STATE": target.state_dir, "BACKUPS": target.backups, **locking}


def clients(target: Target, stack: Stack) -> list[Stack]:
    """The stacks configured after a database stack (its clients): stopped while it is restored."""
    stacks = list(target.system.stacks)
    return stacks[stacks.index(stack) + 1:]


def series(target: Target, stacks: list[Stack]) -> list[str]:
    """The backup series a run over ``stacks`` writes: one per database stack, then the system's files."""
    return [s.name for s in stacks] + ([FILES] if target.system.backup.has_files else [])


def backup_program(target: Target, stacks: list[Stack], intent: Intent) -> Program:
    """Lock, a verified backup of each database stack, then of the files and volumes (after the dumps: a file a
    row names was written before the row, so it is in the files backup taken after), then prune each series."""
    prog = Program(f"backup of {target.label}", _head(target, intent))
    prog.step("begin").step("need_docker")
    ready_offsite(prog, target).step("lock_take")
    add_databases(prog, target, stacks)
    for s in stacks:
        prog.step("backup_take", s.name)
    if target.system.backup.has_files:
        add_files(prog, target).step("files_take")
    return send_offsite(_prune(prog, target, series(target, stacks), "prune"), target).step("backup_done")


def before_deploy(prog: Program, target: Target) -> Program:
    """``backup: {before_deploy: true}``: a verified backup of each running database stack once preflight
    passed (nothing has stopped), recorded in the release; then retention."""
    if not target.system.backup.before_deploy:
        return prog
    stacks = target.system.databases
    prog.head["BACKUPS"] = target.backups
    add_databases(prog, target, stacks).step("backups_before_deploy")
    return _prune(prog, target, [s.name for s in stacks], "prune")


def _prune(prog: Program, target: Target, names: list[str], mode: str) -> Program:
    keep = target.system.backup.keep
    for name in names:
        prog.step("prune_backups", name, keep.last, keep.daily, keep.weekly, keep.monthly, mode)
    return prog


def preview_program(target: Target, stacks: list[Stack]) -> Program:
    """Read-only: what ``fab backup`` would keep and prune now (counting the backup it would take)."""
    return _prune(Program(f"retention preview on {target.label}", _head(target)), target, series(target, stacks),
                  "preview")


def list_program(target: Target) -> Program:
    """Read-only: every complete backup of the system (its database stacks' and its files')."""
    return Program(f"backups on {target.label}", _head(target)).step(
        "backups_report", *series(target, target.system.databases))


def drill_program(target: Target, stack: Stack | None, name: str, fetched: Program | None = None) -> Program:
    """Restore backup ``name`` into scratch databases beside the live ones, count, drop: nothing live changes.
    A files backup (no ``stack``): copy it out into a scratch folder, check every file and count, remove it.
    ``fetched``: a program that brought the backup from a copy off the VPS first (its BACKUPS a scratch)."""
    prog = fetched or Program(f"restore drill of {name} on {target.label}", _head(target))
    if stack is None:
        return prog.step("files_drill", name)
    return add_databases(prog, target, [stack]).step("restore_drill", stack.name, name)


def restore_program(target: Target, stack: Stack, name: str, intent: Intent) -> Program:
    """Lock, then backup ``name`` over the live databases of ``stack`` (a fresh backup first, its clients
    stopped meanwhile)."""
    prog = Program(f"restore of {name} on {target.label}", _head(target, intent))
    after = clients(target, stack)
    add_stacks(prog.step("begin").step("need_docker").step("lock_take"), target, after)
    return add_databases(prog, target, [stack]).step("restore_live", stack.name, name, "start",
                                                     *[s.name for s in after])


def restore_before_rollback(prog: Program, target: Target, snapshot: list[tuple[Stack, str]],
                            declared: list[Stack]) -> Program:
    """rollback --with-data: each database stack back to its snapshot before the release's stacks come up
    (its clients, among the ``declared`` stacks, stay stopped for the rollback to bring up)."""
    prog.head["BACKUPS"] = target.backups
    add_databases(prog, target, [stack for stack, _ in snapshot])
    for stack, name in snapshot:
        prog.step("restore_live", stack.name, name, "keep-stopped",
                  *[s.name for s in clients(target, stack) if s in declared])
    return prog


def files_restore_program(target: Target, name: str, intent: Intent) -> Program:
    """Lock, then files backup ``name`` over the live folders and volumes (a fresh files backup first; the
    stacks that mount them stopped meanwhile)."""
    prog = Program(f"restore of {name} on {target.label}", _head(target, intent))
    add_stacks(prog.step("begin").step("need_docker").step("lock_take"), target, list(target.system.stacks))
    return add_files(prog, target).step("files_live", name)


@dataclass(frozen=True)
class Backup:
    """One backup as its manifest describes it, with its size on disk: a database stack's (its databases) or
    the system's files (its parts: part, files, bytes)."""
    name: str
    stack: str                # the series: a database stack, or "files"
    created: str
    databases: tuple[str, ...]
    taken: str                # by which task: backup, or deploy (then before ``release``), restore
    release: str
    verified: str
    bytes: int
    parts: tuple[tuple[str, int, int], ...] = ()

    @property
    def holds(self) -> str:
        """What it holds, in words: its databases or its parts."""
        return " ".join(self.databases or [p for p, _, _ in self.parts])

    def as_dict(self) -> dict:
        return {"name": self.name, "stack": self.stack, "created": self.created, "databases": list(self.databases),
                "parts": [{"part": p, "files": f, "bytes": b} for p, f, b in self.parts],
                "taken": self.taken, "release": self.release, "verified": self.verified, "bytes": self.bytes}


@report
def listed(result: Result) -> list[Backup]:
    """The backups a listing reported, newest first."""
    sizes = {d["name"]: count(d["bytes"]) for d in result.all("size")}
    out = []
    for m in result.all("manifest"):
        name, stack, created, by, release, verified = fields(m, "name", "stack", "created", "taken", "release",
                                                             "verified")
        dbs = m["databases"]
        if not grammar.BACKUP_NAME.fullmatch(name) or not all(isinstance(d, str) for d in dbs):
            raise ValueError(f"a backup manifest names {name!r}")
        datetime.fromisoformat(created.replace("Z", "+00:00"))   # (its age is shown: a time, or a clear error)
        parts = tuple((_part(p["part"]), whole(p["files"]), whole(p["bytes"])) for p in m.get("parts", []))
        out.append(Backup(name, stack, created, tuple(dbs), by, release, verified, sizes.get(name, 0), parts))
    return sorted(out, key=lambda b: b.created, reverse=True)


def _part(value) -> str:
    """A part a files manifest names: as the tool writes them (system/..., host/..., volume/...)."""
    if not isinstance(value, str) or not grammar.FILE_PART.fullmatch(value) or "/../" in f"/{value}/":
        raise ValueError(f"not a part of a files backup: {str(value)[:60]!r}")
    return value


@report
def taken(result: Result) -> list[dict]:
    """The backups a program took: name, stack (the series), bytes, holds (its databases or parts), seconds."""
    keys = ("name", "stack", "bytes", "holds", "seconds")
    out = [dict(zip(keys, fields(d, *keys), strict=True)) for d in result.all("backup")]
    for b in out:
        b["bytes"] = count(b["bytes"])
        if not re.fullmatch(r"[0-9]{1,9}(\.[0-9]{1,3})?", b["seconds"]):
            raise ValueError(f"not a duration: {b['seconds'][:40]!r}")
    return out


@report
def retention(result: Result) -> list[tuple[str, str, str, str]]:
    """(stack, backup, keep|prune, why kept) for every backup a prune or its preview looked at; the backup a
    preview counts but that does not exist yet is named ``(new)``."""
    return [(d["stack"], "(new)" if d.get("new") else d["name"], d["action"], d.get("reason", ""))
            for d in result.all("retention")]


@report
def drilled(result: Result) -> list[dict]:
    """Per database a drill restored: tables, rows and seconds."""
    return [{"database": d["database"], "tables": int(d["tables"]), "rows": int(d["rows"]),
             "seconds": float(d["seconds"])} for d in result.all("drill")]


@report
def files_drilled(result: Result) -> list[dict]:
    """Per part a files drill copied out and checked: files, bytes and seconds."""
    return [{"part": d["part"], "files": count(d["files"]), "bytes": count(d["bytes"]),
             "seconds": float(d["seconds"])} for d in result.all("files_drill")]
