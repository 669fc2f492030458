"""Read-only programs about a system's state (its release history, the running release, the lock, what runs)
and unlock: the builders, and the parsers that turn what they report into typed facts."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from .. import grammar, history
from ..ssh import Session
from ..target import Target
from .declare import Intent
from .protocol import Program, Result, execute, fields, report


@dataclass
class Current:
    """The running good release (state/current): its id, tag and pins."""
    release: str | None = None
    tag: str | None = None
    pins: dict = field(default_factory=dict)

    @classmethod
    @report
    def parse(cls, result: Result) -> Current:
        data = result.one("current") or {}
        pins = {d["app"]: d["pin"] for d in result.all("current_pin")}
        bad = [f"{a} {p}" for a, p in pins.items() if not grammar.SAFE_NAME.fullmatch(a) or not grammar.PIN.fullmatch(p)]
        for key, rule in (("release", grammar.RELEASE_ID), ("tag", grammar.LABEL)):
            if data.get(key) and not rule.fullmatch(data[key]):
                bad.append(f"{key} {data[key]}")
        if bad:   # (a kept pin reaches the next release's label, history and lock: never a line of anything)
            raise ValueError(f"state/current is damaged: {'; '.join(bad)[:200]}")
        return cls(data.get("release") or None, data.get("tag") or None, pins)


@dataclass
class Lock:
    """The deploy lock: who holds it; when its program died, how (``gone``); when that was a deploy or a
    rollback, the stacks it may have left on its release, unverified (``interrupted``)."""
    holder: str
    gone: str = ""
    interrupted: str = ""

    def describe(self) -> str:
        """The lock as status says it (markup-free: the caller escapes)."""
        if self.interrupted:
            return (f"interrupted: {self.holder}: {self.gone}; its stacks ({self.interrupted}) may run its release "
                    "unverified: the next deploy or rollback of them finishes it")
        if self.gone:
            return f"held by {self.holder} (stale: {self.gone}; 'fab unlock --force' releases it)"
        return f"held by {self.holder}"


@dataclass
class State:
    """What rollback and releases need: the history, its checksum (a rollback refuses if it changed), the
    running release and the lock."""
    releases: list
    current: Current
    history_sha: str
    lock: Lock | None


def lock_holder(result: Result) -> Lock | None:
    lock = result.one("lock")
    if not lock:
        return None
    holder, stale, gone, interrupted = fields(lock, "holder", "stale", "gone", "interrupted")
    return Lock(holder, gone if stale == "1" else "", interrupted if stale == "1" else "")


def state_reader(name: str, target: Target, head: dict | None = None) -> Program:
    """A program that reads ``target``'s state: a swarm system's first brought up to the swarm's newest."""
    if target.system.engine != "swarm":
        return Program(name, {"STATE": target.state_dir, **(head or {})})
    return Program(name, {"STATE": target.state_dir, "SYSTEM": target.system.name, **(head or {})}).step(
        "swarm_read_state")


def read_state_program(target: Target) -> Program:
    return state_reader("read-state", target).step("show_state")


def read_state(session: Session, target: Target) -> State:
    """History, current pins and lock of ``target``, in one round trip; a damaged history is an error."""
    res = execute(session, read_state_program(target), target.label, quiet=True)
    source = f"{target.host.name}:{target.state_dir}/releases.jsonl"
    return State(history.parse("\n".join(res.text.get("history", [])), source), Current.parse(res),
                 (res.one("history") or {}).get("sha256", ""), lock_holder(res))


def read_current(session: Session, target: Target) -> Current:
    """The running release and its pins (without the history)."""
    prog = state_reader("read-current", target).step("show_current")
    return Current.parse(execute(session, prog, target.label, quiet=True))


@dataclass
class StackStatus:
    name: str
    containers: list[dict]

    def replicas(self, scale: dict[str, int]) -> list[tuple[str, int, int]]:
        """(service, healthy, wanted) for each service with replicas: ``scale`` from hosts.yml, else as many
        as run. Healthy: running, and healthy where the service has a healthcheck."""
        by_service: dict[str, list[dict]] = {}
        for ctr in self.containers:
            by_service.setdefault(str(ctr.get("Service", "?")), []).append(ctr)
        out = []
        for service in sorted(set(by_service) | set(scale)):
            ctrs = by_service.get(service, [])
            wanted = scale.get(service, len(ctrs))
            if wanted > 1 or service in scale:
                healthy = sum(1 for c in ctrs if c.get("State") == "running" and c.get("Health") in ("healthy", "", None))
                out.append((service, healthy, wanted))
        return out


@dataclass
class Status:
    current: Current
    lock: Lock | None
    stacks: list[StackStatus]
    token_mode: str | None        # None: the token file is missing
    token_mtime: int = 0
    token_rotated: float | None = None   # when rotate-token last wrote it (epoch seconds), if it did
    units: list[dict] = field(default_factory=list)   # binary stacks: unit, state, sub, since, target


def status_program(target: Target) -> Program:
    """The running release, the lock, what runs in each stack and the secrets file's age."""
    prog = state_reader("status", target, {"SECRETS": target.secrets})
    if target.system.needs_docker:
        prog.step("need_docker")
    prog.step("show_current")
    for s in target.system.stacks:
        if s.binary:
            prog.step("show_unit", s.name, f"{s.binary.unit}.service", s.binary.path)
        else:
            prog.step("show_stack", s.name, target.compose(s), target.project(s))
    return prog.step("show_secrets") if target.system.needs_token else prog


@report
def parse_status(result: Result) -> Status:
    secrets, rotated = result.one("secrets") or {"missing": "1"}, result.one("rotated")
    stacks = [StackStatus(d["name"], containers(d.get("containers", ""))) for d in result.all("stack")]
    units = [dict(zip(UNIT_FIELDS, fields(d, *UNIT_FIELDS), strict=True)) for d in result.all("unit_state")]
    return Status(Current.parse(result), lock_holder(result), stacks,
                  None if secrets.get("missing") else secrets["mode"], int(secrets.get("mtime") or 0),
                  rotated_at(rotated), units)


def rotated_at(rotated: dict | None) -> float | None:
    """When rotate-token wrote the token file (state/token-rotated, an ISO time), in epoch seconds; a damaged
    file is a ValueError, read by the caller's @report as a report the tool cannot read (never a traceback)."""
    return datetime.fromisoformat(rotated["at"].replace("Z", "+00:00")).timestamp() if rotated else None


UNIT_FIELDS = ("stack", "unit", "state", "sub", "since", "target")


@report
def containers(raw: str) -> list[dict]:
    """compose ps --format json prints one object per line (v2.21+) or one array (older): accept both, and
    nothing else (every value is read whole by the JSON decoder; no text is split by hand)."""
    decoder, out, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(raw) and raw[i].isspace():
            i += 1
        if i == len(raw):
            return out
        value, i = decoder.raw_decode(raw, i)
        out.extend(value if isinstance(value, list) else [value])


def unlock_program(target: Target) -> Program:
    """Remove the deploy lock deliberately (a stale one: the deploy that held it is gone); a swarm system's is
    also the swarm's."""
    prog = state_reader("unlock", target).step("lock_break")
    return prog.step("swarm_lock_break") if target.system.engine == "swarm" else prog


def hold_program(target: Target, intent: Intent) -> Program:
    """A fleet run's first program on each host: the lock, taken for the whole run (its id in it)."""
    return Program(f"hold the lock of {target.label} for fleet {intent.fleet}",
                   {"STATE": target.state_dir, "SYSTEM": target.system.name, **intent.head()}).step("lock_hold")


def free_program(target: Target, fleet: str) -> Program:
    """A fleet run's last program on each host: its lock released (only if it is still the fleet's)."""
    return Program(f"free the lock of {target.label} held for fleet {fleet}",
                   {"STATE": target.state_dir, "FLEET": fleet}).step("lock_free")


@report
def switched_from(result: Result) -> str | None:
    """The release a deploy or rollback replaced (what a fleet run puts back if another host fails); None when
    nothing ran before it."""
    data = result.one("switched")
    return fields(data, "from")[0] or None if data else None
