"""The plan of a deploy or rollback (``--plan``): one read-only program per target (nothing locked, pulled,
logged in to or written) and what it found, put beside what hosts.yml says the run does: each app's pin now and
after, the files whose hash changes, the stacks brought up and those left as they run, the jobs it runs, the
backups it takes and the lock it needs."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .. import grammar, history
from ..model import Stack
from ..target import Target
from .declare import Intent
from .deploy import add_checked_stacks, config_differences
from .protocol import Program, Result, fields, report
from .state import Current, Lock, lock_holder, state_reader


@dataclass
class Plan:
    """What one run would do on one target; ``problems`` are what would refuse it (preflight's)."""
    target: str
    action: str
    release: str                                        # the label it would record
    apps: list[dict] = field(default_factory=list)      # {"app", "now", "after", "why"}: pins now -> after
    stacks: list[dict] = field(default_factory=list)    # {"stack", "action": up|kept}
    files: list[str] = field(default_factory=list)      # configuration files whose hash differs from what runs
    jobs: list[str] = field(default_factory=list)       # "stack/name (when)"
    backups: list[str] = field(default_factory=list)    # the database stacks backed up before anything changes
    lock: str = ""                                      # the lock it takes, and who holds it now
    problems: list[str] = field(default_factory=list)   # what preflight would refuse
    notes: list[str] = field(default_factory=list)      # what the plan could not foresee

    def as_dict(self) -> dict:
        return asdict(self)


def plan_program(target: Target, stacks: list[Stack], intent: Intent, per_deploy: bool = False) -> Program:
    """The read-only look behind a plan: the state (history, current, lock), each app's pin after the run (a
    tag's digest asked of the registry, with the token the run would use: ``per_deploy`` as deploy_program),
    each stack's fate as the deploy would decide it, and the hashes of the configuration files as they are now."""
    private = target.system.needs_token
    head = {"SYSTEM": target.system.name, "OWN_PROJECTS": " ".join(target.host.projects()), "BASE": target.base,
            "REPO": target.path("repo"),
            **({"REGISTRY_USER": target.host.registry.username, **target.token_head(per_deploy)} if private else {})}
    prog = add_checked_stacks(state_reader(f"plan of {intent.action} {intent.tag} on {target.label}", target, head),
                              target, stacks)
    if target.brings_token(per_deploy):
        prog.step("receive_token")
    for a in target.system.apps(stacks):
        prog.step("add_image", a.name, target.image_repo(a), (intent.tags or {}).get(a.name, ""),
                  (intent.pins or {}).get(a.name, ""))
    for s in target.system.binaries(stacks):
        pin = _binary_pin(intent, s.name)
        if pin:
            prog.step("use_pin", s.name, pin)
    prog.step("show_state").step("plan_pins").step("plan_stacks")
    return prog.step("config_snapshot", *[w for f in sorted(intent.untouched.files.items()) for w in f])


def _binary_pin(intent: Intent, name: str) -> str:
    """A binary stack's pin after the run: the one it keeps (or a rollback's), else the uploaded file's."""
    if name in (intent.pins or {}):
        return intent.pins[name]
    sha = (intent.artifacts or {}).get(name)
    return f"{(intent.tags or {})[name]}@sha256:{sha}" if sha else ""


@report
def plan_of(target: Target, stacks: list[Stack], intent: Intent, result: Result) -> Plan:
    """What the plan program found, beside what hosts.yml says this run does."""
    releases = history.parse("\n".join(result.text.get("history", [])))
    current = Current.parse(result)
    running = next((r for r in releases if r.id == current.release), None)
    apps = [_row(d, "app", "now", "after", "why") for d in result.all("plan_pin")]
    for a in apps:
        if not (grammar.SAFE_NAME.fullmatch(a["app"]) and (not a["now"] or grammar.PIN.fullmatch(a["now"]))):
            raise ValueError(f"a damaged pin report: {a['app'][:40]}")
    held = lock_holder(result)
    lock = f"{target.state_dir}/lock ({_lock_now(held)})"
    return Plan(target.label, intent.action, intent.tag, apps,
                [_row(d, "stack", "action") for d in result.all("plan_stack")],
                [f for f in config_differences(running.config if running else {}, result) if f],
                [f"{s.name}/{j.name} ({j.when})" for s in stacks for j in s.jobs] if intent.jobs else [],
                [s.name for s in stacks if s.database] if target.system.backup.before_deploy else [],
                lock, [fields(d, "text")[0] for d in result.all("problem")],
                [f"repo/ moves to {intent.ref} first: the files and stacks above are read as repo/ is now"]
                if intent.ref else [])


def _lock_now(held: Lock | None) -> str:
    """Who holds the lock the run needs, and what the run would do about it."""
    if held is None:
        return "free now"
    then = "the run takes it over" if held.gone else "the run would be refused (exit 3) until it is free"
    return f"now {held.describe()}: {then}"


def _row(data: dict, *keys: str) -> dict:
    """The string fields ``keys`` of one reported object."""
    return dict(zip(keys, fields(data, *keys), strict=True))
