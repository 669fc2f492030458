"""The offsite programs (sh/offsite.sh): send a run's verified backups with the release history to the system's
restic repositories, and show the key that opens them; and the parsers of what they report."""
from __future__ import annotations

import json
import re

from ..target import Target
from .protocol import Program, Result, fields, report, whole

KEY = re.compile(r"[A-Za-z0-9+/]{16,200}={0,2}")   # what offsite_key writes: base64 of random bytes
SHA256 = re.compile(r"[0-9a-f]{64}")


def ready_offsite(prog: Program, target: Target) -> Program:
    """``backup: {offsite: [...]}``: before anything is taken, restic, the key and the repositories' credentials
    made ready, so a run that could not send its backups refuses before it takes them."""
    if target.system.backup.offsite:
        prog.head.update(RESTIC_KEY=target.restic_key)
        prog.step("offsite_ready")
    return prog


def send_offsite(prog: Program, target: Target) -> Program:
    """The run's verified backups and the release history sent to each restic repository, then forgotten there
    by the same retention counts (after ``ready_offsite``)."""
    plan = target.system.backup
    if plan.offsite:
        keep = plan.keep
        prog.step("offsite_send", keep.last, keep.daily, keep.weekly, keep.monthly, *plan.offsite)
    return prog


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
        if not isinstance(snapshot, str) or not re.fullmatch(r"[0-9a-f]{8,64}", snapshot):
            raise ValueError(f"not a restic snapshot id: {str(snapshot)[:70]!r}")
        out.append({"repo": repo, "result": "ok", "snapshot": snapshot, "added": whole(summary["data_added"]),
                    "files": whole(summary["total_files_processed"]), "seconds": float(d["seconds"])})
    return out


@report
def shown_key(result: Result) -> dict:
    """The key's path, mode (octal), sha256 and, when sent, value; the VPS's SSH public key ("" when none).
    A value that is not what offsite_key writes is refused without repeating it."""
    d = result.one("restic_key")
    path, mode, sha256, ssh = fields(d, "path", "mode", "sha256", "ssh_public")
    if not SHA256.fullmatch(sha256) or not re.fullmatch(r"[0-7]{3,4}", mode):
        raise ValueError("not a key's sha256 and mode")
    out = {"path": path, "mode": mode, "sha256": sha256, "ssh_public": ssh}
    if "value" in d:
        if not isinstance(d["value"], str) or not KEY.fullmatch(d["value"].strip()):
            raise ValueError("the key the host sent is not a restic key this tool made")
        out["value"] = d["value"].strip() + "\n"
    return out
