"""fab unlock: release a stale deploy lock on purpose (the deploy that held it is gone)."""
from __future__ import annotations

from .core.cli import command, select
from .core.errors import BAD_INPUT, ToolError
from .core.programs.protocol import execute
from .core.programs.state import unlock_program


@command({"force": "required: confirms that no deploy is running"})
def unlock(c, host=None, group=None, all=False, system=None, force=False):
    """Remove a stale deploy lock (needs --force: only when no deploy is running)."""
    with select(host, system, all, group) as sel:
        if not force:
            raise ToolError("unlock removes the deploy lock even if a deploy is running: "
                            "check with 'fab status' first, then add --force", BAD_INPUT)
        for target in sel.targets:
            execute(sel.session(target), unlock_program(target), target.label)
