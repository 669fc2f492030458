"""The plan before a deploy or a rollback changes anything: ``--plan`` prints it (``--json`` for a CI review)
and stops; at a terminal a real run shows it and asks once for every target (``--yes`` skips the question, and
CI, with no terminal or ``CI`` set, is never asked)."""
from __future__ import annotations

import json
import os
import sys

from .errors import BAD_INPUT, ToolError
from .model import Stack
from .programs.declare import Intent
from .programs.plan import Plan, plan_of, plan_program
from .programs.protocol import execute
from .ssh import Session
from .target import Target
from .ui import console, safe


def interactive() -> bool:
    """A person at a terminal runs this (stdin and stdout are one), and not CI (which sets CI=true)."""
    return sys.stdin.isatty() and sys.stdout.isatty() and os.environ.get("CI", "").lower() not in ("1", "true", "yes")


def plan(session: Session, target: Target, stacks: list[Stack], intent: Intent, token: str = "",
         given: bool = False) -> Plan:
    """The plan of this run on ``target``, read in one round trip (with the registry token the run brings, if
    it brings one: ``given`` as deploy_program's ``per_deploy``)."""
    program = plan_program(target, stacks, intent, given).with_token(token)
    result = execute(session, program, target.label, quiet=True)
    return plan_of(target, stacks, intent, result)


def show(plans: list[Plan], as_json: bool = False) -> None:
    """Print ``plans``: one block per target, or one JSON object (target -> plan) on stdout; then exit 2 when
    preflight would refuse the run on one of them (a CI review fails there, as the run would)."""
    if as_json:
        print(json.dumps({p.target: p.as_dict() for p in plans}, indent=2))
    else:
        _print(plans)
    refused = [p.target for p in plans if p.problems]
    if refused:
        raise ToolError(f"preflight would refuse this run on {', '.join(refused)} (see the plan): nothing was changed",
                        BAD_INPUT)


def _print(plans: list[Plan]) -> None:
    for p in plans:
        console.print(f"[bold]{safe(p.target)}[/]: {safe(p.action)} of {safe(p.release)}")
        for a in p.apps:
            after = f"{a['after']} [yellow](its digest unknown: {safe(a['why'])})[/]" if a["why"] else safe(a["after"])
            same = " (unchanged)" if a["now"] == a["after"] else ""
            console.print(f"  app {safe(a['app'])}: {safe(a['now'] or 'nothing')} → {after}{same}", soft_wrap=True)
        for s in p.stacks:
            what = "brought up" if s["action"] == "up" else "left as it runs (nothing would change)"
            console.print(f"  stack {safe(s['stack'])}: {what}")
        for label, items in (("files changed since the running release", p.files), ("jobs", p.jobs),
                             ("backups before anything changes", p.backups)):
            if items:
                console.print(f"  {label}: {safe(', '.join(items))}", soft_wrap=True)
        console.print(f"  lock: {safe(p.lock)}", soft_wrap=True)
        for problem in p.problems:
            console.print(f"  [red]preflight would refuse: {safe(problem)}[/]", soft_wrap=True)
        for note in p.notes:
            console.print(f"  [yellow]{safe(note)}[/]", soft_wrap=True)


def ask(plans: list[Plan], action: str) -> None:
    """At a terminal: the plans, then one question for all of them; anything but yes changes nothing."""
    show(plans)
    if input(f"{action.capitalize()} as planned? [y/N] ").strip().lower() not in ("y", "yes"):
        raise ToolError("not confirmed: nothing was changed", BAD_INPUT)
