"""The thin execution layer: open a checked SSH connection, run a program from ``plan``, show its steps as
they happen, redact secrets from everything shown or kept, and hand back what the program reported.

Host keys: Fabric 3.2 accepts any key (AutoAddPolicy). Here the known_hosts files are loaded and unknown or
changed keys are refused; ``fab trust-host`` is the deliberate way to add one.
"""
from __future__ import annotations

import io
import logging
import os
import re
import socket
import time
from dataclasses import dataclass, field

import paramiko
from fabric import Config, Connection
from fabric.runners import Remote
from rich.console import Console
from rich.markup import escape

from . import plan
from .errors import (BAD_INPUT, BUSY, FAILED, NEEDS_ATTENTION, REMOTE_FAILED, ROLLED_BACK, UNREACHABLE,
                     ToolError)
from .inventory import Host

# paramiko's transport thread logs its own tracebacks through logging's last-resort handler; the tool already
# reports every failure in one clear line, so those stay out of the operator's output.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

# Token shapes GitHub issues (classic, OAuth, app, fine-grained): masked wherever they appear.
TOKEN_SHAPES = re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{20,})")
EXIT_CODES = {  # remote program exit code -> (tool exit code, what it means for the operator)
    plan.R_LOCKED: BUSY, plan.R_CONFLICT: BUSY, plan.R_LOGIN: REMOTE_FAILED, plan.R_PULL: REMOTE_FAILED,
    plan.R_ROLLED_BACK: ROLLED_BACK, plan.R_BROKEN: NEEDS_ATTENTION, plan.R_SECRETS: BAD_INPUT,
}


class Redactor:
    """Masks every known secret value and anything shaped like a GitHub token."""

    def __init__(self, *secrets: str):
        self.secrets = [s for s in secrets if s]

    def __call__(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "***")
        return TOKEN_SHAPES.sub("***", text)


redact = Redactor()


class ChunkedStdinRemote(Remote):
    """Fabric's remote runner, reading an in-memory ``in_stream`` in large chunks. Invoke reads any non-tty
    stream one byte per 10 ms poll, which turns a 14 KB program into minutes of upload."""

    def read_our_stdin(self, input_):
        if isinstance(input_, io.StringIO):
            return input_.read(65536)
        return super().read_our_stdin(input_)


def known_hosts_files(host: Host, conn: Connection | None = None) -> list[str]:
    """Where this host's key may be recorded: the inventory's file, else ssh_config's, else ~/.ssh/known_hosts."""
    if host.known_hosts:
        return [host.known_hosts]
    configured = conn.ssh_config.get("userknownhostsfile") if conn else None
    files = configured.split() if configured else ["~/.ssh/known_hosts"]
    return [os.path.expanduser(f) for f in files] + ["/etc/ssh/ssh_known_hosts"]


def connect(host: Host) -> Connection:
    """An open Connection to ``host`` whose key matched a known_hosts entry; a clear error otherwise."""
    kwargs = {"key_filename": [host.identity]} if host.identity else {}
    config = Config(overrides={"runners": {"remote": ChunkedStdinRemote}})
    conn = Connection(host.address, user=host.user, port=host.port, connect_timeout=15, connect_kwargs=kwargs,
                      config=config)
    conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    keys = conn.client.get_host_keys()
    for path in known_hosts_files(host, conn):
        if os.path.exists(path):
            keys.load(path)
    try:
        conn.open()
    except paramiko.BadHostKeyException as e:
        raise ToolError(f"{host.name}: the host key of {host.address} CHANGED (now {fingerprint(e.key)}). "
                        "This can be an attack; if the host was rebuilt, remove the old entry and run "
                        f"'fab trust-host --host {host.name}'.", UNREACHABLE) from None
    except paramiko.SSHException as e:
        if "not found in known_hosts" in str(e):
            raise ToolError(f"{host.name}: the host key of {host.address} is unknown; check it and run "
                            f"'fab trust-host --host {host.name}' to trust it.", UNREACHABLE) from None
        raise ToolError(f"{host.name}: SSH to {host.user}@{host.address}:{host.port} failed: {e}", UNREACHABLE) from None
    except (OSError, socket.timeout) as e:
        raise ToolError(f"{host.name}: cannot reach {host.address}:{host.port}: {e}", UNREACHABLE) from None
    return conn


def fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


@dataclass
class Result:
    """What a program reported: exit code, @@data values, errors, history text, current file, other output."""
    code: int = 0
    data: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)
    history: list = field(default_factory=list)
    current: list = field(default_factory=list)
    log: list = field(default_factory=list)

    def first(self, key: str, default=None):
        return self.data.get(key, [default])[0]


class Progress(io.TextIOBase):
    """Receives the program's stdout line by line: steps are shown as they start and finish, ``@@`` lines
    fill the Result, everything else is docker's output, kept (redacted) for when something fails."""

    def __init__(self, label: str, result: Result, quiet: bool = False):
        self.label, self.result, self.quiet = label, result, quiet
        self.pending, self.step, self.started, self.in_history = "", None, 0.0, False

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.line(redact(line))
        return len(text)

    def line(self, line: str) -> None:
        r = self.result
        if self.in_history:
            if line == "@@history-end":
                self.in_history = False
            else:
                r.history.append(line)
        elif line == "@@history-begin":
            self.in_history = True
        elif line.startswith("@@step "):
            self.close_step(ok=True)
            self.step, self.started = escape(line[7:].split(" ", 1)[-1]), time.monotonic()
        elif line.startswith("@@data "):
            key, _, value = line[7:].partition(" ")
            r.data.setdefault(key, []).append(value)
        elif line.startswith("@@current "):
            r.current.append(line[10:])
        elif line == "@@ok":
            self.close_step(ok=True)
        elif line.startswith("@@fail "):
            self.close_step(ok=False)
            self.show(f"    [red]{escape(line[7:])}[/]")
        elif line.startswith("@@error "):
            self.close_step(ok=False)
            r.errors.append(line[8:])
        elif line.startswith("@@info "):
            self.show(f"    [yellow]{escape(line[7:])}[/]")
        else:
            r.log.append(line)

    def close_step(self, ok: bool) -> None:
        if self.step is not None:
            mark = "[green]✓[/]" if ok else "[red]✗[/]"
            self.show(f"  {mark} [bold]{self.label}[/] {self.step} [dim]({time.monotonic() - self.started:.1f}s)[/]")
            self.step = None

    def show(self, markup: str) -> None:
        if not self.quiet:
            console.print(markup, markup=True, highlight=False, soft_wrap=True)


class Session:
    """One open connection to one host, running programs and turning their outcome into results or errors."""

    def __init__(self, host: Host):
        self.host = host
        self.conn = connect(host)

    def run(self, program: str, label: str, quiet: bool = False) -> Result:
        """Send ``program`` to ``bash -s`` on the host's stdin and wait for it, showing its steps; the Result
        when it succeeded, otherwise a ToolError with its message and mapped exit code."""
        result = Result()
        out = Progress(label, result, quiet)
        err = io.StringIO()
        try:
            res = self.conn.run("bash -s", in_stream=io.StringIO(program), out_stream=out, err_stream=err,
                                warn=True, hide=False, pty=False)
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise ToolError(f"{self.host.name}: the connection broke while running: {redact(str(e))}", UNREACHABLE) from None
        out.write("\n") if out.pending else None
        result.code = res.exited
        out.close_step(ok=result.code == 0)
        result.log.extend(redact(line) for line in err.getvalue().splitlines())
        return self._checked(result, label)

    @staticmethod
    def _checked(result: Result, label: str) -> Result:
        if result.code == 0:
            return result
        message = escape("; ".join(result.errors) or f"remote program failed with exit code {result.code}")
        tail = escape("\n".join(line for line in result.log[-12:] if line.strip()))
        detail = f"\n[dim]{tail}[/]" if tail and not result.errors else ""
        raise ToolError(f"{label}: {message}{detail}", EXIT_CODES.get(result.code, FAILED))

    def close(self) -> None:
        self.conn.close()
