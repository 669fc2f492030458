"""fab rollback: back to a release from the history, by the image digests it ran (not by its tag, which may
have been pushed again since)."""
from __future__ import annotations

from fabric import task

from . import history, inventory, plan
from .cli import carry_out, new_release_id, operator, read_state, systems_of, tool_task
from .errors import BAD_INPUT, ToolError
from .remote import Session


@task(auto_shortflags=False, help={
    "host": "host from hosts.yml", "to": "release tag from the history (default: the previous good release)",
    "system": "only this system of the host",
    "force": "allow a tag that is not in the history (pulled by tag from the registry)",
    "dry-run": "read the history, print the exact remote program and change nothing"})
@tool_task
def rollback(c, host=None, to=None, system=None, force=False, dry_run=False):
    """Roll back to a recorded release (no --to: the previous good one), restoring its exact image digests."""
    h = inventory.load().host(host)
    if to is not None:
        plan.check_tag(to)
    systems = systems_of(h, system)
    by, origin = operator()
    session = Session(h)
    for sysm in systems:
        state = read_state(session, h, sysm)
        tag, pins = _target(state, to, force, f"{h.name}/{sysm.name}")
        stacks = [s for s in sysm.stacks if not s.image or pins is None or s.name in pins]
        intent = plan.Intent("rollback", new_release_id(), tag, by, origin, pins, state.history_sha)
        carry_out(None if dry_run else session, h, sysm, intent, plan.deploy_program(h, sysm, stacks, intent))


def _target(state, to, force, label) -> tuple[str, dict | None]:
    """The tag and pins to go back to: a good release of ``to``, the previous good one, or (--force) a bare tag."""
    if to is None:
        rel = history.previous_good(state.releases, state.current.get("release"))
        if rel is None:
            raise ToolError(f"{label}: there is no earlier good release to go back to", BAD_INPUT)
        return rel.tag, rel.images
    try:
        rel = history.find_good(state.releases, to)
    except ToolError:
        if not force:
            raise
        return to, None
    return rel.tag, rel.images
