"""The recover programs (sh/recover.sh): a lost server's system brought onto another host from a copy off the
VPS: the operator's copy of the restic key put in place, the snapshot's backups, .env files and release history
placed under the new host's folders; and the parser of what they placed."""
from __future__ import annotations

from ..target import Target
from .declare import Intent
from .protocol import Program, Result, fields, report


def fetch_program(new: Target, old: Target, repo: str, snapshot: str, intent: Intent) -> Program:
    """Lock on ``new``, the key from stdin, then ``snapshot`` of ``repo`` (taken on ``old``, whose folder the
    snapshot's paths name) placed under ``new``'s folders. Nothing runs yet: the data and the release come after."""
    head = {"STATE": new.state_dir, "BACKUPS": new.backups, "BASE": new.base, "SYSTEM": new.system.name,
            "RESTIC_KEY": new.restic_key, **intent.head()}
    return Program(f"recovery of {old.label} onto {new.label}", head).step("begin").step("lock_take").step(
        "recover_key").step("recover_fetch", repo, snapshot, old.base)


@report
def placed(result: Result) -> dict[str, list[str]]:
    """What the fetch placed on the new host, by kind: backup, env, state (each a path)."""
    out: dict[str, list[str]] = {"backup": [], "env": [], "state": []}
    for d in result.all("recovered"):
        kind, path = fields(d, "kind", "path")
        out[kind].append(path)
    return out
