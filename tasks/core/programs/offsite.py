"""The offsite programs (sh/offsite.sh): send a run's verified backups with the release history to the system's
restic repositories, and show the key that opens them; and the parsers of what they report."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from .. import grammar
from ..target import Target
from .declare import Intent
from .protocol import Program, Result, fields, report, whole


def ready_offsite(prog: Program, target: Target) -> Program:
    """``backup: {offsite: [...]}``: before anything is taken, restic, the key and the repositories' credentials
    made ready, so a run that could not send its backups refuses before it takes them."""
    if target.system.backup.offsite:
        prog.head.update(RESTIC_KEY=target.restic_key)
        prog.step("offsite_ready")
    return prog


def send_offsite(prog: Program, target: Target) -> Program:
    """The run's verified backups, the stacks' .env files and each binary's releases and environment folder (a
    lost server's secrets and binaries come back with its data) and the release history sent to each restic
    repository, then forgotten there by the same retention counts (after ``ready_offsite``)."""
    plan = target.system.backup
    if plan.offsite:
        keep = plan.keep
        prog.head["CARRIED"] = "\n".join(p for s in target.system.stacks
                                         for p in (s.binary.carried if s.binary else (target.env_file(s),)))
        prog.step("offsite_send", keep.last, keep.daily, keep.weekly, keep.monthly, *plan.offsite)
    return prog


def list_offsite(prog: Program, target: Target) -> Program:
    """Read-only: each repository's snapshots of the system and the tool's notes of what it sent and checked."""
    if target.system.backup.offsite:
        prog.head.update(RESTIC_KEY=target.restic_key, SYSTEM=target.system.name)
        prog.step("offsite_list", *target.system.backup.offsite)
    return prog


def check_program(target: Target, subset: str, intent: Intent) -> Program:
    """Lock, then restic check of every repository with ``subset`` of its data read back and decrypted."""
    prog = Program(f"offsite check of {target.label}", {"STATE": target.state_dir, "SYSTEM": target.system.name,
                                                         **intent.head()})
    ready_offsite(prog.step("begin").step("lock_take"), target)
    return prog.step("offsite_check", subset, *target.system.backup.offsite)


def fetch_program(target: Target, repo: str, snapshot: str, source: str, name: str) -> Program:
    """A drill's first half: backup ``name`` (``source`` in the snapshot) fetched from ``snapshot`` of ``repo``
    into a scratch folder; ``drill_program`` adds the drill that reads it there."""
    return Program(f"restore drill of {name} from {repo} on {target.label}", {
        "STATE": target.state_dir, "BACKUPS": target.offsite_drill, "RESTIC_KEY": target.restic_key,
        "SYSTEM": target.system.name}).step("offsite_scratch").step("offsite_fetch", repo, snapshot, source)


def key_program(target: Target, save: bool, sysroot: str = "") -> Program:
    """The system's restic key (made when missing): its path, mode and sha256, and its value only when it is to
    be saved on the operator's machine; the VPS's SSH public key (made when an SFTP repository needs one).
    ``sysroot`` prefixes /root (the fast tier's scratch folder; "" on a host)."""
    sftp = any(repo.startswith("sftp:") for repo in target.system.backup.offsite)
    return Program(f"the restic key of {target.label}", {"RESTIC_KEY": target.restic_key, "SYSTEM": target.system.name,
                                                          "SYSROOT": sysroot}).step(
        "offsite_key_show", "send" if save else "show", "sftp" if sftp else "none")


@report
def sent(result: Result) -> list[dict]:
    """Per offsite repository: ok (the snapshot, bytes added, files, seconds) or failed (restic's words)."""
    out = []
    for d in result.all("offsite"):
        repo, outcome = fields(d, "repo", "result")
        if outcome != "ok":
            out.append({"repo": repo, "result": "failed", "error": d.get("error", "")})
            continue
        summary = json.loads(d["summary"])
        snapshot = summary["snapshot_id"]
        if not isinstance(snapshot, str) or not grammar.SNAPSHOT_ID.fullmatch(snapshot):
            raise ValueError(f"not a restic snapshot id: {str(snapshot)[:70]!r}")
        out.append({"repo": repo, "result": "ok", "snapshot": snapshot, "added": whole(summary["data_added"]),
                    "files": whole(summary["total_files_processed"]), "seconds": float(d["seconds"])})
    return out


@report
def checked(result: Result) -> list[dict]:
    """Per repository a check passed: its seconds (a failed one ends the program with exit 10)."""
    return [{"repo": d["repo"], "result": d["result"], "seconds": float(d["seconds"])}
            for d in result.all("offsite_check")]


@report
def shown_key(result: Result) -> dict:
    """The key's path, mode (octal), sha256 and, when sent, value; the VPS's SSH public key ("" when none).
    A value that is not what offsite_key writes is refused without repeating it."""
    d = result.one("restic_key")
    path, mode, sha256, ssh = fields(d, "path", "mode", "sha256", "ssh_public")
    if not grammar.SHA256.fullmatch(sha256) or not re.fullmatch(r"[0-7]{3,4}", mode):
        raise ValueError("not a key's sha256 and mode")
    out = {"path": path, "mode": mode, "sha256": sha256, "ssh_public": ssh}
    if "value" in d:
        if not isinstance(d["value"], str) or not grammar.RESTIC_KEY.fullmatch(d["value"].strip()):
            raise ValueError("the key the host sent is not a restic key this tool made")
        out["value"] = d["value"].strip() + "\n"
    return out


@dataclass
class Copy:
    """One snapshot of the system in a repository: restic's id and time, with the size and files the tool
    noted when it sent it, and whether restic check passed right after (verified)."""
    id: str
    time: datetime
    bytes: int | None = None
    files: int | None = None
    verified: bool = False
    paths: tuple[str, ...] = ()       # the folders it holds, as they were on the VPS

    def as_dict(self) -> dict:
        return {"id": self.id, "time": self.time.isoformat(), "bytes": self.bytes, "files": self.files,
                "verified": self.verified, "paths": list(self.paths)}

    def holding(self, name: str) -> str | None:
        """The path of backup ``name`` (a folder of the backups) in this snapshot."""
        return next((p for p in self.paths if p.rsplit("/", 1)[-1] == name and "/data/backups/" in p), None)


@dataclass
class Repository:
    """What one repository holds of the system (newest first), the last check of it, or why it cannot be read."""
    repo: str
    copies: list[Copy] = field(default_factory=list)
    last_check: dict | None = None
    error: str = ""
    skipped: int = 0     # lines of offsite.jsonl that could not be read (damaged): their notes are lost

    def as_dict(self) -> dict:
        return {"repo": self.repo, "snapshots": [c.as_dict() for c in self.copies], "last_check": self.last_check,
                "error": self.error}


@report
def listed_offsite(result: Result) -> list[Repository]:
    """Per repository, restic's snapshots joined with the notes of offsite.jsonl (restic 0.14 lists no sizes;
    its summary names the snapshot by its short id)."""
    lines = [_note(d["line"]) for d in result.all("offsite_note")]
    notes = [n for n in lines if n is not None]
    out = []
    for d in result.all("offsite_listed"):
        repo = Repository(fields(d, "repo")[0], error=d.get("error", ""), skipped=len(lines) - len(notes))
        if not repo.error:
            repo.copies = sorted((_copy(s, notes, repo.repo) for s in _snapshots(d.get("snapshots", ""))),
                                 key=lambda c: c.time, reverse=True)
        checks = [n for n in notes if n.get("repo") == repo.repo and n.get("kind") == "check"]
        repo.last_check = ({k: checks[-1].get(k) for k in ("at", "subset", "result", "error") if k in checks[-1]}
                           if checks else None)
        out.append(repo)
    return out


def _note(line: str) -> dict | None:
    """One note of offsite.jsonl; None for a damaged line (a note is the tool's own record of a copy: losing one
    loses a mark, never a copy, so the listing goes on and the monitor says it)."""
    try:
        note = json.loads(line)
    except ValueError:
        return None
    ok = isinstance(note, dict) and isinstance(note.get("repo"), str) and note.get("kind") in ("sent", "check")
    return note if ok else None


def _snapshots(text: str) -> list[dict]:
    shots = json.loads(text) or []
    if not isinstance(shots, list) or not all(isinstance(s, dict) for s in shots):
        raise ValueError("not restic's list of snapshots")
    return shots


def _copy(shot: dict, notes: list[dict], repo: str) -> Copy:
    snap_id = shot.get("id")
    if not isinstance(snap_id, str) or not grammar.SHA256.fullmatch(snap_id):
        raise ValueError(f"not a restic snapshot id: {str(snap_id)[:70]!r}")
    paths = shot.get("paths") or []
    if not isinstance(paths, list) or not all(isinstance(p, str) and re.fullmatch(r"/[^\n\x00]{0,4000}", p) for p in paths):
        raise ValueError("a snapshot's paths are not absolute paths")
    copy = Copy(snap_id, restic_time(shot.get("time")), paths=tuple(paths))
    for note in notes:
        summary = note.get("summary") or {}
        short = summary.get("snapshot_id") if isinstance(summary, dict) else None
        if note["repo"] == repo and note["kind"] == "sent" and isinstance(short, str) and short and snap_id.startswith(short):
            copy.bytes = whole(summary["total_bytes_processed"])
            copy.files = whole(summary["total_files_processed"])
            copy.verified = note.get("check") == "ok"
    return copy


def restic_time(value) -> datetime:
    """restic's time (RFC 3339 with nanoseconds and an offset) as an aware datetime."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", value or "") \
        if isinstance(value, str) else None
    if not m:
        raise ValueError(f"not a restic time: {str(value)[:40]!r}")
    zone = "+00:00" if m[3] == "Z" else m[3]
    return datetime.fromisoformat(f"{m[1]}.{(m[2] or '0')[:6].ljust(6, '0')}{zone}")
