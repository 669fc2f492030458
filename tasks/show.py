"""fab releases and fab status: read-only views of what a host has run and runs now."""
from __future__ import annotations

import json as jsonlib
import time
from datetime import datetime

from fabric import task
from rich.table import Table

from . import history, inventory, plan
from .cli import read_state, systems_of, tool_task
from .remote import Session, console


@task(auto_shortflags=False, help={"host": "host from hosts.yml", "system": "only this system of the host",
                                   "json": "print the history as JSON (newest first) for scripts"})
@tool_task
def releases(c, host=None, system=None, json=False):
    """Show the release history (newest first), marking the one that runs."""
    h = inventory.load().host(host)
    session = Session(h)
    out = {}
    for sysm in systems_of(h, system):
        state = read_state(session, h, sysm)
        running = state.current.get("release")
        rows = [r.as_dict(running=r.id == running) for r in reversed(state.releases)]
        if json:
            out[sysm.name] = rows
            continue
        table = Table(title=f"{h.name}/{sysm.name} releases", title_justify="left")
        for col in ("", "release", "tag", "action", "state", "started", "by", "images"):
            table.add_column(col)
        for r in rows:
            digests = " ".join(sorted({v.split("@")[-1][7:19] for v in r["images"].values()}))
            style = {"good": "green", "failed": "red"}.get(r["state"], "yellow")
            table.add_row("▶" if r["running"] else "", r["release"], r["tag"], r["action"],
                          f"[{style}]{r['state']}[/]", r["started"], r["by"], digests)
        console.print(table)
        if not rows:
            console.print("  no releases recorded yet")
    if json:
        print(jsonlib.dumps(out, indent=2))


@task(auto_shortflags=False, help={"host": "host from hosts.yml", "system": "only this system of the host"})
@tool_task
def status(c, host=None, system=None):
    """Show what runs on a host: containers, running release, health, deploy lock, token file age."""
    h = inventory.load().host(host)
    session = Session(h)
    for sysm in systems_of(h, system):
        label = f"{h.name}/{sysm.name}"
        res = session.run(plan.status_program(h, sysm), label, quiet=True)
        cur = history.parse_current(res.current)
        console.print(f"[bold]{label}[/]: release [cyan]{cur['tag'] or 'none'}[/] ({cur['release'] or 'nothing deployed'})")
        lock = res.first("lock")
        console.print(f"  lock: [yellow]held by {lock}[/]" if lock else "  lock: free")
        secrets = (res.first("secrets") or "missing").split()
        if secrets[0] == "missing":
            console.print(f"  token file: [red]missing[/] ({sysm.secrets})")
        else:
            rotated = res.first("rotated")
            since = datetime.fromisoformat(rotated.replace("Z", "+00:00")).timestamp() if rotated else int(secrets[1])
            what = "rotated" if rotated else "last written"
            console.print(f"  token file: mode {secrets[0]}, {what} {(time.time() - since) / 86400:.0f} days ago")
        table = Table("stack", "container", "state", "health", "image")
        for entry in res.data.get("stack", []):
            name, _, raw = entry.partition(" ")
            for ctr in _containers(raw):
                health = ctr.get("Health") or "-"
                style = "green" if health in ("healthy", "-") and ctr.get("State") == "running" else "red"
                table.add_row(name, ctr.get("Name", "?"), f"[{style}]{ctr.get('State', '?')}[/]", health,
                              ctr.get("Image", "?"))
            if not _containers(raw):
                table.add_row(name, "-", "[yellow]not running[/]", "-", "-")
        console.print(table)


def _containers(raw: str) -> list[dict]:
    """compose ps --format json prints one object per line (v2.21+) or one array (older): accept both."""
    raw = raw.strip()
    if not raw:
        return []
    try:
        data = jsonlib.loads(raw)
        return data if isinstance(data, list) else [data]
    except ValueError:
        return [jsonlib.loads(part) for part in raw.replace("}{", "}\n{").splitlines() if part.strip()]
