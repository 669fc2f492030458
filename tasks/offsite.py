"""The copies off the VPS (backup: {offsite: [...]}) beyond sending them (fab backup does): fab backup-key, the
restic key that encrypts them, made on the VPS and living there (a lost server takes it along, and without it no
copy can be read, so the operator keeps a copy elsewhere); fab backup-check, restic check with a share of the
data read back, for a schedule."""
from __future__ import annotations

import hashlib
import json as jsonlib
from pathlib import Path

from .core.cli import command, new_release_id, operator, select
from .core.errors import BAD_INPUT, ToolError
from .core.grammar import SUBSET, redact
from .core.localfiles import replace_file
from .core.model import Stack
from .core.programs.backup import drill_program
from .core.programs.declare import Intent
from .core.programs.offsite import (
    Copy,
    check_program,
    checked,
    fetch_program,
    key_program,
    list_offsite,
    listed_offsite,
    shown_key,
)
from .core.programs.protocol import Program, execute
from .core.target import Target
from .core.ui import console, safe


@command({"save": "write the key to FILE on this machine (mode 600, never printed); an existing FILE must hold "
                  "the same key (nothing is overwritten). Then keep FILE in a password manager or a safe",
          "json": "print path, mode, sha256 and the VPS's SSH public key as JSON (never the key)"})
def backup_key(c, host=None, system=None, save=None, json=False):
    """Show where the restic key of each system with offsite copies is, its sha256, and how to keep a copy.

    The key is made on the VPS if it is not there yet (before the first offsite copy, so it can be kept first).
    --save FILE copies it to this machine over SSH. For SFTP repositories, the VPS's SSH public key is shown
    (made when root has none): the repository's server must authorise it."""
    out = {}
    with select(host, system) as sel:
        targets = _with_offsite(sel.targets)
        if save and len(targets) != 1:
            raise ToolError("--save writes one system's key: add --system", BAD_INPUT)
        held = _held(Path(save)) if save else None
        for target in targets:
            key = shown_key(execute(sel.session(target), key_program(target, bool(save)), target.label, quiet=True))
            if save:
                redact.secrets.append(key["value"].strip())
                _save(Path(save), key.pop("value"), held)
            out[target.label] = {**key, "repositories": list(target.system.backup.offsite), "saved": save}
            if not json:
                _show(target, key, save)
    if json:
        print(jsonlib.dumps(out, indent=2))


@command({"read_data": "the share of the repository's data read back and decrypted: a percentage (5%) or n/m "
                       "(1/7: a seventh, a different one each run of a weekly rotation); default 5%",
          "all": "every host of hosts.yml whose systems have copies off the VPS",
          "json": "print each repository's result as JSON"})
def backup_check(c, host=None, group=None, all=False, system=None, read_data="5%", json=False):
    """Check every offsite repository with restic check: its structure, and a share of its data read back.

    A missing or truncated pack, a damaged one in the share read, a key that no longer opens it: exit 10
    naming the repository and restic's finding. Recorded on the VPS: fab backups shows the last check."""
    if not isinstance(read_data, str) or not SUBSET.fullmatch(read_data) or (
            "/" in read_data and int(read_data.split("/")[0]) > int(read_data.split("/")[1])):
        raise ToolError(f"--read-data {str(read_data)[:40]!r}: a percentage from 0.1% to 100% or n/m (1/7)", BAD_INPUT)
    out, by = {}, operator()
    with select(host, system, all, group) as sel:
        for target in _with_offsite(sel.targets):
            intent = Intent("backup-check", new_release_id(), "offsite", *by)
            result = execute(sel.session(target), check_program(target, read_data, intent), target.label, quiet=True)
            out[target.label] = checked(result)
            if not json:
                for r in out[target.label]:
                    console.print(f"[green]✓ {safe(target.label)}: {safe(r['repo'])}[/] checked, {safe(read_data)} "
                                  f"of the data read back ({r['seconds']:.1f}s)")
    if json:
        print(jsonlib.dumps(out, indent=2))


def offsite_drill(sel, name: str, snapshot: str | None) -> tuple[Target, Stack | None, str, Program]:
    """fab restore --offsite: the drill of backup ``name`` (or the newest of the one database stack: latest) read
    from the newest copy off the VPS that holds it (or ``snapshot``), in the first repository that answers."""
    targets = _with_offsite(sel.targets)
    if len(targets) != 1:
        raise ToolError("--offsite drills one system's copy: add --system", BAD_INPUT)
    target = targets[0]
    result = execute(sel.session(target), list_offsite(Program(f"offsite copies of {target.label}", {
        "STATE": target.state_dir}), target), target.label, quiet=True)
    for repo in listed_offsite(result):
        for copy in repo.copies:
            source = _backup_in(copy, target, name) if not snapshot or copy.id.startswith(snapshot) else None
            if source:
                found = source.rsplit("/", 1)[-1]
                stack = target.system.backup_stack(found)
                return target, stack, found, drill_program(target, stack, found, fetch_program(
                    target, repo.repo, copy.id, source, found))
    which = f"snapshot {snapshot}" if snapshot else "no copy"
    raise ToolError(f"{target.label}: {which} in {', '.join(target.system.backup.offsite)} holds backup {name} "
                    "('fab backups' lists the copies)", BAD_INPUT)


def _backup_in(copy: Copy, target: Target, name: str) -> str | None:
    """The path of backup ``name`` in ``copy``; for latest, of the one database stack's backup (of the files
    when the system has no database)."""
    if name != "latest":
        return copy.holding(name)
    stacks = target.system.databases
    if len(stacks) > 1:
        raise ToolError("--from latest needs one database stack: name the backup", BAD_INPUT)
    prefix = f"{stacks[0].name if stacks else 'files'}-"
    return next((p for p in copy.paths if p.rsplit("/", 1)[-1].startswith(prefix) and copy.holding(p.rsplit("/", 1)[-1])), None)


def _with_offsite(targets: list[Target]) -> list[Target]:
    chosen = [t for t in targets if t.system.backup.offsite]
    if not chosen:
        raise ToolError(f"{', '.join(t.label for t in targets)}: no system has backup: {{offsite: [...]}} in "
                        "hosts.yml, so there is no restic key", BAD_INPUT)
    return chosen


def _held(path: Path) -> bytes | None:
    """What ``path`` holds now (None: nothing yet); checked before anything is asked of the VPS."""
    if path.is_dir() or not path.parent.is_dir():
        raise ToolError(f"--save {path}: name a file in an existing folder", BAD_INPUT)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ToolError(f"--save {path}: cannot read it ({e.strerror})", BAD_INPUT) from None


def _save(path: Path, value: str, held: bytes | None) -> None:
    """The key written whole under a temporary name (mode 600 from the start) and renamed; a file that holds
    another key is left as it is."""
    data = value.encode()
    if held is not None:
        if held.strip() != data.strip():
            raise ToolError(f"--save {path}: that file holds another key (sha256 {hashlib.sha256(held).hexdigest()[:16]}"
                            "...): nothing was written; name another file", BAD_INPUT)
        return
    try:
        replace_file(path, data, 0o600)
    except OSError as e:
        raise ToolError(f"--save {path}: cannot write it ({e.strerror}): nothing was saved", BAD_INPUT) from None


def _show(target: Target, key: dict, save: str | None) -> None:
    console.print(f"[bold]{safe(target.label)}[/]: restic key {safe(key['path'])} (mode {safe(key['mode'])}, "
                  f"sha256 {safe(key['sha256'])})")
    for repo in target.system.backup.offsite:
        console.print(f"  opens {safe(repo)}")
    if save:
        console.print(f"  [green]✓ saved in {safe(save)}[/] (mode 600): keep it off this machine too, e.g. in a "
                      "password manager; 'sha256sum FILE' must print the sha256 above")
    else:
        console.print(f"  keep a copy off the VPS: fab backup-key --host {safe(target.host.name)} --system "
                      f"{safe(target.system.name)} --save ./{safe(target.system.name)}.restic-key")
    if key["ssh_public"]:
        console.print(f"  the VPS's SSH public key (authorise it on the SFTP repositories' servers): "
                      f"{safe(key['ssh_public'])}")
