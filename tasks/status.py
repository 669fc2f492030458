"""fab status: what runs on a host now: the release, its containers and their health, the lock, the token."""
from __future__ import annotations

import time

from rich.table import Table

from .core.cli import command, select
from .core.programs.protocol import execute
from .core.programs.state import Status, parse_status, status_program
from .core.target import Target
from .core.ui import console, safe


@command()
def status(c, host=None, group=None, all=False, system=None):
    """Show what runs on a host: containers, running release, health, deploy lock, token file age."""
    with select(host, system, all, group, swarm_once=True) as sel:
        for target in sel.targets:
            res = execute(sel.session(target), status_program(target), target.label, quiet=True)
            _show(target.label, target, parse_status(res))

def _show(label: str, target: Target, st: Status) -> None:
    console.print(f"[bold]{safe(label)}[/]: release [cyan]{safe(st.current.tag or 'none')}[/] "
                  f"({safe(st.current.release or 'nothing deployed')})")
    console.print(f"  lock: [{'red' if st.lock.gone else 'yellow'}]{safe(st.lock.describe())}[/]" if st.lock
                  else "  lock: free")
    if not target.system.needs_token:
        console.print("  token file: none needed (the system pins no image)")
    elif not target.keeps_token:
        console.print("  token file: none kept (registry.token: per-deploy: each deploy brings its token)")
    elif st.token_mode is None:
        console.print(f"  token file: [red]missing[/] ({safe(target.secrets)})")
    else:
        since = st.token_rotated or st.token_mtime
        what = "rotated" if st.token_rotated else "last written"
        console.print(f"  token file: mode {st.token_mode}, {what} {(time.time() - since) / 86400:.0f} days ago")
    table = Table("stack", "container", "state", "health", "image")
    for stack in st.stacks:
        for ctr in stack.containers:
            health = ctr.get("Health") or "-"
            style = "green" if health in ("healthy", "-") and ctr.get("State") == "running" else "red"
            table.add_row(safe(stack.name), safe(ctr.get("Name", "?")), f"[{style}]{safe(ctr.get('State', '?'))}[/]",
                          safe(health), safe(ctr.get("Image", "?")))
        if not stack.containers:
            table.add_row(safe(stack.name), "-", "[yellow]not running[/]", "-", "-")
    console.print(table)
    for u in st.units:
        style = "green" if u["state"] == "active" else "red"
        console.print(f"  unit {safe(u['unit'])} ({safe(u['stack'])}): [{style}]{safe(u['state'])} ({safe(u['sub'])})[/]"
                      f"{' since ' + safe(u['since']) if u['since'] else ''}, runs {safe(u['target'] or 'nothing')}")
    scales = {s.name: dict(s.scale) for s in target.system.stacks}
    for stack in st.stacks:
        for service, healthy, wanted in stack.replicas(scales.get(stack.name, {})):
            style = "green" if healthy == wanted else "red"
            console.print(f"  replicas {safe(stack.name)}/{safe(service)}: [{style}]{healthy}/{wanted} healthy[/]")
