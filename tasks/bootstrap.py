"""fab bootstrap: a bare host made ready for the tool: Docker Engine, the Compose v2 plugin and the tools its
programs use, then `fab setup` as usual."""
from __future__ import annotations

from .core.cli import command, print_program, select
from .core.programs.bootstrap import bootstrap_program, bootstrapped
from .core.programs.protocol import execute
from .core.ui import console, safe


@command({"dry-run": "print the remote program and change nothing"})
def bootstrap(c, host=None, group=None, all=False, dry_run=False):
    """Make a bare host ready: its OS checked, Docker Engine and the Compose v2 plugin installed and started.

    A host that already has them keeps them (a second run changes nothing). Then run 'fab setup'."""
    with select(host, None, all, group) as sel:
        done = set()
        for target in sel.targets:   # (one program per host, whatever systems it runs)
            if target.host.name in done:
                continue
            done.add(target.host.name)
            program = bootstrap_program(target.host)
            if dry_run:
                print_program(target, program)
                continue
            got = bootstrapped(execute(sel.session(target), program, target.host.name))
            console.print(f"[bold]{safe(target.host.name)}[/] ({safe(got.os)}): Docker {safe(got.engine)}, Compose "
                          f"{safe(got.compose)}; " + (f"tools {safe(got.tools)}, Docker {safe(got.docker)}"
                                                       if got.changed else "nothing to do, everything was in place"))
