"""fab setup and fab migrate-layout: seed 001's /root hierarchy, and moving a live VPS onto it with nothing lost."""
from __future__ import annotations

import sys

from fabric import task
from rich.markup import escape

from . import inventory, layout_plan, plan
from .cli import new_release_id, operator, show_program, systems_of, tool_task
from .errors import BAD_INPUT, ToolError
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
        data = session.run(program, label, quiet=True).data
        networks = layout_plan.external_networks(data.get("compose", []))
        if networks:
            more = session.run(layout_plan.networks_program(networks), label, quiet=True).data
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


@task(auto_shortflags=False, help={
    "host": "host from hosts.yml (its legacy: block says where the old paths are)", "system": "only this system",
    "dry-run": "show the plan and the remote program, change nothing", "yes": "do not ask for confirmation",
    "remove-old": "after a completed migration: delete the old copies (repo, letsencrypt, uploads)"})
@tool_task
def migrate_layout(c, host=None, system=None, dry_run=False, yes=False, remove_old=False):
    """Move a VPS from the old paths to the /root hierarchy (seed 001 section 3): copy, verify, switch, keep old."""
    h = inventory.load().host(host)
    legacy = dict(h.legacy)
    systems = systems_of(h, system)
    for sysm in systems:
        if sysm.name not in legacy:
            raise ToolError(f"hosts.yml has no legacy: block for {sysm.name} on {h.name}: nothing says where the old "
                            "paths are", BAD_INPUT)
    session = Session(h)
    by, origin = operator()
    for sysm in systems:
        leg, label = legacy[sysm.name], f"{h.name}/{sysm.name}"
        facts = session.run(layout_plan.survey_program(h, sysm, leg), label, quiet=True)
        if facts.first("migrated") == "yes":
            console.print(f"[bold]{label}[/]: already on the new layout, nothing to do")
            if remove_old:
                session.run(layout_plan.remove_old_program(h, sysm, leg), label)
            continue
        if remove_old:
            raise ToolError(f"{label}: --remove-old only after a completed migration", BAD_INPUT)
        projects = layout_plan.old_projects(facts.data.get("old", []))
        pins = layout_plan.stack_pins(h, sysm, leg, projects)
        projects, pins = layout_plan.resume_facts(facts.data, projects, pins)
        _show_plan(label, h, sysm, leg, facts, projects, pins)
        refusals = facts.data.get("refuse", [])
        if refusals:
            raise ToolError(f"{label}: refused before changing anything: " + "; ".join(refusals), BAD_INPUT)
        tags = {pin.split("@")[0] for pin in pins.values()}
        intent = plan.Intent("migrate-layout", new_release_id(), tags.pop() if len(tags) == 1 else "migrated", by, origin)
        program = layout_plan.migrate_program(h, sysm, leg, projects, pins, intent)
        if dry_run:
            show_program(h, sysm, program)
            continue
        _confirm(yes, label)
        res = session.run(program, label)
        console.print(f"[green]✓ {label}: on the new layout[/]; downtime {int(res.first('downtime_ms', 0)) / 1000:.1f}s; "
                      f"old copies kept at {', '.join(src for _, src, _ in layout_plan.copies(h, sysm, leg))} "
                      "(fab migrate-layout --remove-old deletes them)")


def _show_plan(label, host, system, legacy, facts, projects, pins) -> None:
    """Every copy, every stack that goes down and comes up, the volumes kept, the expected downtime."""
    space = dict(kv.split("=") for kv in (facts.first("space") or "need=0 avail=0").split())
    console.print(f"[bold]{label}[/]: migration plan (seed 001 section 3)")
    for name, src, dst in layout_plan.copies(host, system, legacy):
        console.print(f"  copy + verify  {escape(src)} -> {escape(dst)}   [dim](old copy kept)[/]")
    console.print(f"  [dim]{int(space['need']) / 1e6:.1f} MB to copy, {int(space['avail']) / 1e9:.1f} GB free[/]")
    for p in projects:
        console.print(f"  stop           {escape(p.name)} (from {escape(p.workdir)})")
    for s in system.stacks:
        pin = f" on {pins[s.name]}" if s.name in pins else (" [red](no running image found)[/]" if s.image else "")
        console.print(f"  start          {plan.project(system, s)}{pin}")
    for v in legacy.volumes:
        console.print(f"  keep volume    {escape(v)} (must be the same, untouched)")
    waits = sum(s.wait for s in system.stacks)
    console.print(f"  downtime: from the first stop to the last healthy start (seconds usually; at most {waits}s of "
                  "health waits); if the new stacks fail, the old ones are started again")


def _confirm(yes: bool, label: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise ToolError(f"{label}: add --yes to migrate without a terminal (or --dry-run to see the program)", BAD_INPUT)
    if input("Migrate now? The stacks above go down for the switch. Type yes: ").strip() != "yes":
        raise ToolError("not confirmed: nothing was changed", BAD_INPUT)
