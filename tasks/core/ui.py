"""What the operator sees: the consoles, each remote step as it starts and ends, dry-run programs, result tables.
Nothing here runs anything; values are always printed as text, never as markup."""
from __future__ import annotations

import json
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from .errors import FAILED, ToolError
from .grammar import UNSHOWN, redact

# Control characters (escape sequences above all) and invisible format characters (U+202E) from a host, an
# inventory or another operator's name never reach a terminal: they could rewrite what the operator sees.
CONTROL = re.compile(f"[{UNSHOWN}]")


def printable(text) -> str:
    return CONTROL.sub("?", str(text))


def safe(value) -> str:
    """``value`` as text inside rich markup: printable, and its brackets never read as markup."""
    return escape(printable(value))


def _width(stream) -> int | None:
    """Off a terminal (CI, pipes, cron mail) print full width rather than rich's 80 columns, which would cut
    release ids and digests; COLUMNS still wins. NO_COLOR is honoured by rich itself."""
    return None if stream.isatty() or os.environ.get("COLUMNS") else 4096


# (emoji=False: a value holding ":smile:" is shown as written)
console = Console(highlight=False, emoji=False, width=_width(sys.stdout))
err_console = Console(stderr=True, highlight=False, emoji=False, width=_width(sys.stderr))


class StepDisplay:
    """Shows a remote program's steps (✓/✗ with seconds), its infos and failures, under a label; a quiet
    display shows nothing (read-only programs whose facts the task prints itself)."""

    def __init__(self, label: str, quiet: bool = False):
        self.label, self.quiet = label, quiet
        self.step: str | None = None
        self.started = 0.0

    def step_started(self, text: str, name: str = "") -> None:
        self.step_ended(ok=True)
        self.step, self.started = text, time.monotonic()

    def step_ended(self, ok: bool) -> None:
        if self.step is not None:
            mark = "[green]✓[/]" if ok else "[red]✗[/]"
            self._show(f"  {mark} [bold]{safe(self.label)}[/] {safe(self.step)} "
                       f"[dim]({time.monotonic() - self.started:.1f}s)[/]")
            self.step = None

    def info(self, text: str) -> None:
        self._show(f"    [yellow]{safe(text)}[/]")

    def fail(self, text: str) -> None:
        self.step_ended(ok=False)
        self._show(f"    [red]{safe(text)}[/]")

    def _show(self, markup: str) -> None:
        if not self.quiet:
            console.print(markup, soft_wrap=True)


class EventDisplay:
    """A StepDisplay for a worker thread of a fleet run: each step, info and failure of one host's program
    becomes an event for ``post`` (the main thread shows them)."""

    def __init__(self, host: str, system: str, post):
        self.where, self.post = {"host": host, "system": system}, post
        self.step: str | None = None
        self.started = 0.0

    def step_started(self, text: str, name: str = "") -> None:
        self.step_ended(ok=True)
        self.step, self.text, self.started = name, text, time.monotonic()
        self.post({"event": "step", **self.where, "step": name, "text": text, "state": "started"})

    def step_ended(self, ok: bool) -> None:
        if self.step is not None:
            self.post({"event": "step", **self.where, "step": self.step, "text": self.text,
                       "state": "ok" if ok else "failed", "seconds": round(time.monotonic() - self.started, 2)})
            self.step = None

    def info(self, text: str) -> None:
        self.post({"event": "info", **self.where, "text": text})

    def fail(self, text: str) -> None:
        self.step_ended(ok=False)
        self.post({"event": "info", **self.where, "text": text, "failed": True})


class FleetView:
    """Shows a fleet run's events, from the main thread only: a live line per host (its step and seconds) at
    a terminal, plain prefixed lines elsewhere, or the events themselves as JSON lines (``--json``)."""

    def __init__(self, as_json: bool = False):
        self.json = as_json
        self.rows: dict[str, list] = {}   # host/system -> [state, step, since]
        self.live = None
        if not as_json and console.is_terminal:
            self.live = Live(self._table(), console=console, auto_refresh=False, transient=True)
            self.live.start()

    def show(self, event: dict) -> None:
        if self.json:
            console.file.write(json.dumps(event, separators=(",", ":")) + "\n")
            console.file.flush()
            return
        kind, label = event["event"], f"{event.get('host')}/{event.get('system')}"
        if kind == "plan":
            stages = " then ".join("[" + ", ".join(stage) + "]" for stage in event["stages"])
            self._print(f"[bold]{safe(event['action'])} {safe(event['release'])}[/]: {safe(stages)}")
            for label in (lb for stage in event["stages"] for lb in stage):
                self.rows[label] = ["waiting", "", time.monotonic()]
        elif kind == "step":
            self.rows[label] = [event["state"], event["text"], time.monotonic() - event.get("seconds", 0)]
            if event["state"] != "started":
                mark = "[green]✓[/]" if event["state"] == "ok" else "[red]✗[/]"
                self._print(f"  {mark} [bold]{safe(label)}[/] {safe(event['text'])} [dim]({event['seconds']:.1f}s)[/]")
        elif kind == "info":
            self._print(f"    [bold]{safe(label)}[/] [{'red' if event.get('failed') else 'yellow'}]{safe(event['text'])}[/]")
        elif kind == "host":
            self.rows[label] = [event["result"], "", time.monotonic()]
            style = "green" if event["result"] in ("switched", "reverted", "kept") else "red"
            self._print(f"[{style}]{safe(label)}: {safe(event['result'])}[/] {safe(redact(event['detail']))}")
        self.tick()

    def tick(self) -> None:
        if self.live:
            self.live.update(self._table(), refresh=True)

    def close(self) -> None:
        if self.live:
            self.live.stop()
            self.live = None

    def _print(self, markup: str) -> None:
        (self.live.console if self.live else console).print(markup, soft_wrap=True)

    def _table(self) -> Table:
        table = Table("host/system", "state", "step", "s", box=None)
        for label, (state, step, since) in self.rows.items():
            table.add_row(safe(label), safe(state), safe(step), f"{time.monotonic() - since:.0f}")
        return table


def show_program(label: str, where: str, text: str, shell: str = "bash -s") -> None:
    """--dry-run: the exact program, byte for byte as the host would receive it on stdin of ``shell`` (tabs and
    all: it is written, not rendered). Its values were checked before it was built; a character a terminal must
    not be handed in it is a bug, refused rather than printed."""
    unshown = sorted({f"U+{ord(c):04X}" for c in CONTROL.findall(text) if c != "\t"})
    if unshown:
        raise ToolError(f"the program for {printable(label)} holds characters a terminal must not be shown "
                        f"({', '.join(unshown)}): not printed", FAILED)
    console.file.flush()
    console.file.write(f"# {printable(label)} ({printable(where)}): this program would run as `{shell}` (it was "
                       f"not sent)\n{redact(text)}")
    console.file.flush()


@dataclass
class Outcome:
    """One target's result in a run over several: ok, or failed with a message and an exit code."""
    host: str
    system: str
    ok: bool
    detail: str
    code: int = 0
    warning: bool = False
    result: str = ""    # a fleet run's word for it: switched, reverted, untouched, failed, kept


def outcome_table(title: str, outcomes: list[Outcome]) -> None:
    table = Table("host", "system", "result", "detail", title=title, title_justify="left")
    for o in outcomes:
        result = "[green]ok[/]" if o.ok else "[yellow]WARNING[/]" if o.warning else "[red]FAILED[/]"
        if o.result:
            result = f"[{'green' if o.ok else 'yellow' if o.result in ('reverted', 'untouched') else 'red'}]{o.result}[/]"
        table.add_row(safe(o.host), safe(o.system), result, safe(redact(o.detail)))
    console.print(table)


@contextmanager
def transfer(label: str, size: int):
    """A progress bar for one upload (rich, at a terminal; one line when it ends elsewhere); yields the
    callback SFTP calls with (bytes sent, total)."""
    with Progress("[bold]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=console, transient=not console.is_terminal, disable=not console.is_terminal) as bar:
        task = bar.add_task(printable(label), total=size)
        yield lambda sent, total: bar.update(task, completed=sent)


def size(n: int) -> str:
    """Bytes in the unit a person reads."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
