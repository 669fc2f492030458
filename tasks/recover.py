"""fab recover: a lost server's systems brought back on another host from their copies off the VPS (backup:
{offsite}): the host made ready (Docker, setup), the newest snapshot's backups, .env files and release
history placed there, the databases and files restored before anything uses them, and the release the lost
server last ran deployed by its recorded digests behind the health gate. RTO and the data's age printed."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from .bootstrap import install
from .core import grammar, inventory
from .core.backupplan import FILES
from .core.cli import Selection, command, new_release_id, operator, run_release
from .core.errors import BACKUP_FAILED, BAD_INPUT, FAILED, ToolError
from .core.grammar import check_token, redact
from .core.model import Host, System
from .core.programs.declare import Intent
from .core.programs.deploy import deploy_program, going_back
from .core.programs.protocol import execute
from .core.programs.recover import Placed, data_program, fetch_program, placed, scratch_program, teardown_program
from .core.programs.setup import setup_program
from .core.programs.state import read_state
from .core.programs.token import rotate_program
from .core.ssh import Session
from .core.target import Target
from .core.ui import console, safe
from .setup import prepare, show
from .token import read_token


@dataclass(frozen=True)
class Ask:
    """What the operator gave, checked: the key of each system, the snapshot, the token; when it started."""
    keys: dict
    snapshot: str | None
    token: str | None
    drill: bool
    started: float = field(default_factory=time.monotonic)


@command({"host": "the host the systems come back on: bare (Docker is installed) or prepared, in hosts.yml",
          "from": "the lost server: its name in hosts.yml (its systems with backup: {offsite} come back)",
          "snapshot": "the restic snapshot to recover (its id or first 8 characters, as 'fab backups' shows; "
                      "default: the system's newest); with --system when the lost server ran several",
          "key": "the file holding the system's restic key, as 'fab backup-key --save' wrote it (default: "
                 "./<system>.restic-key)",
          "token-env": "the registry token for the new host, from this environment variable",
          "token-command": "the registry token from this local command's output (e.g. a password manager's CLI)",
          "token-stdin": "the registry token from standard input",
          "drill": "a rehearsal on a scratch host (one that runs nothing): the whole recovery, its figures, then "
                   "everything it made taken away (stacks, volumes, data, secrets, .env files)"})
def recover(c, host=None, from_=None, system=None, snapshot=None, key=None, token_env=None, token_command=None,
            token_stdin=False, drill=False):
    """Bring a lost server's systems back on the host --host from their copies off the VPS, by digest.

    The new host is made ready as needed (Docker, setup), then each system's newest snapshot (or --snapshot)
    is fetched with the key you kept, its databases and files restored, and the release it last ran deployed
    by its recorded digests behind the health gate. A run that stops says what is left; run it again to go
    on from there. --drill rehearses it on a scratch host and tears down."""
    inv = inventory.load()
    olds = _lost(inv, from_, host, system)
    if snapshot is not None and not (isinstance(snapshot, str) and grammar.SNAPSHOT_ID.fullmatch(snapshot)
                                     and len(olds) == 1):
        raise ToolError("--snapshot ID: 8 to 64 hex characters, as 'fab backups' shows, for one system (add "
                        "--system)", BAD_INPUT)
    if key and len(olds) > 1:
        raise ToolError("--key FILE holds one system's key: add --system", BAD_INPUT)
    token = None
    if token_env or token_command or token_stdin:
        token = check_token(read_token(token_env, token_command, token_stdin))
        redact.secrets.append(token)
    ask = Ask({t.system.name: read_key(Path(key or f"{t.system.name}.restic-key")) for t in olds}, snapshot, token,
              drill)
    new_host = inv.host(host)
    pairs = [(old, Target(_running(new_host, old.system), old.system)) for old in olds]
    with Selection(inv, [new for _, new in pairs]) as sel:
        session = sel.session(pairs[0][1])
        install(session, new_host)
        for old, new in pairs:
            if drill:
                _drill(session, inv.github_api_for(new_host), old, new, ask)
                continue
            _recover(session, inv.github_api_for(new_host), old, new, ask)
            _listing(new, old, any(s.name == old.system.name for s in new_host.systems))


def _drill(session: Session, github_api: str, old: Target, new: Target, ask: Ask) -> None:
    """The recovery on a host proven to be scratch, then its teardown however it ended (both failures said)."""
    execute(session, scratch_program(new), new.label, quiet=True)
    failed = None
    try:
        _recover(session, github_api, old, new, ask)
    except ToolError as e:
        failed = e
    try:
        execute(session, teardown_program(new), new.label)
    except ToolError as e:
        raise ToolError(f"{failed}\n{e}" if failed else str(e), (failed or e).code) from None
    console.print(f"  drill on {safe(new.host.name)}: its stacks, volumes, data, secrets and .env files taken away "
                  "(repo/ and the images pulled stay)")
    if failed:
        raise failed


def _lost(inv, lost: str | None, host: str | None, system: str | None) -> list[Target]:
    """The lost server's systems that have copies off the VPS (or the one --system names)."""
    if not lost or not host:
        raise ToolError("say which server was lost and where it comes back: --from OLD --host NEW", BAD_INPUT)
    old, new = inv.host(lost), inv.host(host)
    if old.name == new.name:
        raise ToolError(f"--from and --host both name {old.name}: recover brings a lost server's systems onto "
                        "another host", BAD_INPUT)
    chosen = [t for t in old.targets(system) if t.system.backup.offsite]
    if not chosen:
        raise ToolError(f"{old.name}: no system it ran has backup: {{offsite: [...]}}, so there is no copy to "
                        "recover from", BAD_INPUT)
    return chosen


def read_key(path: Path) -> str:
    """The operator's copy of a restic key, checked before anything is asked of a host (never printed)."""
    try:
        value = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as e:
        why = getattr(e, "strerror", None) or "not text"
        raise ToolError(f"--key {path}: cannot read it ({why}): the copy 'fab backup-key --save' wrote", BAD_INPUT) \
            from None
    if not grammar.RESTIC_KEY.fullmatch(value):
        raise ToolError(f"--key {path}: it does not hold a restic key this tool made (one line, as "
                        "'fab backup-key --save' wrote it)", BAD_INPUT)
    redact.secrets.append(value)
    return value


def _running(host: Host, system: System) -> Host:
    """``host`` as it runs ``system`` (the lost server's stacks of it), whether hosts.yml lists it there yet."""
    return replace(host, systems=(*(s for s in host.systems if s.name != system.name), system))


def _recover(session: Session, github_api: str, old: Target, new: Target, ask: Ask) -> None:
    """One system: fetch (its own undo), then setup, the data and the release; a failure after the fetch
    says what is on the new host and that the same command goes on from there."""
    intent = Intent("recover", new_release_id(), old.label, *operator())
    got = _fetch(session, old, new, ask.keys[old.system.name], ask.snapshot, intent)
    try:
        _prepare(session, new, ask.token)
        databases = [(s, got.newest(s.name)) for s in new.system.databases]
        missing = [s.name for s, name in databases if not name]
        if missing:
            raise ToolError(f"snapshot {got.snapshot} holds no backup of {', '.join(missing)}", FAILED)
        files = got.newest(FILES) if new.system.backup.has_files else None
        execute(session, data_program(new, intent, databases, files), new.label)
        state = read_state(session, new)
        rel = next((r for r in state.releases if r.id == state.current.release), None)
        if rel is None:
            raise ToolError(f"the history of {old.label} names no release that ran: nothing to deploy", FAILED)
        back, stacks = going_back(state, rel, new, intent.by, intent.origin, intent.release)
        back = replace(back, action="recover")
        run_release(session, new, back, deploy_program(new, stacks, back, github_api, releases=state.releases)
                    .step("recover_done"))
    except ToolError as e:
        if ask.drill:
            raise ToolError(f"{e}\n{new.label}: the drill failed: a recovery from this copy would stop here too "
                            "(what the drill made is taken away)", e.code) from None
        raise ToolError(f"{e}\n{new.label}: the recovery stopped here. On the host: the key, the backups and "
                        f"history of snapshot {got.snapshot} (and what ran so far); fix the cause and run the same "
                        "fab recover again: it goes on from there", e.code) from None
    _figures(new, rel.tag, old, databases, files, time.monotonic() - ask.started, ask.drill)


def _listing(new: Target, old: Target, listed: bool) -> None:
    """hosts.yml after a recovery: the system runs on the new host, no longer on the lost one."""
    console.print(f"  hosts.yml: {safe(new.system.name)} runs on {safe(new.host.name)} now: "
                  + ("" if listed else f"list it in {safe(new.host.name)}'s systems and ")
                  + f"take it off {safe(old.host.name)}'s (or remove {safe(old.host.name)}), for deploys to stop "
                    "reaching the lost server")


def _fetch(session: Session, old: Target, new: Target, key: str, snapshot: str | None, intent: Intent) -> Placed:
    """The snapshot from the first repository that answers (each failure said); none: the last one's error. A
    refusal that no other repository changes (the host, the key) stops at once."""
    failure = None
    for repo in old.system.backup.offsite:
        try:
            return placed(execute(session, fetch_program(new, old, repo, snapshot or "latest", intent).given(key),
                                  new.label))
        except ToolError as e:
            if e.code != BACKUP_FAILED:
                raise
            console.print(f"[yellow]{safe(new.label)}: {safe(repo)} could not give the copy[/]: {safe(str(e))}")
            failure = e
    raise failure


def _prepare(session: Session, new: Target, token: str | None) -> None:
    """Setup with the lost server's .env files in place first; the token proven and put when given; what the
    stacks still lack (a compose file, the token) stops the run here, said."""
    report = prepare(session, new, setup_program(new, recovering=True))
    show(new.label, report)
    if token:
        execute(session, rotate_program(new, Intent("rotate-token", "", "", *operator())).given(token),
                new.label)
        report.missing = [m for m in report.missing if m != new.secrets]
    if report.missing:
        raise ToolError(f"{', '.join(report.missing)} missing: put repo/ in place (or set repo: in hosts.yml) and "
                        "give the registry token (--token-env NAME, --token-command CMD or --token-stdin)", BAD_INPUT)


def _figures(new: Target, tag: str, old: Target, databases, files: str | None, seconds: float, drill: bool) -> None:
    """What it took: RTO (start to healthy) and the data's age (RPO: the newest backup brought back)."""
    times = [t for t in (grammar.backup_time(n) for n in [name for _, name in databases] + [files] if n) if t]
    newest = max(times) if times else None
    age = f"{(datetime.now(timezone.utc) - newest).total_seconds() / 60:.0f} min" if newest else "unknown"
    what = "recovered (drill)" if drill else "recovered"
    console.print(f"[green]✓ {safe(new.label)}: {safe(old.label)} {what}, running {safe(tag)} by its recorded "
                  f"digests[/]: RTO {seconds:.0f}s, data as of {newest:%Y-%m-%d %H:%M UTC} (RPO {age})" if newest else
                  f"[green]✓ {safe(new.label)}: {safe(old.label)} {what}, running {safe(tag)}[/]: RTO {seconds:.0f}s")
