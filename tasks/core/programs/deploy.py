"""The deploy program (also rollback's): lock, [move repo/ to a git ref], login, pull, preflight (nothing has
stopped yet), [a verified backup of the databases], the configuration's hashes, record, up in order, health gate, restore the previous good release
(and commit) on failure, record, unlock, audit. One SSH round trip for the whole deploy."""
from __future__ import annotations

from .. import grammar, history
from ..model import Stack
from ..target import Target
from .backup import before_deploy, restore_before_rollback
from .declare import Intent, Untouched, add_jobs, add_stacks, add_waves, placeholder_words
from .protocol import Program, Result, fields, report
from .prune import after_deploy
from .state import State


def release_label(tags: dict[str, str], pins: dict[str, str]) -> str:
    """A release's label: its one tag when every app it pulls or keeps has the same, else app=tag pairs
    (sorted): what history, status and rollback --to call it; "config" when it pins no image (its releases
    differ by their commit of repo/)."""
    versions = {**{s: grammar.pin_tag(p) for s, p in pins.items()}, **tags}
    distinct = set(versions.values())
    if not distinct:
        return "config"
    if len(distinct) == 1:
        return distinct.pop()
    return ",".join(f"{s}={t}" for s, t in sorted(versions.items()))


def going_back(state: State, rel: history.Release, target: Target, by: str, origin: str, release: str,
               fleet: str = "", jobs: bool = False) -> tuple[Intent, list[Stack]]:
    """A rollback to ``rel``: the intent (its recorded digests and commit, never its tag, which may have been
    pushed again since) and the stacks it brings up: those that pin nothing, and those whose apps (or binary)
    it recorded. A release recorded before releases named the whole system may lack some apps: those keep
    what they run, and the label says what runs after it. Its stacks' run-once jobs run only when asked
    (``jobs``: rollback --jobs): a migration is seldom one to run again over newer data."""
    stacks = [s for s in target.system.stacks if _recorded(s, rel)]
    rest = untouched(state, target, stacks)
    infra = {k: v for k, v in rel.infra.items() if k.split("/")[0] in {s.name for s in stacks}}
    intent = Intent("rollback", release, release_label({}, {**rest.pins, **rel.pins}), by, origin, rel.pins,
                    state.history_sha, ref=rel.commit or None, fleet=fleet, untouched=rest, infra=infra, jobs=jobs)
    return intent, stacks


def _recorded(stack: Stack, rel: history.Release) -> bool:
    if stack.binary:
        return stack.name in rel.pins
    return not stack.apps or any(a.name in rel.pins for a in stack.apps)


def untouched(state: State, target: Target, stacks: list[Stack]) -> Untouched:
    """What the stacks of ``target`` that a run does not bring up run now: their apps' pins from state/current,
    the running release's hashes of every file but those of ``stacks`` (hashed again by the run) and its record
    of their services that pin nothing."""
    rest = [s for s in target.system.stacks if s not in stacks]
    pins = {n: state.current.pins[n] for n in target.system.versioned(rest) if n in state.current.pins}
    running = next((r for r in state.releases if r.id == state.current.release), None)
    mine = {target.relative(p) for s in stacks if not s.binary for p in (target.compose(s), target.env_file(s))}
    files = {p: h for p, h in (running.config.get("files", {}) if running else {}).items() if p not in mine}
    names = {s.name for s in rest}
    infra = {k: v for k, v in (running.infra if running else {}).items() if k.split("/")[0] in names}
    return Untouched(pins, files, infra)


def add_checked_stacks(prog: Program, target: Target, stacks: list[Stack]) -> Program:
    """``add_stacks`` for preflight: also the stacks whose pinned services must have a healthcheck."""
    add_stacks(prog, target, stacks)
    for s in stacks:
        if s.require_healthcheck:
            prog.step("require_healthchecks", s.name)
    return prog


def deploy_program(target: Target, stacks: list[Stack], intent: Intent, github_api: str = "",
                   allow_placeholders: bool = False, snapshot: list[tuple[Stack, str]] = (),
                   reverts: Intent | None = None, releases: list[history.Release] = (),
                   per_deploy: bool = False) -> Program:
    """The whole deploy (or rollback) of ``stacks`` of ``target``; a rollback --with-data first restores each
    database stack of ``snapshot`` to its backup; a fleet's revert (``reverts``: the release it takes back)
    records that release reverted once its own is live. ``releases`` (the history as read) say which binary
    builds once passed their gate: never replaced by another build of their tag, and kept first by pruning.
    A token brought for the run (``per_deploy``: --token-env; or registry.token per-deploy) is read after the
    program on stdin (``Program.given``) and nothing of it is kept."""
    registry = target.host.registry
    private = target.system.needs_token
    per_deploy = target.brings_token(per_deploy)
    login = {"REGISTRY": registry.server, "REGISTRY_USER": registry.username, **target.token_head(per_deploy),
             **({"GITHUB_API": github_api} if github_api else {})} if private else {}
    prog = Program(f"{intent.action} {intent.tag} on {target.label}", {
        "STATE": target.state_dir, "SYSTEM": target.system.name, **login, **intent.head(),
        "EXPECT_HISTORY": intent.history_sha or "", "OWN_PROJECTS": " ".join(target.host.projects()),
        "REPO": target.path("repo"), "BASE": target.base, **({"REVERTED": reverts.meta()} if reverts else {})})
    prog.step("begin")
    if target.system.needs_docker:
        prog.step("need_docker")
    add_waves(add_checked_stacks(prog, target, stacks), target, stacks)   # (the lock names them)
    if intent.jobs:
        add_jobs(prog, stacks)
    swarm = ("swarm_hold_state",) if target.system.engine == "swarm" else ()
    token = ("receive_token",) if per_deploy else ("check_secrets",) if private else ()
    for step in ("lock_take", *swarm, "check_history", *token):
        prog.step(step)
    if intent.ref:
        prog.step("checkout_ref", intent.ref)
    if not allow_placeholders:
        prog.step("check_placeholders", *placeholder_words(stacks))
    unpinned = [s.name for s in stacks if not s.apps and not s.binary]
    if target.system.apps(stacks) and unpinned:   # their preflight renderings wait for no pull: started now
        prog.step("render_start", *unpinned)
    if private and github_api:   # (GitHub asked about the token beside the login and the pulls: token_gate)
        prog.step("probe_token_start")
    if private:
        prog.step("registry_login")
    if intent.refresh:
        for s in stacks:
            if s.name in unpinned:
                prog.step("refresh_stack", s.name)
    for a in target.system.apps(stacks):
        prog.step("add_image", a.name, target.image_repo(a), (intent.tags or {}).get(a.name, ""),
                  (intent.pins or {}).get(a.name, ""))
    for name, pin in sorted(intent.untouched.pins.items()):   # recorded, neither pulled nor brought up
        prog.step("use_pin", name, pin)
    if target.system.apps(stacks):
        prog.step("fetch_images")
    if private and github_api:   # (an expired or scope-less token refused before anything changes)
        prog.step("token_gate")
    if private and (registry.logout or per_deploy and not swarm):
        # no login past the pulls: compose could not pull then, so the other stacks' images come now (a swarm's
        # per-deploy login lives until its stacks are deployed: the nodes pull with it)
        for s in stacks:
            if s.name in unpinned:
                prog.step("fetch_stack", s.name, target.compose(s), target.project(s))
        prog.step("registry_logout")
    prog.step("preflight_stacks")
    for pin in sorted(set((intent.infra or {}).values())):   # (after preflight: a refused rollback moves no tag)
        prog.step("infra_pin", pin)
    for s in target.system.binaries(stacks):   # installed once preflight passed: a refused deploy leaves none
        prog.head["ARTIFACTS"] = target.artifacts
        prog.step("fetch_binary", s.name, (intent.tags or {}).get(s.name, ""), (intent.artifacts or {}).get(s.name, ""),
                  (intent.pins or {}).get(s.name, ""), *history.good_pins(list(releases), s.name))
    if snapshot:
        restore_before_rollback(prog, target, list(snapshot), stacks)
    else:
        before_deploy(prog, target)
    prog.step("config_snapshot", *[w for f in sorted(intent.untouched.files.items()) for w in f])
    prog.step("record", "deploying").step("go_live")
    for s in target.system.binaries(stacks):   # only once the release is live: the one before stays
        prog.step("prune_releases", s.name, *history.good_pins(list(releases), s.name))
    return after_deploy(prog, target)


@report
def look_program(target: Target, stacks: list[Stack], intent: Intent) -> Program:
    """--dry-run's read-only look at the host: preflight with this release's pins (a digest not pulled yet is a
    stand-in: compose config only reads it), for the volumes each stack will use and what would refuse the
    deploy. Nothing is locked, pulled, written or started."""
    prog = add_checked_stacks(Program(f"look before {intent.action} {intent.tag} on {target.label}",
                                      {"OWN_PROJECTS": " ".join(target.host.projects())}), target, stacks)
    for a in target.system.apps(stacks):   # (declared, never fetched: preflight checks the image lines)
        tag = (intent.tags or {}).get(a.name, "dry-run")
        prog.step("add_image", a.name, target.image_repo(a), "", "")
        prog.step("use_pin", a.name, (intent.pins or {}).get(a.name) or f"{tag}@sha256:{'0' * 64}")
    return prog.step("preflight_report")


@report
def looked(result: Result) -> tuple[list[tuple[str, str, str]], list[str]]:
    """What a look found: (stack, volume, exists|new) for every named volume, and the problems that would
    refuse the deploy."""
    return ([fields(d, "stack", "name", "result") for d in result.all("volume")],
            [fields(d, "text")[0] for d in result.all("problem")])


@report
def unchecked(result: Result) -> list[str]:
    """The services a deploy found running without a healthcheck (``project/service``, once each, sorted)."""
    return sorted({"/".join(fields(d, "project", "service")) for d in result.all("unchecked")})


@report
def unset(result: Result) -> list[str]:
    """The variables a stack's compose file uses that its .env does not set (``stack:VARIABLE``); compose
    gives them an empty string."""
    return [":".join(fields(d, "stack", "variable")) for d in result.all("unset")]


@report
def new_volumes(result: Result) -> list[str]:
    """The named volumes preflight found missing, which compose created empty (``stack:volume``)."""
    return [":".join(fields(d, "stack", "name")) for d in result.all("volume") if d["result"] == "new"]


@report
def config_differences(recorded: dict, result: Result) -> list[str]:
    """The files whose hash differs between a recorded configuration and the one a run reported (``config``),
    and a different commit of repo/; nothing when the release recorded no configuration."""
    now = result.one("config")
    if not recorded or now is None:
        return []
    files, then = now["files"], recorded.get("files", {})
    differ = sorted(p for p in set(files) | set(then) if files.get(p) != then.get(p))
    if recorded.get("commit") and now["commit"] != recorded["commit"]:
        differ.insert(0, f"repo/ commit {now['commit'][:10] or 'none'} (recorded {recorded['commit'][:10]})")
    return differ
