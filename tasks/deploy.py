"""fab deploy: pull the tagged images, bring the stacks up in order, health-gate, record the release."""
from __future__ import annotations

from .core.cli import command, new_release_id, operator, run_release, select, split_list
from .core.errors import BAD_INPUT, ToolError
from .core.grammar import check_tag
from .core.programs.deploy import Intent, deploy_program
from .core.programs.state import read_state
from .core.programs.token import deploy_warning
from .core.ui import console, safe


@command({"tag": "release tag to deploy (default: the system's tag: in hosts.yml, else the tag running now, re-pulled)",
          "stack": "only these stacks (comma-separated), in their configured order"})
def deploy(c, host=None, tag=None, system=None, stack=None, dry_run=False):
    """Deploy a tagged release: lock, login, pull, restart stacks in order, health-gate, record (rolls back by itself)."""
    if tag is not None:
        check_tag(tag)
    with select(host, system) as sel:
        plans = [(t, t.system.selected(split_list(stack))) for t in sel.targets]  # every name checked first
        by, origin = operator()
        for target, stacks in plans:
            session = None if dry_run else sel.session(target)
            intent = Intent("deploy", new_release_id(), tag or target.system.tag or _running_tag(session, target),
                            by, origin)
            program = deploy_program(target, stacks, intent, sel.inventory.github_api_for(target.host))
            result = run_release(session, target, intent, program)
            warning = result and deploy_warning(result)
            if warning:
                console.print(f"[yellow]⚠ {safe(target.label)}: {safe(warning)}[/]")


def _running_tag(session, target) -> str:
    """Without --tag and no tag: in the inventory, re-deploy what runs now (a re-pushed tag is picked up)."""
    if session is None:
        raise ToolError("--dry-run needs --tag (or tag: in hosts.yml): otherwise the tag is read from the host",
                        BAD_INPUT)
    tag = read_state(session, target).current.tag
    if not tag:
        raise ToolError(f"nothing is deployed on {target.label} yet: say which release with --tag", BAD_INPUT)
    return check_tag(tag)
