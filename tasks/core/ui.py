"""What the operator sees: the consoles, each remote step as it starts and ends, dry-run programs, result tables.
Nothing here runs anything; values are always printed as text, never as markup."""
from __future__ import annotations

import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from .grammar import redact

# Control characters (escape sequences above all) from a host, an inventory or another operator's name never
# reach a terminal: they could rewrite what the operator sees.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text) -> str:
    return CONTROL.sub("?", str(text))


def safe(value) -> str:
    """``value`` as text inside rich markup: printable, and its brackets never read as markup."""
    return escape(printable(value))


def _width(stream) -> int | None:
    """Off a terminal (CI, pipes, cron mail) print full width rather than rich's 80 columns, which would cut
    release ids and digests; COLUMNS still wins. NO_COLOR is honoured by rich itself."""
    return None if stream.isatty() or os.environ.get("COLUMNS") else 4096


console = Console(highlight=False, width=_width(sys.stdout))
err_console = Console(stderr=True, highlight=False, width=_width(sys.stderr))


class StepDisplay:
    """Shows a remote program's steps (✓/✗ with seconds), its infos and failures, under a label; a quiet
    display shows nothing (read-only programs whose facts the task prints itself)."""

    def __init__(self, label: str, quiet: bool = False):
        self.label, self.quiet = label, quiet
        self.step: str | None = None
        self.started = 0.0

    def step_started(self, text: str) -> None:
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


def show_program(label: str, where: str, text: str) -> None:
    """--dry-run: the exact program, as the host would receive it on stdin of ``bash -s``."""
    console.print(f"# {label} ({where}): this program would run as `bash -s` (it was not sent)",
                  markup=False, style="bold", soft_wrap=True)
    console.print(redact(text), markup=False, highlight=False, soft_wrap=True)


@dataclass
class Outcome:
    """One target's result in a run over several: ok, or failed with a message and an exit code."""
    host: str
    system: str
    ok: bool
    detail: str
    code: int = 0
    warning: bool = False


def outcome_table(title: str, outcomes: list[Outcome]) -> None:
    table = Table("host", "system", "result", "detail", title=title, title_justify="left")
    for o in outcomes:
        result = "[green]ok[/]" if o.ok else "[yellow]WARNING[/]" if o.warning else "[red]FAILED[/]"
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
