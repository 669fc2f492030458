"""fab rollback: back to a release from the history, by the image digests it ran (not by its tag, which may
have been pushed again since)."""
from __future__ import annotations

from .core import history
from .core.cli import FLEET_HELP, command, confirm, operator, print_program, select
from .core.errors import BAD_INPUT, ToolError
from .core.fleet import Job, Rollout, Run
from .core.grammar import check_label, check_tag
from .core.model import Stack, Target
from .core.programs.declare import Intent
from .core.programs.deploy import config_differences, deploy_program, going_back, label, untouched
from .core.programs.state import State, read_state


@command({"to": "release tag from the history, as 'fab releases' shows it (default: the previous good release)",
          "force": "allow a tag that is not in the history (pulled by tag from the registry)",
          "dry-run": "read the history, print the exact remote program and change nothing",
          "allow-placeholders": "roll back even if a stack's .env still holds a placeholder from its .env_example",
          "with-data": "also put the databases back to the backup taken right after that release ran (the next "
                       "deploy's before-deploy backup; a fresh backup is taken first); asks at a terminal",
          "yes": "--with-data without asking (no terminal, e.g. CI)", **FLEET_HELP})
def rollback(c, host=None, group=None, all=False, to=None, system=None, force=False, dry_run=False,
             allow_placeholders=False, with_data=False, yes=False, parallel=None, batch=None, no_revert=False,
             json=False):
    """Roll back to a recorded release (no --to: the previous good one): its exact image digests and its commit;
    its data too with --with-data (the default never touches data). Several hosts are one transaction."""
    if to is not None:
        check_label(to)
    rollout = Rollout.parse(parallel, batch, no_revert)
    with select(host, system, all, group) as sel:
        by, origin = operator()
        run = Run(sel, sel.targets, "rollback", rollout, json)
        run.reach()
        jobs = []
        for target in sel.targets:
            session = sel.session(target)
            state = read_state(session, target)
            rel = _target(state, to, force, target.label)
            if rel is None:  # --force: a tag the history does not know, pulled by tag for every app
                tags = {a.name: check_tag(to) for a in target.system.apps()}
                stacks = [s for s in target.system.stacks if not s.binary]   # a binary needs its recorded bytes
                rest = untouched(state, target, stacks)
                intent = Intent("rollback", run.release, label(tags, rest.pins), by, origin,
                                history_sha=state.history_sha, tags=tags, fleet=run.fleet, untouched=rest)
            else:
                intent, stacks = going_back(state, rel, target, by, origin, run.release, run.fleet)
            snapshot = _snapshot(state, rel, target, dry_run or yes) if with_data else []
            program = deploy_program(target, stacks, intent, allow_placeholders=allow_placeholders,
                                     snapshot=snapshot)
            if dry_run:
                print_program(target, program)
                continue
            jobs.append(Job(target, program, intent, run.step_of(target, stacks),
                            notes=(lambda result, rel=rel: _config_notes(rel, result)) if rel else None))
        if jobs:
            run.go(jobs)


def _snapshot(state: State, rel: history.Release | None, target: Target, confirmed: bool) -> list[tuple[Stack, str]]:
    """--with-data: (database stack, backup) for each backup the release after ``rel`` took before it went live:
    the data ``rel`` left. Asked at a terminal unless ``confirmed``."""
    after = history.snapshot_after(state.releases, rel) if rel else None
    if after is None:
        raise ToolError(f"{target.label}: --with-data: no backup was taken after {rel.tag if rel else 'that tag'} ran "
                        "(backup: {before_deploy: true} takes one before each deploy); roll back without --with-data "
                        "and restore by hand ('fab backups', 'fab restore --live --from NAME')", BAD_INPUT)
    snapshot = [(_owner(target, name), name) for name in after.backups]
    names = ", ".join(name for _, name in snapshot)
    if not confirmed:
        confirm(f"Replace the live databases of {target.label} with {names} (taken before {after.tag} went live; "
                "a fresh backup is taken first)?")
    return snapshot


def _owner(target: Target, name: str) -> Stack:
    """The database stack a recorded backup belongs to."""
    stack = target.system.backup_stack(name)
    if stack is None:
        raise ToolError(f"{target.label}: backup {name} belongs to no database stack of hosts.yml", BAD_INPUT)
    return stack


def _target(state: State, to, force, label) -> history.Release | None:
    """The release to go back to: a good release of ``to``, the previous good one, or None (--force: a bare
    tag)."""
    if to is None:
        rel = history.previous_good(state.releases, state.current.release, state.current.pins)
        if rel is None:
            raise ToolError(f"{label}: there is no earlier good release to go back to", BAD_INPUT)
        return rel
    try:
        return history.find_good(state.releases, to)
    except ToolError:
        if not force:
            raise
        return None


def _config_notes(rel: history.Release, result) -> list[str]:
    """Which files differ from what ``rel`` ran with: repo/ went back to its commit, but a .env is not in git
    (its values stay on the host), so only its hash can tell."""
    differ = config_differences(rel.config, result)
    return [f"configuration differs from what {rel.tag} ran with: {', '.join(differ)}"] if differ else []
