"""fab deploy: pull the tagged images, bring the stacks up in order, health-gate, record the release."""
from __future__ import annotations

from dataclasses import replace
from functools import partial

from .core import artifacts, asked, hooks, plans
from .core.cli import FLEET_HELP, TOKEN_HELP, command, operator, print_program, select, split_list
from .core.errors import BAD_INPUT, ToolError
from .core.fleet import Leg, Rollout, Run
from .core.grammar import check_days, check_ref, check_tags, pin_tag
from .core.model import Stack
from .core.programs.declare import Intent, Untouched
from .core.programs.deploy import (
    deploy_program,
    look_program,
    looked,
    new_volumes,
    release_label,
    unchecked,
    unset,
    untouched,
)
from .core.programs.protocol import execute
from .core.programs.state import State, read_state
from .core.programs.token import WARN_DAYS, deploy_warning
from .core.target import Target
from .core.ui import console, safe


@command({"tag": "what to deploy: TAG for every app (pinned image), or app=TAG pairs (e.g. ems=v1.4.3,sms=v2.0.1) "
                 "for some, the others keep what runs (default: the system's tag: in hosts.yml, else each app's "
                 "running tag, pulled again)",
          "stack": "only these stacks (comma-separated), in their configured order; with several hosts, only the "
                   "hosts they are placed on",
          "ref": "first move repo/ (a git checkout) to this branch, tag or commit of its origin; refused on local "
                 "changes; a release that fails moves it back",
          "artifact": "the file of a binary stack (seed 003's Go binary): PATH when this deploy has one binary stack, "
                      "else stack=PATH pairs; uploaded over the SSH connection (skipped when the host has it) and "
                      "installed as releases/<tag>/ beside its live path. A binary stack without one keeps what runs",
          "allow-placeholders": "deploy even if a stack's .env still holds a placeholder from its template",
          "refresh": "infra: pull the images of the stacks that pin nothing again (postgres:15-alpine, traefik:v3), "
                     "so what their tags name now runs and is recorded (default: they run what they ran)",
          "dry-run": "print the exact program, then look at the host read-only (volumes, preflight); change "
                     "nothing",
          "offline": "with --dry-run: only print the program; do not look at the host (volumes, preflight)",
          "plan": "print what the deploy would do on each host (pins now -> after, files changed, stacks brought "
                  "up or left alone, jobs, backups, the lock) and stop: nothing locked or changed (--json: as JSON)",
          "yes": "do not show the plan and ask first (asked only at a terminal, never in CI or with --json)",
          "warn-days": "warn when GitHub says the registry token expires within this many days (default 14)",
          **TOKEN_HELP, **FLEET_HELP})
def deploy(c, host=None, group=None, all=False, tag=None, system=None, stack=None, ref=None, artifact=None,
           dry_run=False, allow_placeholders=False, offline=False, parallel=None, batch=None, no_revert=False,
           json=False, refresh=None, plan=False, yes=False, token_env=None, token_command=None,
           warn_days=str(WARN_DAYS)):
    """Deploy a tagged release: pull, restart the stacks in order behind the health gate, record (or roll back).

    Several hosts (--host a,b, --group, --all) are one transaction: all locked first, in order, reverted together."""
    choice = check_tags(tag) if tag is not None else None
    ref = check_ref(ref) if ref is not None else None
    if refresh not in (None, "infra"):
        raise ToolError(f"--refresh {refresh!r}: only 'infra' (the images of the stacks that pin nothing)", BAD_INPUT)
    rollout = Rollout.parse(parallel, batch, no_revert)
    days = check_days(warn_days)
    if plan and dry_run:
        raise ToolError("--plan or --dry-run, not both: --plan reads the host and says what would change, --dry-run "
                        "prints the program", BAD_INPUT)
    with select(host, system, all, group, swarm_once=True, connect=not (dry_run and offline)) as sel:
        chosen = _chosen(sel, split_list(stack))   # every name checked first
        files = {target.label: artifacts.chosen(artifact, target, stacks, choice) for target, stacks in chosen}
        _check_named(choice, chosen)
        given = bool(token_env or token_command)   # (a token for this run: not read for --dry-run)
        token = "" if dry_run else asked.registry_token([t for t, _ in chosen], token_env, token_command)
        run = Run(sel, [t for t, _ in chosen], "deploy", rollout, json)
        if not dry_run and not plan:
            run.reach()
        work, who = [], operator()
        for target, stacks in chosen:
            session = None if dry_run and offline else sel.session(target)
            intent, state = _intent(session, run, who, target, stacks, choice, ref, files[target.label])
            work.append((target, stacks, session, replace(intent, refresh=refresh == "infra"), state))
        if plan or (not (dry_run or yes or json) and plans.interactive()):
            planned = [plans.plan(session, target, stacks, intent, token, given)
                       for target, stacks, session, intent, _ in work]
            if plan:
                return plans.show(planned, json)
            plans.ask(planned, "deploy")
        legs = []
        with hooks.around(sel.inventory, "deploy", run.release, run.targets, tag or "", skip=dry_run):
            for target, stacks, session, intent, state in work:
                program = deploy_program(target, stacks, intent, sel.inventory.github_api_for(target.host),
                                         allow_placeholders, releases=state.releases if state else (), per_deploy=given)
                if dry_run:
                    _dry_run(session, target, stacks, intent, program, target.brings_token(given))
                    continue
                artifacts.upload(session, target, files[target.label])
                legs.append(Leg(target, program.with_token(token), intent, run.stage_of(target, stacks),
                                notes=partial(_warnings, days=days)))
            if legs:
                run.go(legs)


def _intent(session, run: Run, who: tuple[str, str], target: Target, stacks: list[Stack], choice, ref,
            files: dict) -> tuple[Intent, State | None]:
    """What this deploy asks of ``target``: the tags it pulls, the pins it keeps, what the stacks it leaves
    alone run (read from the host when needed: ``_state``), and the history it was decided from."""
    keep = [s.name for s in target.system.binaries(stacks) if s.name not in files]
    state = _state(session, target, stacks, choice)
    tags, pins = _versions(choice or target.system.tag, state and state.current.pins, target,
                           target.system.versioned(stacks), keep)
    rest = untouched(state, target, stacks) if state else Untouched()
    by, origin = who
    return Intent("deploy", run.release, release_label(tags, {**rest.pins, **pins}), by, origin, pins=pins,
                  tags=tags, ref=ref, artifacts={name: f.sha256 for name, f in files.items()}, fleet=run.fleet,
                  untouched=rest, history_sha=state and state.history_sha), state


def _dry_run(session, target: Target, stacks: list[Stack], intent: Intent, program, token: bool) -> None:
    """--dry-run: the exact program (and where a token it brings would follow it), how each stack changes, and
    (unless --offline) a read-only look."""
    print_program(target, program, asked.TOKEN_PLACE if token else "")
    _strategies(target, stacks)
    if session:
        _look(session, target, stacks, intent)


def _chosen(sel, only: list[str] | None) -> list[tuple[Target, list[Stack]]]:
    """Each target with the stacks this deploy brings up there; with several hosts, a host none of whose
    stacks is chosen is left out (--stack frontend: only the hosts the frontend is placed on)."""
    every = [(t, t.system.selected(only)) for t in sel.targets]
    chosen = [(t, stacks) for t, stacks in every if stacks]
    if not chosen:
        raise ToolError(f"--stack {','.join(only or [])}: no selected host runs it", BAD_INPUT)
    return chosen


def _warnings(result, days: int = WARN_DAYS) -> list[str]:
    """What the deploy saw that deserves a look: a token expiring within ``days``, services the gate cannot
    judge, variables compose left empty, volumes it created."""
    warnings = [w for w in [deploy_warning(result, days)] if w]
    blind, blank, created = unchecked(result), unset(result), new_volumes(result)
    if blind:
        warnings.append(f"no healthcheck on {', '.join(blind)}: the gate only saw them start, so a release that "
                        "breaks them would pass; add a healthcheck to their compose service")
    if blank:
        warnings.append(f"not set in the stacks' .env, so empty: {', '.join(blank)}")
    if created:
        warnings.append(f"new, empty volumes created: {', '.join(created)}")
    return warnings


def _strategies(target: Target, stacks: list[Stack]) -> None:
    """--dry-run: how each compose stack changes (rollout: in hosts.yml)."""
    for s in stacks:
        if s.binary:
            continue
        sf = s.start_first
        how = (f"start-first{_behind(sf.nginx)} (new containers beside the old, healthy before they get traffic; "
               f"old ones drained {sf.drain} s, {f'{sf.batch} at a time' if sf.batch else 'all at once'})" if sf
               else "stop-first (the old containers stop, then the new ones start)")
        console.print(f"# {safe(target.label)}: stack {safe(s.name)}: {how}", soft_wrap=True)


def _behind(nginx) -> str:
    """For --dry-run: which services roll behind nginx, and where the tool writes their upstream blocks."""
    if not nginx:
        return ""
    return (f" for {', '.join(svc for svc, _ in nginx.upstreams)} behind nginx (service {nginx.service}; "
            f"upstream blocks written to {nginx.folder}/ and nginx reloaded)")


def _look(session, target: Target, stacks: list[Stack], intent: Intent) -> None:
    """--dry-run: a read-only look at the host: the volumes each stack will use, and whether preflight would
    refuse (exit 2 then)."""
    volumes, problems = looked(execute(session, look_program(target, stacks, intent), target.label, quiet=True))
    console.print(f"# {safe(target.label)}: a read-only look at the host (nothing locked, pulled or changed)")
    for stack, name, state in volumes:
        console.print(f"  stack {safe(stack)} uses volume {safe(name)}"
                      + (" (exists)" if state == "exists" else " [yellow](new: created empty)[/]"))
    if problems:
        raise ToolError(f"{target.label}: preflight would refuse this deploy: {'; '.join(problems)}", BAD_INPUT)
    console.print("  preflight: nothing would refuse this deploy")


def _check_named(choice, chosen: list[tuple[Target, list[Stack]]]) -> None:
    """app=tag pairs name apps (or binary stacks) of this deploy, and a tag needs one to set (refused before
    anything connects). Over several hosts, a host whose stacks pin nothing (a database server) just brings
    its stacks up."""
    apps = list(dict.fromkeys(n for target, stacks in chosen for n in target.system.versioned(stacks)))
    where = chosen[0][0].label if len(chosen) == 1 else "these hosts"
    if choice is not None and not apps:
        raise ToolError(f"--tag: this deploy of {where} pins no image (no stack of it has image: or images: in "
                        "hosts.yml), so a tag has nothing to set; deploy without --tag (and --ref to move repo/)",
                        BAD_INPUT)
    if isinstance(choice, dict):
        unknown = [name for name in choice if name not in apps]
        if unknown:
            raise ToolError(f"--tag names {', '.join(unknown)}, not an app of this deploy of {where} "
                            f"(apps: {', '.join(apps) or 'none'})", BAD_INPUT)


def _state(session, target: Target, stacks: list[Stack], choice) -> State | None:
    """The host's history and running release, read when this deploy needs them (one round trip): a deploy of
    some stacks records what the others run, an app without a tag of its own keeps (or pulls again) what it
    runs, and a binary's pruning keeps the releases the history calls good. A deploy of every stack (no binary)
    to one tag needs nothing from the host. None without a session (--offline)."""
    partial = len(stacks) < len(target.system.stacks)
    binaries = target.system.binaries(stacks)   # (pruning keeps the good releases the history names)
    if session is None or not (partial or binaries or not isinstance(choice or target.system.tag, str)):
        return None
    return read_state(session, target)


def _versions(choice, running: dict | None, target: Target, names: list[str], keep: list[str]) -> tuple[dict, dict]:
    """What each app (or binary stack) runs after this deploy: the tags to install now, and the pins kept
    exactly as they run (``running``: the host's pins; None when it was not read). One tag: every app pulls it.
    app=tag pairs: those pull, the others keep what runs. Nothing: each app pulls the tag it runs again (a
    re-pushed tag is picked up), never another app's. A binary stack in ``keep`` (no --artifact) always keeps
    what runs."""
    if isinstance(choice, str):
        choice = {n: choice for n in names if n not in keep}
    choice = {n: t for n, t in (choice or {}).items() if n in names}   # (another host's apps: not here)
    rest = [n for n in names if n not in choice]
    if not rest:
        return choice, {}
    if running is None:
        raise ToolError("--dry-run --offline needs a tag for every app (--tag TAG, app=TAG pairs, or tag: in "
                        "hosts.yml) and an --artifact for every binary: otherwise what runs is read from the host",
                        BAD_INPUT)
    missing = [n for n in rest if n not in running]
    if missing:
        raise ToolError(f"nothing is deployed for {', '.join(missing)} on {target.label} yet: say which release "
                        f"with --tag{' and --artifact' if set(missing) & set(keep) else ''}", BAD_INPUT)
    kept = {n: running[n] for n in rest if choice or n in keep}
    return {**choice, **{n: pin_tag(running[n]) for n in rest if n not in kept}}, kept
