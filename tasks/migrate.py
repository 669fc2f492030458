"""fab migrate-layout: move a live VPS from the old paths onto seed 001's /root hierarchy, with nothing lost."""
from __future__ import annotations

import sys

from .core.cli import command, new_release_id, operator, print_program, select
from .core.errors import BAD_INPUT, ToolError
from .core.programs.declare import Intent
from .core.programs.migrate import Survey, migrate_program, remove_old_program, survey_program
from .core.programs.protocol import execute
from .core.target import Target
from .core.ui import console, safe


@command({"host": "host from hosts.yml (its legacy: block says where the old paths are)",
          "dry-run": "show the plan and the remote program, change nothing", "yes": "do not ask for confirmation",
          "remove-old": "after a completed migration: delete the old copies (repo, letsencrypt, uploads)"})
def migrate_layout(c, host=None, group=None, all=False, system=None, dry_run=False, yes=False, remove_old=False):
    """Move a VPS from the old paths to the /root hierarchy (seed 001 section 3): copy, verify, switch, keep old."""
    with select(host, system, all, group) as sel:
        for target in sel.targets:
            if target.legacy is None:
                raise ToolError(f"hosts.yml has no legacy: block for {target.system.name} on {target.host.name}: "
                                "nothing says where the old paths are", BAD_INPUT)
        for target in sel.targets:
            _migrate(sel.session(target), target, dry_run, yes, remove_old)


def _migrate(session, target: Target, dry_run: bool, yes: bool, remove_old: bool) -> None:
    label = target.label
    survey = Survey.parse(execute(session, survey_program(target), label, quiet=True))
    if survey.migrated:
        console.print(f"[bold]{safe(label)}[/]: already on the new layout, nothing to do")
        if remove_old:
            execute(session, remove_old_program(target), label)
        return
    if remove_old:
        raise ToolError(f"{label}: --remove-old only after a completed migration", BAD_INPUT)
    pins = survey.pins(target)
    _show_plan(target, survey, pins)
    if survey.refusals:
        raise ToolError(f"{label}: refused before changing anything: " + "; ".join(survey.refusals), BAD_INPUT)
    tags = {pin.split("@")[0] for pin in pins.values()}
    intent = Intent("migrate-layout", new_release_id(), tags.pop() if len(tags) == 1 else "migrated", *operator())
    program = migrate_program(target, survey, pins, intent)
    if dry_run:
        print_program(target, program)
        return
    _confirm(yes, label)
    res = execute(session, program, label)
    switch = int((res.one("switch") or {}).get("switch_ms") or 0) / 1000
    console.print(f"[green]✓ {safe(label)}: on the new layout[/]; switch time {switch:.1f}s (first old stack down to "
                  "last new stack healthy: the longest the service can have been down); old copies kept at "
                  f"{safe(', '.join(src for _, src, _ in target.migration_copies()))} "
                  "(fab migrate-layout --remove-old deletes them)")


def _show_plan(target: Target, survey: Survey, pins: dict) -> None:
    """Every copy, every stack that goes down and comes up, the volumes kept, the expected switch time."""
    console.print(f"[bold]{safe(target.label)}[/]: migration plan (seed 001 section 3)")
    for _, src, dst in target.migration_copies():
        console.print(f"  copy + verify  {safe(src)} -> {safe(dst)}   [dim](old copy kept)[/]")
    console.print(f"  [dim]{survey.need / 1e6:.1f} MB to copy, {survey.avail / 1e9:.1f} GB free[/]")
    for p in survey.projects:
        console.print(f"  stop           {safe(p.name)} (from {safe(p.workdir)})")
    for s in target.system.stacks:
        on = [f"{a.name} {pins[a.name]}" if a.name in pins else f"[red]{a.name}: no running image found[/]"
              for a in s.apps]
        console.print(f"  start          {safe(target.project(s))}" + (f" on {safe(', '.join(on))}" if on else ""))
    for v in target.legacy.volumes:
        console.print(f"  keep volume    {safe(v)} (must be the same, untouched)")
    waits = sum(s.wait for s in target.system.stacks)
    console.print(f"  switch time: from the first stop to the last healthy start (seconds usually; at most {waits}s of "
                  "health waits); if the new stacks fail, the old ones are started again")


def _confirm(yes: bool, label: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise ToolError(f"{label}: add --yes to migrate without a terminal (or --dry-run to see the program)", BAD_INPUT)
    if input("Migrate now? The stacks above go down for the switch. Type yes: ").strip() != "yes":
        raise ToolError("not confirmed: nothing was changed", BAD_INPUT)
