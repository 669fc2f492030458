"""What every task does around its own work: turn failures into one clear line and a meaningful exit code,
pick the host's systems, say who is acting, name releases, and read a system's state from the host."""
from __future__ import annotations

import functools
import getpass
import os
import secrets
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone

from invoke.exceptions import Exit
from rich.markup import escape

from . import history, plan
from .errors import BAD_INPUT, FAILED, ToolError
from .inventory import Host, System
from .remote import Session, console, err_console, redact


def tool_task(fn):
    """Run a task body; a ToolError becomes its message on stderr and its exit code, and anything unexpected
    a redacted one-line message (the traceback, redacted too, only with FAB_DEBUG=1)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ToolError as e:
            _fail(str(e), e.code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exit:
            raise
        except Exception as e:  # noqa: BLE001 - the last line of defence against leaking a traceback
            if os.environ.get("FAB_DEBUG"):
                sys.stderr.write(redact("".join(traceback.format_exception(e))))
            _fail(escape(redact(f"unexpected {type(e).__name__}: {e}")) + " (FAB_DEBUG=1 shows the traceback)", FAILED)
    return wrapper


def _fail(message: str, code: int):
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise Exit(code=code)


def systems_of(host: Host, name: str | None) -> list[System]:
    """The host's systems, or just ``name`` (which must be one of them)."""
    if not name:
        return list(host.systems)
    chosen = [s for s in host.systems if s.name == name]
    if not chosen:
        raise ToolError(f"host {host.name} runs no system {name!r} (it runs {', '.join(s.name for s in host.systems)})",
                        BAD_INPUT)
    return chosen


def split_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def operator() -> tuple[str, str]:
    """Who acts and from where, for history and audit (FAB_OPERATOR names a CI job or a person)."""
    origin = socket.gethostname()
    return os.environ.get("FAB_OPERATOR") or f"{getpass.getuser()}@{origin}", origin


def new_release_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(2)


@dataclass
class State:
    releases: list
    current: dict
    history_sha: str
    lock: str | None


def read_state(session: Session, host: Host, system: System) -> State:
    """History, current pins and lock of ``system``, read in one round trip; a damaged history is an error."""
    label = f"{host.name}/{system.name}"
    res = session.run(plan.read_state_program(host, system), label, quiet=True)
    source = f"{host.name}:{plan.state_dir(host, system)}/releases.jsonl"
    return State(history.parse("\n".join(res.history), source), history.parse_current(res.current),
                 res.first("history_sha", ""), res.first("lock"))


def carry_out(session: Session | None, host: Host, system: System, intent: plan.Intent, program: str):
    """Run a deploy or rollback program (or, with no session, print it: --dry-run) and report the outcome;
    the program's Result on success."""
    if session is None:
        show_program(host, system, program)
        return None
    label = f"{host.name}/{system.name}"
    console.print(f"[bold]{label}[/]: {intent.action} of [cyan]{intent.tag}[/] (release {intent.release})")
    started = time.monotonic()
    result = session.run(program, label)
    console.print(f"[green]✓ {label}: {intent.tag} is live[/] ({time.monotonic() - started:.1f}s)")
    return result


def show_program(host: Host, system: System, program: str) -> None:
    """--dry-run: the exact program, as the host would receive it on stdin of ``bash -s``."""
    console.print(f"# {host.name} ({host.user}@{host.address}:{host.port}), system {system.name}: "
                  "this program would run as `bash -s`, nothing was sent", markup=False, style="bold", soft_wrap=True)
    console.print(redact(program), markup=False, highlight=False, soft_wrap=True)
