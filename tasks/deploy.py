"""fab deploy: pull the tagged images, bring the stacks up in order, health-gate, record the release."""
from __future__ import annotations

from fabric import task

from . import inventory, plan
from .cli import carry_out, new_release_id, operator, read_state, split_list, systems_of, tool_task
from .errors import BAD_INPUT, ToolError
from .remote import Session
from .token import warn_after_deploy


@task(auto_shortflags=False, help={
    "host": "host from hosts.yml", "tag": "release tag to deploy (default: the system's tag: in hosts.yml, "
    "else the tag running now, re-pulled)", "system": "only this system of the host",
    "stack": "only these stacks (comma-separated), in their configured order",
    "dry-run": "print the exact remote program and change nothing"})
@tool_task
def deploy(c, host=None, tag=None, system=None, stack=None, dry_run=False):
    """Deploy a tagged release: lock, login, pull, restart stacks in order, health-gate, record (rolls back by itself)."""
    inv = inventory.load()
    h = inv.host(host)
    if tag is not None:
        plan.check_tag(tag)
    targets = [(s, plan.selected_stacks(s, split_list(stack))) for s in systems_of(h, system)]
    by, origin = operator()
    session = None if dry_run else Session(h)
    for sysm, stacks in targets:
        release_tag = tag or sysm.tag or _running_tag(session, h, sysm)
        intent = plan.Intent("deploy", new_release_id(), release_tag, by, origin)
        program = plan.deploy_program(h, sysm, stacks, intent, plan.github_api(inv.github_api, h))
        result = carry_out(session, h, sysm, intent, program)
        if result:
            warn_after_deploy(result, f"{h.name}/{sysm.name}")


def _running_tag(session, host, system) -> str:
    """Without --tag and no tag: in the inventory, re-deploy what runs now (a re-pushed tag is picked up)."""
    if session is None:
        raise ToolError("--dry-run needs --tag (or tag: in hosts.yml): otherwise the tag is read from the host",
                        BAD_INPUT)
    tag = read_state(session, host, system).current.get("tag")
    if not tag:
        raise ToolError(f"nothing is deployed on {host.name}/{system.name} yet: say which release with --tag",
                        BAD_INPUT)
    return plan.check_tag(tag)
