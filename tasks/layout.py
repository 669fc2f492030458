"""fab setup: seed 001's /root hierarchy on a host, idempotently, with what the operator must still do."""
from __future__ import annotations

from fabric import task
from rich.markup import escape

from . import inventory, layout_plan
from .cli import show_program, systems_of, tool_task
from .remote import Session, console


@task(auto_shortflags=False, help={"host": "host from hosts.yml", "system": "only this system of the host",
                                   "dry-run": "print the remote program and change nothing"})
@tool_task
def setup(c, host=None, system=None, dry_run=False):
    """Create the /root hierarchy, .env files from their examples and the external networks; say what is left."""
    h = inventory.load().host(host)
    systems = systems_of(h, system)
    session = None if dry_run else Session(h)
    for sysm in systems:
        program = layout_plan.setup_program(h, sysm)
        if session is None:
            show_program(h, sysm, program)
            console.print("# then: docker network create for each external network the compose files declare")
            continue
        label = f"{h.name}/{sysm.name}"
        data = session.check(session.run(program, label, quiet=True), label).data
        networks = layout_plan.external_networks(data.get("compose", []))
        if networks:
            more = session.check(session.run(layout_plan.networks_program(networks), label, quiet=True), label).data
            for key, values in more.items():
                data.setdefault(key, []).extend(values)
        _report(label, h, data)


def _report(label: str, host, data: dict) -> None:
    """What was created, what was there already, and the operator's remaining to-do list."""
    created = data.get("created", []) + [f"{v} (mode fixed)" for v in data.get("fixed", [])]
    console.print(f"[bold]{label}[/]: " + (f"created {len(created)} item(s)" if created
                                            else "nothing to do, everything was already in place"))
    for item in created:
        console.print(f"  [green]+[/] {escape(item)}")
    if data.get("exists"):
        console.print(f"  [dim]{len(data['exists'])} already there[/]")
    todo = []
    for entry in data.get("missing-compose", []):
        stack, _, path = entry.partition(" ")
        todo.append(f"stack {stack}: {path} is missing (is the repo cloned into repo/?)")
    by_file: dict[str, list[str]] = {}
    for entry in data.get("placeholder", []):
        path, _, key = entry.rpartition(" ")
        by_file.setdefault(path, []).append(key)
    todo += [f"fill in {path}: {', '.join(keys)} still hold placeholder values" for path, keys in by_file.items()]
    token, _, path = (data.get("token") or ["missing ?"])[0].partition(" ")
    if token == "missing":
        todo.append(f"create the token file {path}: fab rotate-token --host {host.name} "
                    "(or by hand on the VPS: 'export GITHUB_TOKEN=ghp_...' and chmod 600)")
    elif token != "600":
        todo.append(f"the token file {path} has mode {token}: chmod 600 it")
    for item in todo:
        console.print(f"  [yellow]to do:[/] {escape(item)}")
