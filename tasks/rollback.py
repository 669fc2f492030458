"""fab rollback: back to a release from the history, by the image digests it ran (not by its tag, which may
have been pushed again since)."""
from __future__ import annotations

from .core import history
from .core.cli import command, new_release_id, operator, run_release, select
from .core.errors import BAD_INPUT, ToolError
from .core.grammar import check_label
from .core.programs.deploy import Intent, deploy_program
from .core.programs.state import State, read_state


@command({"to": "release tag from the history, as 'fab releases' shows it (default: the previous good release)",
          "force": "allow a tag that is not in the history (pulled by tag from the registry)",
          "dry-run": "read the history, print the exact remote program and change nothing",
          "allow-placeholders": "roll back even if a stack's .env still holds a placeholder from its .env_example"})
def rollback(c, host=None, to=None, system=None, force=False, dry_run=False, allow_placeholders=False):
    """Roll back to a recorded release (no --to: the previous good one), restoring its exact image digests."""
    if to is not None:
        check_label(to)
    with select(host, system) as sel:
        by, origin = operator()
        for target in sel.targets:
            session = sel.session(target)
            state = read_state(session, target)
            tag, pins = _target(state, to, force, target.label)
            stacks = [s for s in target.system.stacks
                      if not s.apps or pins is None or any(a.name in pins for a in s.apps)]
            intent = Intent("rollback", new_release_id(), tag, by, origin, pins, state.history_sha)
            program = deploy_program(target, stacks, intent, allow_placeholders=allow_placeholders)
            run_release(None if dry_run else session, target, intent, program)


def _target(state: State, to, force, label) -> tuple[str, dict | None]:
    """The tag and pins to go back to: a good release of ``to``, the previous good one, or (--force) a bare tag."""
    if to is None:
        rel = history.previous_good(state.releases, state.current.release)
        if rel is None:
            raise ToolError(f"{label}: there is no earlier good release to go back to", BAD_INPUT)
        return rel.tag, rel.pins
    try:
        rel = history.find_good(state.releases, to)
    except ToolError:
        if not force:
            raise
        return to, None
    return rel.tag, rel.pins
