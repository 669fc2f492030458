"""fab rollback: back to a release from the history, by the image digests it ran (not by its tag, which may
have been pushed again since)."""
from __future__ import annotations

from .core import asked, history, hooks, plans
from .core.cli import FLEET_HELP, TOKEN_HELP, command, confirm, operator, print_program, select
from .core.errors import BAD_INPUT, ToolError
from .core.fleet import Leg, Rollout, Run
from .core.grammar import check_label, check_tag
from .core.model import Stack
from .core.programs.declare import Intent
from .core.programs.deploy import config_differences, deploy_program, going_back, release_label, untouched
from .core.programs.state import State, read_state
from .core.target import Target
from .core.ui import console, err_console, safe


@command({"to": "release tag from the history, as 'fab releases' shows it (default: the previous good release)",
          "force": "allow a tag that is not in the history (pulled by tag from the registry)",
          "dry-run": "read the history, print the exact remote program and change nothing",
          "allow-placeholders": "roll back even if a stack's .env still holds a placeholder from its .env_example",
          "with-data": "also put the databases back to the backup taken right after that release ran (the next "
                       "deploy's before-deploy backup; a fresh backup is taken first); asks at a terminal",
          "yes": "do not show the plan and ask first at a terminal (nor ask about --with-data); CI is never asked",
          "plan": "print what the rollback would do on each host (pins now -> after, files, stacks brought up or "
                  "left alone, jobs, backups, the lock) and stop: nothing locked or changed (--json: as JSON)",
          "jobs": "run the stacks' run-once jobs (hosts.yml's jobs:) again, with the release's images (by default a "
                  "rollback runs none: a migration's schema stays; --with-data puts the data back)",
          **TOKEN_HELP, **FLEET_HELP})
def rollback(c, host=None, group=None, all=False, to=None, system=None, force=False, dry_run=False,
             allow_placeholders=False, with_data=False, yes=False, jobs=False, parallel=None, batch=None,
             no_revert=False, json=False, plan=False, token_env=None, token_command=None):
    """Roll back to a recorded release by its image digests and commit (no --to: the previous good one).

    Its data too with --with-data (the default never touches data). Several hosts are one transaction."""
    if to is not None:
        check_label(to)
    rollout = Rollout.parse(parallel, batch, no_revert)
    if plan and dry_run:
        raise ToolError("--plan or --dry-run, not both: --plan reads the host and says what would change, --dry-run "
                        "prints the program", BAD_INPUT)
    asking = not (plan or dry_run or yes or json) and plans.interactive()   # (--json: a program reads it)
    given = bool(token_env or token_command)
    with select(host, system, all, group, swarm_once=True) as sel:
        by, origin = operator()
        token = "" if dry_run else asked.registry_token(sel.targets, token_env, token_command)
        run = Run(sel, sel.targets, "rollback", rollout, json)
        run.reach()
        states = {t.label: read_state(sel.session(t), t) for t in sel.targets}
        chosen = _targets(sel.targets, states, to, force)
        work, show = [], (err_console if json or plan else console).print   # (--json: stdout holds only events)
        for target in sel.targets:
            state, rel = states[target.label], chosen[target.label]
            if rel is False:
                show(f"{safe(target.label)}: left alone: it pins no image and no release of {safe(to)}'s run is "
                     "in its history")
                continue
            intent, stacks = (going_back(state, rel, target, by, origin, run.release, run.fleet, jobs) if rel
                              else _forced(state, target, to, by, origin, run, jobs))
            snapshot = _snapshot(state, rel, target, dry_run or yes or plan or asking) if with_data else []
            show(_what_comes_back(target, rel, intent, snapshot), soft_wrap=True)
            work.append((target, stacks, intent, snapshot, state, rel))
        if plan or asking:
            planned = [plans.plan(sel.session(t), t, stacks, i, token, given) for t, stacks, i, *_ in work]
            if plan:
                return plans.show(planned, json)
            plans.ask(planned, "roll back")
        with hooks.around(sel.inventory, "rollback", run.release, run.targets, to or "", skip=dry_run):
            legs = []
            for target, stacks, intent, snapshot, state, rel in work:
                program = deploy_program(target, stacks, intent, allow_placeholders=allow_placeholders,
                                         snapshot=snapshot, releases=state.releases, per_deploy=given)
                if dry_run:
                    print_program(target, program, asked.TOKEN_PLACE if target.brings_token(given) else "")
                    continue
                legs.append(Leg(target, program.with_token(token), intent, run.stage_of(target, stacks),
                                notes=(lambda result, rel=rel: _config_notes(rel, result)) if rel else None))
            if legs:
                run.go(legs)


def _forced(state: State, target: Target, tag: str, by: str, origin: str, run: Run,
            jobs: bool) -> tuple[Intent, list[Stack]]:
    """--force: a tag the history does not know, pulled by tag for every app; a binary keeps what it runs (it
    needs its recorded bytes)."""
    tags = {a.name: check_tag(tag) for a in target.system.apps()}
    stacks = [s for s in target.system.stacks if not s.binary]
    rest = untouched(state, target, stacks)
    return Intent("rollback", run.release, release_label(tags, rest.pins), by, origin, history_sha=state.history_sha,
                  tags=tags, fleet=run.fleet, untouched=rest, jobs=jobs), stacks


def _what_comes_back(target: Target, rel: history.Release | None, intent: Intent,
                     snapshot: list[tuple[Stack, str]]) -> str:
    """Before anything changes (also with --dry-run): which release comes back, and which backups replace the
    live databases."""
    what = f"release {rel.id} ({rel.tag}, {rel.action} of {rel.at})" if rel else f"tag {intent.tag} (--force)"
    data = f"; databases from {', '.join(name for _, name in snapshot)}" if snapshot else ""
    skipped = [f"{s.name}/{j.name}" for s in target.system.stacks for j in s.jobs] if not intent.jobs else []
    jobs = f" (its jobs {', '.join(skipped)} are not run: --jobs runs them)" if skipped else ""
    return f"{safe(target.label)}: back to {safe(what)}, running {safe(intent.tag)}{safe(data)}{safe(jobs)}"


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
        confirm(f"Roll {target.label} back to release {rel.id} ({rel.tag}) and replace its live databases with "
                f"{names} (taken before {after.tag} went live; a fresh backup is taken first)?")
    return snapshot


def _owner(target: Target, name: str) -> Stack:
    """The database stack a recorded backup belongs to."""
    stack = target.system.backup_stack(name)
    if stack is None:
        raise ToolError(f"{target.label}: backup {name} belongs to no database stack of hosts.yml", BAD_INPUT)
    return stack


def _targets(targets: list[Target], states: dict, to, force) -> dict:
    """Each host's release to go back to (by target label): a good release of ``to``, or the previous good one;
    None with --force for a tag the history does not know; False for a host left alone. Over a fleet, a host
    whose history lacks ``to`` (a database host: its releases are labelled ``config``) goes back to its own
    release of the run that deployed ``to`` elsewhere (the same release id), else is left alone when it pins
    no image. Every refusal names its host."""
    chosen, missing = {}, []
    for t in targets:
        try:
            chosen[t.label] = _target(states[t.label], to, force, t.label)
        except ToolError as e:
            if to is None or len(targets) == 1:
                raise ToolError(f"{t.label}: {e}", e.code) from None
            missing.append((t, e))
    for t in targets:
        if chosen.get(t.label, 0) is None and not t.system.versioned():   # --force: no app to pull a tag for
            chosen[t.label] = False
    runs = {rel.id for rel in chosen.values() if rel}
    for t, e in missing:
        same = [r for r in states[t.label].releases if r.id in runs and r.state == "good"]
        if same:
            chosen[t.label] = same[-1]
        elif not t.system.versioned():
            chosen[t.label] = False
        else:
            raise ToolError(f"{t.label}: {e}", e.code) from None
    return chosen


def _target(state: State, to, force, label) -> history.Release | None:
    """The release to go back to: a good release of ``to``, the previous good one (whose recorded pins or
    commit differ from what runs), or None (--force: a bare tag)."""
    if to is None:
        rel = history.previous_good(state.releases, state.current.release, state.current.pins)
        if rel is None:
            raise ToolError("there is no earlier good release to go back to (one that runs other images or "
                            "another commit of repo/ than what runs now)", BAD_INPUT)
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
