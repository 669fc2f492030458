"""hosts.yml's hooks: commands run by ``sh`` on the operator's machine (or CI), in hosts.yml's folder, around a
deploy, a rollback and a backup, told what the run is about in FAB_* environment variables. A failing
``pre_deploy`` stops the run before anything changes; ``post_deploy`` and ``on_failure`` are reported and never
change the run's result (a good deploy stays good). Then the run's end is notified (``notify``)."""
from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import notify
from .errors import BAD_INPUT, WARNING, ToolError
from .grammar import redact
from .ui import err_console, safe

if TYPE_CHECKING:
    from .model import Inventory
    from .target import Target

LINES = 20   # the last lines of a hook's output shown (redacted)


@dataclass(frozen=True)
class Hooks:
    pre_deploy: str | None = None
    post_deploy: str | None = None
    on_failure: str | None = None
    timeout: int = 60   # seconds each may run before it is stopped (and counts as failed)
    notify: notify.Notify | None = None   # hosts.yml's notify:


@contextmanager
def around(inv: Inventory, action: str, release: str, targets: list[Target], tags: str,
           skip: bool = False, hooked: bool = True) -> Iterator[None]:
    """Run the body between the hooks of hosts.yml (none with ``skip``: a dry run; only the notification
    without ``hooked``: a drill, a token check). A ToolError of the body reaches on_failure (FAB_EXIT its exit
    code, FAB_ERROR its line) and is raised again; a WARNING is a success (the run did what it was asked)."""
    if skip or inv.hooks is None:
        yield
        return
    hooks = inv.hooks if hooked else Hooks(notify=inv.hooks.notify)
    facts = {"FAB_ACTION": action, "FAB_RELEASE": release, "FAB_TAGS": tags, "FAB_INVENTORY": str(inv.path),
             "FAB_HOSTS": ",".join(dict.fromkeys(t.host.name for t in targets)),
             "FAB_SYSTEMS": ",".join(dict.fromkeys(t.system.name for t in targets))}
    failed = _run(hooks, "pre_deploy", facts, inv)
    if failed:
        refused = ToolError(f"hook pre_deploy {failed}: the {action} did not start, nothing was changed", BAD_INPUT)
        notify.send(hooks.notify, {**facts, **ended(refused)})
        raise refused
    try:
        yield
    except ToolError as e:
        _after(hooks, "post_deploy" if e.code == WARNING else "on_failure", {**facts, **ended(e)}, inv)
        raise
    except KeyboardInterrupt:
        _after(hooks, "on_failure", {**facts, **ended(ToolError("interrupted", 130))}, inv)
        raise
    _after(hooks, "post_deploy", {**facts, **ended(None)}, inv)


def ended(error: ToolError | None) -> dict[str, str]:
    """How a run ended, for the hooks after it and the notification: a WARNING is a run that succeeded (its
    line in FAB_ERROR all the same: what needs attention)."""
    if error is None:
        return {"FAB_RESULT": "ok", "FAB_EXIT": "0"}
    line = {"FAB_ERROR": redact(str(error)).splitlines()[0]}
    return {"FAB_RESULT": "ok" if error.code == WARNING else "failed", "FAB_EXIT": str(error.code), **line}


def _after(hooks: Hooks, name: str, facts: dict[str, str], inv: Inventory) -> None:
    """A hook after the run, then the notification: a failure of either is said as a warning, the run's
    result stays."""
    failed = _run(hooks, name, facts, inv)
    if failed:
        err_console.print(f"[bold yellow]warning:[/] hook {name} {safe(failed)} (the {facts['FAB_ACTION']}'s "
                          "result stands)", soft_wrap=True)
    notify.send(hooks.notify, facts)


def _run(hooks: Hooks, name: str, facts: dict[str, str], inv: Inventory) -> str:
    """Run hook ``name`` if hosts.yml has it: its output shown (the last lines, redacted); what went wrong
    ("failed (exit 3)", "timed out after 60 s"), or "" when it succeeded or there is none."""
    command = getattr(hooks, name)
    if not command:
        return ""
    err_console.print(f"[dim]hook {name}: {safe(redact(command))}[/]")
    proc = subprocess.Popen(["sh", "-c", command], cwd=inv.path.parent, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                            env={**os.environ, **facts, "FAB_HOOK": name}, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=hooks.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)   # (its whole group: what it started too)
        out, _ = proc.communicate()
        _show(name, out)
        return f"timed out after {hooks.timeout} s"
    _show(name, out)
    return f"failed (exit {proc.returncode})" if proc.returncode else ""


def _show(name: str, out: str) -> None:
    for line in out.splitlines()[-LINES:]:
        err_console.print(f"  [dim]{name}>[/] {safe(redact(line))}", soft_wrap=True)
