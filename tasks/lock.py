"""fab unlock: release a stale deploy lock on purpose (the deploy that held it is gone)."""
from __future__ import annotations

from fabric import task

from . import inventory, plan
from .cli import systems_of, tool_task
from .errors import BAD_INPUT, ToolError
from .remote import Session


@task(auto_shortflags=False, help={"host": "host from hosts.yml", "system": "only this system of the host",
                                   "force": "required: confirms that no deploy is running"})
@tool_task
def unlock(c, host=None, system=None, force=False):
    """Remove a stale deploy lock (needs --force: only when no deploy is running)."""
    h = inventory.load().host(host)
    systems = systems_of(h, system)
    if not force:
        raise ToolError("unlock removes the deploy lock even if a deploy is running: "
                        "check with 'fab status' first, then add --force", BAD_INPUT)
    session = Session(h)
    for sysm in systems:
        label = f"{h.name}/{sysm.name}"
        session.run(plan.unlock_program(h, sysm), label)
