"""fab logs: what the stacks said, without an SSH session: a compose stack's containers or a binary's unit,
on one host or several at once, each line led by host/system/service; -f follows until Ctrl-C."""
from __future__ import annotations

import threading

from .core import grammar
from .core.cli import command, select
from .core.errors import BAD_INPUT, ToolError
from .core.programs.logs import Since, log_line, logs_program
from .core.programs.protocol import execute
from .core.target import Target
from .core.ui import console, safe

MAX_TAIL = 100_000


@command({"stack": "only this stack (default: every stack of the system on that host)",
          "service": "only this compose service of --stack",
          "follow": "keep printing what comes next until Ctrl-C",
          "since": "only lines from this long ago (10m, 2h, 1d) or since a date (2026-12-05, 2026-12-05T14:30, "
                   "the host's time)",
          "tail": "the last N lines of each container or unit before following (default 200)"},
         short={"follow": "f"})
def logs(c, host=None, group=None, all=False, system=None, stack=None, service=None, follow=False, since=None,
         tail="200"):
    """Print what the stacks said: docker compose logs, or a binary's journal; -f follows until Ctrl-C.

    Each line is led by host/system/service; several hosts (--host a,b, --group, --all) are read at once."""
    lines, since_ = _tail(tail), _since(since)
    if service is not None and (not stack or not grammar.SERVICE.fullmatch(service)):
        raise ToolError("--service NAME: a compose service name (letters, digits, _ . -), with --stack", BAD_INPUT)
    with select(host, system, all, group, swarm_once=True) as sel:
        jobs = [(t, t.system.selected([stack] if stack else None)) for t in sel.targets]
        jobs = [(t, stacks) for t, stacks in jobs if stacks]
        if not jobs:
            raise ToolError(f"stack {stack} runs on none of the hosts chosen", BAD_INPUT)
        if service and any(s.binary for _, stacks in jobs for s in stacks):
            raise ToolError(f"--service: stack {stack} is a binary under systemd: its unit has no services",
                            BAD_INPUT)
        printer = _Printer(len(jobs) > 1 or follow)
        runs = [_Reading(sel.session(t), t, logs_program(t, stacks, service or "", lines, since_, follow),
                         printer) for t, stacks in jobs]
        _run_all(runs)


def _tail(value) -> int:
    try:
        lines = int(str(value))
    except ValueError:
        lines = -1
    if not 0 <= lines <= MAX_TAIL:
        raise ToolError(f"--tail {value}: a number of lines from 0 to {MAX_TAIL}", BAD_INPUT)
    return lines


def _since(value: str | None) -> Since:
    """--since for docker and journalctl, or nothing."""
    if value is None:
        return Since()
    if grammar.AGE.fullmatch(value):
        ago = grammar.seconds(value)
        return Since(f"{ago}s", f"-{ago}s")
    if grammar.SINCE_DATE.fullmatch(value):
        return Since(value, value.replace("T", " "))
    raise ToolError(f"--since {value!r}: an age (10m, 2h, 1d) or a date (2026-12-05, 2026-12-05T14:30)", BAD_INPUT)


class _Printer:
    """Prints log lines from several threads, one whole line at a time, led by where they come from."""

    def __init__(self, lead: bool):
        self.lead, self.lock = lead, threading.Lock()

    def show(self, where: str, text: str) -> None:
        line = f"[dim]{safe(where)}[/] {safe(text)}" if self.lead or where else safe(text)
        with self.lock:
            console.print(line, soft_wrap=True)


class _Reading(threading.Thread):
    """One target's logs program, read in a thread of its own (daemon: Ctrl-C does not wait for it)."""

    def __init__(self, session, target: Target, program, printer: _Printer):
        super().__init__(daemon=True)
        self.session, self.target, self.program, self.printer = session, target, program, printer
        self.binaries = {s.name for s in target.system.binaries()}
        self.error: ToolError | None = None

    def run(self) -> None:
        try:
            execute(self.session, self.program, self.target.label, quiet=True, other=self.line)
        except ToolError as e:
            self.error = e

    def line(self, line: str) -> None:
        where, text = log_line(line, self.binaries)
        self.printer.show(f"{self.target.label}/{where}" if where else self.target.label, text)


def _run_all(runs: list[_Reading]) -> None:
    """Every reading at once until each has ended; Ctrl-C ends them (the sessions close, and the hosts end
    their readers within 2 s). The first failure is the task's."""
    for r in runs:
        r.start()
    try:
        while any(r.is_alive() for r in runs):
            for r in runs:
                r.join(0.2)
    except KeyboardInterrupt:
        console.print("[dim]stopped following[/]")
        return
    failed = next((r.error for r in runs if r.error), None)
    if failed:
        raise failed
