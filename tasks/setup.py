"""fab setup: the tool's folders, .env files from their examples, the folders and external networks the stacks'
compose files use; what is left to do."""
from __future__ import annotations

from .core.cli import command, print_program, select
from .core.programs.protocol import Program, execute
from .core.programs.setup import SetupReport, finish_program, setup_program
from .core.ssh import Session
from .core.target import Target
from .core.ui import console, safe


@command({"dry-run": "print the remote program and change nothing"})
def setup(c, host=None, group=None, all=False, system=None, dry_run=False):
    """Create what the system's stacks use (folders, .env from examples, external networks); say what is left."""
    with select(host, system, all, group) as sel:
        for target in sel.targets:
            program = setup_program(target)
            if dry_run:
                print_program(target, program)
                console.print("# then: the folders the stacks bind-mount and the external networks they declare, "
                              "as their compose files say")
                continue
            show(target.label, prepare(sel.session(target), target, program))


def prepare(session: Session, target: Target, program: Program) -> SetupReport:
    """Run setup's ``program``, then make what the stacks' compose files use (folders, external networks)."""
    report = SetupReport()
    report.add(execute(session, program, target.label, quiet=True), target.host.name, target)
    if report.networks or report.folders:
        finish = finish_program(target, report.folders, report.networks)
        report.add(execute(session, finish, target.label, quiet=True), target.host.name)
    return report


def show(label: str, report: SetupReport) -> None:
    """What was created, what was there already, and the operator's remaining to-do list."""
    console.print(f"[bold]{safe(label)}[/]: " + (f"created {len(report.created)} item(s)" if report.created
                                                    else "nothing to do, everything was already in place"))
    for item in report.created:
        console.print(f"  [green]+[/] {safe(item)}")
    if report.existing:
        console.print(f"  [dim]{len(report.existing)} already there[/]")
    for key in report.keys:
        console.print(f"  deploy key (read-only, on the git server): {safe(key)}")
    for item in report.todo:
        console.print(f"  [yellow]to do:[/] {safe(item)}")
