"""fab rotate-token and fab token-status: the GHCR read token's lifecycle on each VPS.

The new token comes from a source a scheduler can use (an environment variable, a command such as a password
manager's CLI, standard input) or, at a terminal, a prompt without echo. It is never an argument of any process,
never printed; it travels to each VPS on the SSH channel's stdin, right after the program that proves it.
"""
from __future__ import annotations

import getpass
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

from fabric import task
from rich.markup import escape
from rich.table import Table

from . import inventory, plan, remote
from .cli import operator, show_program, systems_of, tool_task
from .errors import BAD_INPUT, REMOTE_FAILED, TOKEN_WARNING, ToolError
from .inventory import Host
from .remote import Session, console



@task(auto_shortflags=False, help={
    "host": "host from hosts.yml", "all": "every host in hosts.yml, in parallel", "system": "only this system",
    "token-env": "read the new token from this environment variable",
    "token-command": "run this local command and use its output as the token (e.g. a password manager's CLI)",
    "token-stdin": "read the new token from standard input",
    "dry-run": "print the remote program and change nothing (the token is not read)"})
@tool_task
def rotate_token(c, host=None, all=False, system=None, token_env=None, token_command=None, token_stdin=False,
                 dry_run=False):
    """Put a new GHCR token on the VPS: proven by a real docker login before it replaces the old one."""
    hosts = _hosts(host, all)
    targets = [(h, s) for h in hosts for s in systems_of(h, system)]
    by, origin = operator()
    intent = plan.Intent("rotate-token", "", "", by, origin)
    if dry_run:
        for h, s in targets:
            show_program(h, s, plan.rotate_program(h, s, intent) + "<the new token, one line>\n")
        return
    token = plan.check_token(_read_token(token_env, token_command, token_stdin))
    remote.redact.secrets.append(token)

    def rotate(h: Host, s) -> str:
        session = Session(h)
        try:
            label = f"{h.name}/{s.name}"
            program = plan.rotate_program(h, s, intent) + token + "\n"
            session.run(program, label, quiet=len(targets) > 1)
            return "token replaced and proven"
        finally:
            session.close()

    _report("rotate-token", _each(targets, rotate))


@task(auto_shortflags=False, help={
    "host": "host from hosts.yml", "all": "every host in hosts.yml, in parallel", "system": "only this system",
    "warn-days": "warn when GitHub says the token expires within this many days (default 14)"})
@tool_task
def token_status(c, host=None, all=False, system=None, warn_days=14):
    """Check each token: file and mode, age, a live login, and GitHub's expiry date and scopes."""
    inv = inventory.load()
    hosts = _hosts(host, all, inv)
    targets = [(h, s) for h in hosts for s in systems_of(h, system)]

    def check(h: Host, s) -> str:
        session = Session(h)
        try:
            label = f"{h.name}/{s.name}"
            program = plan.token_check_program(h, s, inv.github_api or plan.DEFAULT_GITHUB_API)
            res = session.run(program, label, quiet=True)
            return describe(res.data, int(warn_days))
        finally:
            session.close()

    _report("token-status", _each(targets, check))


def describe(data: dict, warn_days: int, now: datetime | None = None) -> str:
    """One line on a token from what the VPS reported; raises ToolError for a problem or a warning."""
    now = now or datetime.now(timezone.utc)
    first = {k: v[0] for k, v in data.items()}
    file = first.get("file", "missing").split()
    if file[0] == "missing":
        raise ToolError("token file missing", BAD_INPUT)
    mode, mtime, dir_mode = file
    if mode[-2:] != "00" or dir_mode[-2:] != "00":
        raise ToolError(f"token file mode {mode} (folder {dir_mode}) is open to others", BAD_INPUT)
    since = first.get("rotated")
    written = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else \
        datetime.fromtimestamp(int(mtime), timezone.utc)
    parts = [f"mode {mode}", f"{(now - written).days} days old ({'rotated' if since else 'file written'} {written:%Y-%m-%d})"]
    login = first.get("login", "")
    if login != "ok":
        raise ToolError(f"login fails now: {login.removeprefix('failed ') or 'no token line'}", REMOTE_FAILED)
    parts.append("login ok")
    facts, warnings = api_findings(first, warn_days, now)
    parts += facts
    if warnings:
        raise ToolError("; ".join(parts) + " — WARNING: " + "; ".join(warnings), TOKEN_WARNING)
    return "; ".join(parts)


def api_findings(first: dict, warn_days: int, now: datetime) -> tuple[list[str], list[str]]:
    """What GitHub's response headers say of the token (expiry, scopes), and what of that deserves a warning."""
    if "api_status" not in first:
        return ["GitHub API not reachable: expiry unknown"], []
    facts, warnings = [], []
    expiry = first.get("api_expiry")
    if expiry:
        when = datetime.strptime(expiry.replace(" UTC", "").strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
        days = (when - now).days
        facts.append(f"expires {when:%Y-%m-%d} (in {days} days)")
        if days <= warn_days:
            warnings.append(f"expires in {days} days")
    else:
        facts.append("no expiry")
    scopes = [x.strip() for x in first.get("api_scopes", "").split(",") if x.strip()]
    if "read:packages" not in scopes:
        warnings.append(f"scopes {', '.join(scopes) or 'none'} lack read:packages")
    return facts, warnings


def warn_after_deploy(result, label: str, warn_days: int = 14) -> None:
    """deploy's version of token-status's warning, from the probe that ran during the deploy."""
    first = {k: v[0] for k, v in result.data.items()}
    if "api_status" in first:
        facts, warnings = api_findings(first, warn_days, datetime.now(timezone.utc))
        if warnings:
            console.print(f"[yellow]⚠ {label}: the GHCR token {'; '.join(warnings)} ({'; '.join(facts)}): "
                          "run fab rotate-token[/]")


def _hosts(name, all_hosts, inv=None) -> list[Host]:
    inv = inv or inventory.load()
    if all_hosts and name:
        raise ToolError("give either --host or --all, not both", BAD_INPUT)
    return list(inv.hosts.values()) if all_hosts else [inv.host(name)]


def _read_token(env_name, command, stdin) -> str:
    """The new token from exactly one source; a prompt without echo only at a terminal."""
    chosen = [x for x in (env_name, command, stdin) if x]
    if len(chosen) > 1:
        raise ToolError("give one token source: --token-env, --token-command or --token-stdin", BAD_INPUT)
    if env_name:
        if not os.environ.get(env_name):
            raise ToolError(f"environment variable {env_name} is not set or empty", BAD_INPUT)
        return os.environ[env_name].strip()
    if command:
        proc = subprocess.run(command, shell=True, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ToolError(f"the token command failed with exit code {proc.returncode}", BAD_INPUT)
        return proc.stdout.strip()
    if stdin:
        return sys.stdin.readline().strip()
    if sys.stdin.isatty():
        return getpass.getpass("New GHCR token (not echoed): ").strip()
    raise ToolError("no token source: use --token-env VAR, --token-command CMD or --token-stdin", BAD_INPUT)


@dataclass
class Outcome:
    host: str
    system: str
    ok: bool
    detail: str
    code: int = 0


def _each(targets, work) -> list[Outcome]:
    """``work(host, system)`` for every target, in parallel; a failing host does not stop the others."""
    def one(target):
        h, s = target
        try:
            return Outcome(h.name, s.name, True, work(h, s))
        except ToolError as e:
            return Outcome(h.name, s.name, False, str(e), e.code)
        except Exception as e:  # noqa: BLE001 - one host's surprise must not hide the others' results
            return Outcome(h.name, s.name, False, remote.redact(f"unexpected {type(e).__name__}: {e}"), 1)
    with ThreadPoolExecutor(max_workers=min(16, len(targets)) or 1) as pool:
        return list(pool.map(one, targets))


def _report(what: str, outcomes: list[Outcome]) -> None:
    """A per-host table; exit non-zero (the worst code) if any host failed or warned."""
    table = Table("host", "system", "result", "detail", title=what, title_justify="left")
    for o in outcomes:
        table.add_row(o.host, o.system, "[green]ok[/]" if o.ok else "[red]FAILED[/]" if o.code != TOKEN_WARNING
                      else "[yellow]WARNING[/]", escape(remote.redact(o.detail)))
    console.print(table)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        errors = [o.code for o in failed if o.code != TOKEN_WARNING]
        code = max(errors) if errors else TOKEN_WARNING
        raise ToolError(f"{len(failed)} of {len(outcomes)} failed or warned: "
                        + ", ".join(f"{o.host}/{o.system}" for o in failed), code)
