"""fab prune: the disk back from what deploys leave behind, every rollback target kept by digest."""
from __future__ import annotations

from rich.table import Table

from .core.cli import command, new_release_id, operator, select
from .core.errors import BAD_INPUT, WARNING, ToolError
from .core.programs.declare import Intent
from .core.programs.protocol import execute
from .core.programs.prune import DEFAULT_KEEP, Pruned, freed, held, prune_program, pruned
from .core.target import Target
from .core.ui import console, safe, size


@command({"keep": "the last N good releases of each system stay ready to roll back to (default: the system's "
                  f"prune: keep, else {DEFAULT_KEEP}; 2 at least)",
          "dry-run": "say what would go and the space it holds; nothing is removed or locked"})
def prune(c, host=None, group=None, all=False, system=None, keep=None, dry_run=False):
    """Remove old app images, untagged images, stopped containers of the stacks and the build cache.

    Never an image the running release or one of the last N good releases of any system names (by digest: a
    rollback after a prune works), nor one a container uses. Takes each system's lock (not with --dry-run)."""
    chosen = _keep(keep)
    by, origin = operator()
    failures = []
    with select(host, system, all, group) as sel:
        seen: set[str] = set()
        for target in sel.targets:
            first = target.host.name not in seen
            seen.add(target.host.name)
            n = chosen or target.system.prune or DEFAULT_KEEP
            intent = Intent("prune", new_release_id(), f"keep {n}", by, origin)
            res = execute(sel.session(target), prune_program(target, n, not dry_run, intent, first), target.label,
                          quiet=True)
            rows = pruned(res)
            _show(target, n, rows, freed(res), dry_run)
            failures += [f"{target.label}: {r.name}" for r in rows if r.result == "failed"]
    if failures:
        raise ToolError(f"not removed (see why above): {', '.join(failures)}", WARNING)


def _keep(value) -> int | None:
    if value is None:
        return None
    try:
        n = int(str(value))
    except ValueError:
        n = 0
    if not 2 <= n <= 1000:
        raise ToolError(f"--keep {value}: a number of good releases from 2 to 1000 (the running one and the one a "
                        "plain rollback goes to, at least)", BAD_INPUT)
    return n


def _show(target: Target, keep: int, rows: list[Pruned], measured: int | None, dry_run: bool) -> None:
    console.print(f"[bold]{safe(target.label)}[/]: keeping the last {keep} good releases' images")
    if rows:
        table = Table("what", "name", "size", "result")
        for r in rows:
            outcome = f"kept: {r.why}" if r.result == "kept" else (f"failed: {r.why}" if r.why else r.result)
            table.add_row(r.what, safe(r.name), size(r.bytes), safe(outcome))
        console.print(table)
    if dry_run:
        console.print(f"  would free up to {size(held(rows))} (images share layers: less, when they do)")
    else:
        console.print(f"  freed {size(measured if measured is not None else held(rows))}"
                      + (" (measured under Docker's root)" if measured is not None else ""))
