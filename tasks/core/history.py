"""The release history: an append-only JSON-lines file on the VPS, one line per state change of a release.

A release is one deploy or rollback attempt. Its first line says what was asked (tag, action, who, images as
``tag@digest`` per stack); later lines move it to ``good`` or ``failed``. The running release is the one named
in the state's ``current`` file, written only when a release passes its health gate. Folding the lines here,
on the operator's side, keeps the remote program simple and lets a damaged line be reported with its number
instead of being silently dropped or rewritten.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from . import grammar
from .errors import BAD_INPUT, ToolError

FINAL = ("good", "failed", "reverted", "interrupted")   # the states that end a release (reverted: a fleet run took
# it back; interrupted: its program died on the host, and the run that took its lock over finished its story)


@dataclass
class Release:
    id: str
    tag: str
    action: str
    by: str
    at: str
    state: str
    pins: dict = field(default_factory=dict)   # app -> tag@digest (the record's "images" key)
    origin: str = ""
    finished: str = ""
    config: dict = field(default_factory=dict)  # {"commit", "dirty", "files": {path: sha256}}: what it ran with
    backups: list = field(default_factory=list)  # the backups taken just before it went live (backup: before_deploy)
    binaries: dict = field(default_factory=dict)  # binary stack -> {"unit", "bytes"} (its sha256 is in its pin)
    infra: dict = field(default_factory=dict)  # "stack/service" -> image@digest of the services that pin nothing
    jobs: dict = field(default_factory=dict)   # "stack/job" -> {"result": ok|failed|timeout, "exit", "seconds"}

    @property
    def commit(self) -> str:
        return self.config.get("commit", "")

    def as_dict(self, running: bool = False) -> dict:
        return {"release": self.id, "tag": self.tag, "action": self.action, "state": self.state,
                "started": self.at, "finished": self.finished, "by": self.by, "from": self.origin,
                "images": self.pins, "config": self.config, "backups": self.backups, "binaries": self.binaries,
                "infra": self.infra, "jobs": self.jobs, "running": running}


def parse(text: str, source: str = "releases.jsonl") -> list[Release]:
    """The releases in ``text``, oldest first. A line that is not a release record is an error naming it."""
    releases: dict[str, Release] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = _record(json.loads(line))
            rid, state, at = rec["release"], rec["state"], rec["at"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ToolError(f"the release history {source} is damaged at line {number}; it was left as it is. "
                            "Repair or move that line aside, then run again.", BAD_INPUT) from None
        rel = releases.get(rid)
        if rel is None:
            releases[rid] = Release(rid, rec["tag"], rec["action"], rec["by"], at, state, rec["images"], rec["from"],
                                    at if state in FINAL else "", rec["config"], rec["backups"], rec["binaries"],
                                    rec["infra"], rec["jobs"])
        else:
            rel.state, rel.finished = state, at
            rel.pins, rel.infra, rel.jobs = rec["images"] or rel.pins, rec["infra"] or rel.infra, rec["jobs"] or rel.jobs
    return list(releases.values())


def _record(rec: dict) -> dict:
    """One history record, every field checked with the grammar the tool writes it with (data read back
    from a host is not trusted: a pin that is not tag@digest must never reach a .env)."""
    out = {k: rec.get(k, "") for k in ("release", "state", "at", "tag", "action", "by", "from")}
    if not all(isinstance(v, str) for v in out.values()) or not out["release"] or not out["state"] or not out["at"]:
        raise TypeError
    if not (grammar.LABEL.fullmatch(out["tag"]) and grammar.WORD.fullmatch(out["state"])
            and grammar.RELEASE_ID.fullmatch(out["release"])):
        raise ValueError
    pins = rec.get("images") or {}
    if not isinstance(pins, dict) or not all(isinstance(k, str) and grammar.SAFE_NAME.fullmatch(k) and isinstance(v, str)
                                             and grammar.PIN.fullmatch(v) for k, v in pins.items()):
        raise ValueError
    backups = rec.get("backups") or []
    if not isinstance(backups, list) or not all(isinstance(b, str) and grammar.BACKUP_NAME.fullmatch(b) for b in backups):
        raise ValueError
    binaries = rec.get("binaries") or {}
    if not isinstance(binaries, dict) or not all(
            isinstance(k, str) and isinstance(v, dict) and isinstance(v.get("unit"), str)
            and isinstance(v.get("bytes"), int) for k, v in binaries.items()):
        raise ValueError
    infra = rec.get("infra") or {}
    if not isinstance(infra, dict) or not all(isinstance(k, str) and grammar.INFRA_KEY.fullmatch(k) and isinstance(v, str)
                                              and grammar.INFRA_PIN.fullmatch(v) for k, v in infra.items()):
        raise ValueError
    return {**out, "images": dict(pins), "config": _config(rec.get("config") or {}), "backups": list(backups),
            "binaries": dict(binaries), "infra": dict(infra), "jobs": _jobs(rec.get("jobs") or {})}


def _jobs(jobs: dict) -> dict:
    """A release's run-once jobs: "stack/job" -> its result, exit code and seconds."""
    if not isinstance(jobs, dict) or not all(
            isinstance(k, str) and grammar.JOB_KEY.fullmatch(k) and isinstance(v, dict)
            and v.get("result") in ("ok", "failed", "timeout")
            and all(isinstance(v.get(n), int) and not isinstance(v.get(n), bool) for n in ("exit", "seconds"))
            for k, v in jobs.items()):
        raise ValueError
    return {k: {"result": v["result"], "exit": v["exit"], "seconds": v["seconds"]} for k, v in jobs.items()}


def _config(config: dict) -> dict:
    """A release's configuration record: a commit (or ""), a dirty flag, and file -> sha256."""
    if not isinstance(config, dict):
        raise ValueError
    commit, dirty, files = config.get("commit", ""), config.get("dirty", False), config.get("files", {})
    if not (isinstance(commit, str) and (not commit or grammar.COMMIT.fullmatch(commit)) and isinstance(dirty, bool)
            and isinstance(files, dict) and all(isinstance(k, str) and isinstance(v, str) and grammar.SHA256.fullmatch(v)
                                                for k, v in files.items())):
        raise ValueError
    return {"commit": commit, "dirty": dirty, "files": dict(files)} if config else {}


def previous_good(releases: list[Release], current_id: str | None, running: dict | None = None) -> Release | None:
    """The newest good release whose state differs from what runs now (rollback with no --to): another image
    for an app it recorded, another digest of a service that pins nothing (where both recorded one), or another
    commit of repo/. ``running``: the pins that run (state/current: every
    app's); else the running release's. A release that runs the same (a deploy of one stack that pins nothing,
    a rollback to the same images) is not a step back: going "back" to it would change nothing, and with
    --with-data would restore a dump over data that nothing replaced."""
    now = next((r for r in releases if r.id == current_id), None)
    pins = running if running is not None else (now.pins if now else {})
    for rel in reversed(releases):
        if rel.state != "good" or rel.id == current_id:
            continue
        if now and rel.commit == now.commit and all(pins.get(a) == p for a, p in rel.pins.items()) \
                and all(now.infra.get(k, v) == v for k, v in rel.infra.items()):
            continue
        return rel
    return None


def find_good(releases: list[Release], tag: str) -> Release:
    """The newest good release of ``tag`` (or the release with that id); a clear error listing the good
    releases otherwise."""
    for rel in reversed(releases):
        if tag in (rel.tag, rel.id) and rel.state == "good":
            return rel
    known = list(dict.fromkeys(r.tag for r in reversed(releases) if r.state == "good"))
    if any(r.tag == tag for r in releases):
        why = f"{tag} is in the history but never passed its health gate"
    else:
        why = f"{tag} is not in the release history"
    raise ToolError(f"{why}; good releases: {', '.join(known) or 'none'} (--force deploys any tag the registry has)",
                    BAD_INPUT)


def good_pins(releases: list[Release], name: str) -> list[str]:
    """The pins (tag@sha256) ``name`` (a binary stack) ran with in good releases, the newest first, each once:
    the builds that once passed their gate (never replaced by another build of their tag), in the order pruning
    keeps them."""
    return list(dict.fromkeys(r.pins[name] for r in reversed(releases) if r.state == "good" and name in r.pins))


def snapshot_after(releases: list[Release], rel: Release) -> Release | None:
    """The first release after ``rel`` that took backups before it went live (``backup: before_deploy``):
    their data is the data ``rel`` left (rollback --with-data restores it). None when there is none."""
    later = releases[releases.index(rel) + 1:]
    return next((r for r in later if r.backups), None)
