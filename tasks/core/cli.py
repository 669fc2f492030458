"""What every fab task shares: the task preamble (``@command``), failures turned into one clear line and an
exit code, choosing the targets, opening sessions, naming who acts and each new release."""
from __future__ import annotations

import functools
import getpass
import inspect
import os
import secrets
import socket
import sys
import threading
import time
import traceback
import types
from dataclasses import dataclass, field
from datetime import datetime, timezone

from fabric import task
from invoke.exceptions import Exit

from . import grammar, inventory
from .errors import BAD_INPUT, FAILED, WARNING, ToolError
from .grammar import redact
from .model import Host, Inventory
from .programs.declare import Intent
from .programs.protocol import Program, Result, execute
from .ssh import Session, as_root
from .target import Target
from .ui import console, err_console, safe, show_program

# Help for the options most tasks share; a task's own help for the same option wins.
COMMON_HELP = {"host": "host(s) from hosts.yml: NAME or NAME,NAME (Fabric's -H NAME,NAME selects the same)",
               "group": "the hosts of this group of hosts.yml", "all": "every host in hosts.yml",
               "system": "only this system of the host(s)",
               "dry-run": "print the exact remote program and change nothing"}

# The options of every task that changes several hosts at once (a fleet run).
FLEET_HELP = {"parallel": "with several hosts: at most this many at once (default: every host of a stage, up to 32)",
              "batch": "with several hosts: roll out in batches of N hosts or N% of a stage's hosts, each batch "
                       "healthy before the next starts",
              "no-revert": "with several hosts: when one fails, keep the hosts already switched (default: they get "
                           "the release they ran before)",
              "json": "print the run as JSON lines: plan, each host's steps, its result, the run's result"}
TOKEN_HELP = {"token-env": "this run brings its registry token, read from this environment variable (CI: the "
                           "job's GITHUB_TOKEN); the VPS keeps nothing of it (registry.token: per-deploy asks always)",
              "token-command": "this run brings its registry token, printed by this local command (a password "
                               "manager's CLI); the VPS keeps nothing of it"}


def command(help: dict | None = None, short: dict | None = None, name: str | None = None):
    """The preamble of every fab task: long options only (``-h`` stays help; a mistyped ``--t`` fails loudly)
    but the ``short`` ones a task names (logs' ``-f``), help for each option, and the tool's error handling
    around the body. ``name``: the task's, where its function cannot be called so (``exec``)."""
    def wrap(fn):
        params = [p.replace("_", "-") for p in inspect.signature(fn).parameters]
        helps = {k: v for k, v in COMMON_HELP.items() if k in params} | (help or {})
        made = task(auto_shortflags=False, help=helps, **({"name": name} if name else {}))(tool_task(fn))
        if short:   # (a bound method: the copies Invoke makes of a task get it bound to themselves)
            made.short_flags, made.arg_opts = short, types.MethodType(_arg_opts, made)
        return made
    return wrap


def _arg_opts(made, name, default, taken):
    """Invoke's options of a task's parameter, with the short flag the task names for it."""
    opts = type(made).arg_opts(made, name, default, taken)
    if name in made.short_flags:
        opts["names"] = [*opts["names"], made.short_flags[name]]
    return opts


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
            _fail(f"unexpected {type(e).__name__}: {e} (FAB_DEBUG=1 shows the traceback)", FAILED)
    return wrapper


def _fail(message: str, code: int):
    prefix = "[bold yellow]warning:[/]" if code == WARNING else "[bold red]error:[/]"
    err_console.print(f"{prefix} {safe(redact(message))}", soft_wrap=True)
    raise Exit(code=code)


def split_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def operator() -> tuple[str, str]:
    """Who acts and from where, for history, audit and the lock (FAB_OPERATOR names a CI job or a person).
    Other operators read it in their terminals (status, a refused deploy's lock): it must be printable (no
    control or invisible format character), one line, and short."""
    origin = socket.gethostname()
    who = os.environ.get("FAB_OPERATOR") or f"{getpass.getuser()}@{origin}"
    if not grammar.OPERATOR.fullmatch(who):
        raise ToolError("FAB_OPERATOR must be 1-64 printable characters on one line (e.g. ci/nightly or ana@laptop)",
                        BAD_INPUT)
    return who, origin


def new_release_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(2)


@dataclass
class Selection:
    """The targets a task acts on (every system of the chosen hosts, or one), and one session per host,
    opened when first needed and closed at the end."""
    inventory: Inventory
    targets: list[Target]
    sessions: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def session(self, target: Target) -> Session:
        """The session of the target's host."""
        return self.host_session(target.host)

    def host_session(self, host: Host) -> Session:
        """The host's session (safe from the threads of a parallel run: one connection per host)."""
        with self.lock:
            if host.name not in self.sessions:
                self.sessions[host.name] = Session(host)
            return self.sessions[host.name]

    def swarm_once(self, connect: bool = True) -> None:
        """A swarm system is one system whichever of its managers lists it: keep one target for it, the first of
        the chosen managers whose session opens (in hosts.yml's order), so that it is deployed, rolled back and
        read once, and through another manager when one is down (said as a warning). Without ``connect`` (a
        dry run that looks at no host), the first of them."""
        kept, seen = [], set()
        for target in self.targets:
            name = target.system.name
            if target.system.engine != "swarm":
                kept.append(target)
            elif name not in seen:
                seen.add(name)
                managers = [t for t in self.targets if t.system.name == name]
                kept.append(self._first_answering(managers) if connect else managers[0])
        self.targets = kept

    def _first_answering(self, candidates: list[Target]) -> Target:
        """The first candidate whose host's session opens; the first one when none does (its error is the task's)."""
        for target in candidates:
            try:
                self.session(target)
                return target
            except ToolError as e:
                if len(candidates) > 1:
                    err_console.print(f"[bold yellow]warning:[/] {safe(redact(str(e)))}: trying another manager",
                                      soft_wrap=True)
        return candidates[0]

    def __enter__(self) -> Selection:
        return self

    def __exit__(self, *exc) -> None:
        for session in self.sessions.values():
            session.close()


def select(host: str | None, system: str | None = None, all_hosts: bool = False, group: str | None = None,
           swarm_once: bool = False, connect: bool = True) -> Selection:
    """Load the inventory and choose: --host NAME[,NAME], --group NAME or --all, and optionally --system NAME
    (hosts named one by one must run it; a group's or --all's hosts that do not are left out). With
    ``swarm_once``, a swarm system is one target, through the first of its chosen managers that answers (without
    ``connect``: the first of them)."""
    inv = inventory.load()
    hosts = inv.choose(split_list(host), group, all_hosts)
    if system and (group or all_hosts):
        hosts = [h for h in hosts if any(s.name == system for s in h.systems)]
        if not hosts:
            raise ToolError(f"no host of {'group ' + group if group else 'hosts.yml'} runs system {system!r}",
                            BAD_INPUT)
    sel = Selection(inv, [t for h in hosts for t in h.targets(system)])
    if swarm_once:
        sel.swarm_once(connect)
    return sel


def confirm(question: str) -> None:
    """A yes/no question before a task replaces live data: at a terminal only (elsewhere the task's --yes)."""
    if not sys.stdin.isatty():
        raise ToolError("this replaces live data: add --yes to confirm (there is no terminal to ask)", BAD_INPUT)
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        raise ToolError("not confirmed: nothing was changed", BAD_INPUT)


def print_program(target: Target, program: Program, tail: str = "") -> None:
    """--dry-run: print the exact program ``target`` would receive; nothing is sent."""
    h = target.host
    show_program(target.label, f"{h.user}@{h.address}:{h.port}", program.text + tail, as_root(h, "bash -s"))


def run_release(session: Session | None, target: Target, intent: Intent, program: Program) -> Result | None:
    """Run a deploy, rollback or migration program with its steps shown, and say the outcome; with no
    session (--dry-run) print it instead."""
    if session is None:
        print_program(target, program)
        return None
    console.print(f"[bold]{safe(target.label)}[/]: {intent.action} of [cyan]{safe(intent.tag)}[/] "
                  f"(release {intent.release})")
    started = time.monotonic()
    result = execute(session, program, target.label)
    console.print(f"[green]✓ {safe(target.label)}: {safe(intent.tag)} is live[/] ({time.monotonic() - started:.1f}s)")
    return result
