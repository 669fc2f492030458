"""Several hosts as one transaction (a fleet run).

Before anything changes, every host is reached (its key checked) and, when there is more than one, its lock is
taken for the run, host by host in name order: any refusal releases what was taken and changes nothing. Then
hosts change in stages (a host's stage is where its first stack comes in its system's order, so the database
hosts go before the app hosts), in parallel within a stage (``--parallel``) and in rolling batches
(``--batch``), each host behind its own health gate. A host that fails stops the run: no new host starts, and
the hosts this run already switched get the release they ran before (``--no-revert`` keeps them). The result
is one row per host and system (switched, reverted, untouched, failed) and the worst exit code.

Worker threads only run programs and post events; the main thread shows them (``events.Events``).
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from . import history
from .cli import Selection, new_release_id, operator, run_release
from .errors import BAD_INPUT, FAILED, NEEDS_ATTENTION, ToolError, worst
from .events import Events
from .grammar import redact
from .model import Stack
from .programs.declare import Intent
from .programs.deploy import deploy_program, going_back
from .programs.protocol import Program, Result, execute
from .programs.state import free_program, hold_program, read_state, switched_from
from .ssh import Session
from .target import Target
from .ui import Outcome, console, outcome_table, safe

RESULTS = ("switched", "kept", "reverted", "failed", "revert failed", "untouched")   # a leg's end, in this order
MAX_PARALLEL = 32   # connections at once when --parallel is not given (a wider fleet goes in waves)


def _number(text) -> bool:
    """ASCII digits only: str.isdigit() also says yes to '²', which int() then refuses with a traceback."""
    return re.fullmatch(r"[0-9]{1,6}", str(text)) is not None


@dataclass(frozen=True)
class Rollout:
    """How a fleet run proceeds: at most ``parallel`` hosts at once, in batches of ``batch`` (a count or a
    percentage of a stage's hosts) with the health gate between them, and whether a failure reverts."""
    parallel: int | None = None
    batch: str | None = None
    revert: bool = True

    @classmethod
    def parse(cls, parallel, batch, no_revert) -> Rollout:
        """The options as given on the command line, checked (exit 2 before anything connects)."""
        if parallel is not None and (not _number(parallel) or not 1 <= int(parallel) <= 256):
            raise ToolError(f"--parallel must be a number of hosts from 1 to 256, not {parallel!r}", BAD_INPUT)
        if batch is not None:
            number = str(batch).removesuffix("%")
            if not _number(number) or not 1 <= int(number) <= (100 if str(batch).endswith("%") else 10000):
                raise ToolError(f"--batch must be a number of hosts (e.g. 1) or a percentage (e.g. 25%), not "
                                f"{batch!r}", BAD_INPUT)
        return cls(int(parallel) if parallel is not None else None, batch and str(batch), not no_revert)

    def batches(self, hosts: list) -> list[list]:
        """``hosts`` (one stage's) cut into the rolling batches."""
        if not self.batch:
            return [hosts] if hosts else []
        if self.batch.endswith("%"):
            size = max(1, math.ceil(len(hosts) * int(self.batch[:-1]) / 100))
        else:
            size = int(self.batch)
        return [hosts[i:i + size] for i in range(0, len(hosts), size)]

    def width(self, count: int) -> int:
        return max(1, min(count, self.parallel or MAX_PARALLEL))


@dataclass
class Leg:
    """One system of one host in a run (a leg of it): the program that changes it, and what happened."""
    target: Target
    program: Program
    intent: Intent
    stage: int
    result: str = "untouched"      # one of RESULTS
    detail: str = ""
    code: int = 0
    previous: str | None = None    # the release it ran before this run switched it
    notes: Callable[[Result], list[str]] | None = None   # warnings worth showing once it succeeded

    @property
    def host(self) -> str:
        return self.target.host.name


# What a revert runs on a host this run switched: a program that puts ``previous`` (a release id) back in
# place of the release the run made there (its intent).
Revert = Callable[[Session, Target, str, Intent], Program]


def put_back(session: Session, target: Target, previous: str, undone: Intent) -> Program:
    """The revert of a host this run switched when another host failed: a rollback to ``previous``, the
    release it ran before, by its recorded digests and commit; once that is live, the run's release is
    recorded ``reverted`` on the host (it passed its gate there, but the fleet took it back: a later plain
    rollback must not return to it)."""
    state = read_state(session, target)
    intent, stacks = going_back(state, history.find_good(state.releases, previous), target, *operator(),
                                new_release_id(), undone.fleet)
    return deploy_program(target, stacks, intent, reverts=undone, releases=state.releases)


def in_stages(legs: list[Leg]) -> list[list[Leg]]:
    """``legs`` grouped by their stage, in order."""
    stages = sorted({j.stage for j in legs})
    return [[j for j in legs if j.stage == s] for s in stages]


def by_host(legs: list[Leg]) -> list[list[Leg]]:
    """``legs`` grouped by host (a host's systems run one after another, in one worker)."""
    hosts: dict[str, list[Leg]] = {}
    for leg in legs:
        hosts.setdefault(leg.host, []).append(leg)
    return list(hosts.values())


class Run:
    """One task over the selected hosts: a single host runs as it always has (its program takes and frees its
    own lock); several are one transaction."""

    def __init__(self, sel: Selection, targets: list[Target], action: str, rollout: Rollout = Rollout(),
                 json: bool = False):
        self.sel, self.targets, self.action, self.rollout = sel, targets, action, rollout
        self.hosts = list(dict.fromkeys(t.host.name for t in targets))
        self.transaction = len(self.hosts) > 1
        self.release = new_release_id()
        self.fleet = self.release if self.transaction else ""
        self.events = Events(json)
        self.json = json
        self.stopping = False

    def stage_of(self, target: Target, stacks: list[Stack]) -> int:
        """Where ``target``'s part comes: the position of its first stack in its system's order."""
        return min((self.sel.inventory.order(target.system.name, s.name) for s in stacks), default=0)

    def reach(self) -> None:
        """Open every host's session at once (keys checked); the first host that cannot be reached stops the
        run before anything changed."""
        first = {}
        for target in self.targets:
            first.setdefault(target.host.name, target)
        errors = [e for e in self.events.parallel(list(first.values()), self._open, MAX_PARALLEL) if e]
        if errors:
            raise ToolError("; ".join(str(e) for e in errors) + "\nnothing was changed on any host",
                            worst(e.code for e in errors))

    def _open(self, target: Target) -> ToolError | None:
        try:
            self.sel.session(target)
            return None
        except ToolError as e:
            return e

    def go(self, legs: list[Leg], revert: Revert = put_back) -> None:
        """Change every leg's host (see the module's docstring); a failure is raised once every host has
        finished and been reverted."""
        if not self.transaction and not self.json:
            for leg in legs:
                result = run_release(self.sel.session(leg.target), leg.target, leg.intent, leg.program)
                for note in leg.notes(result) if leg.notes else []:
                    console.print(f"[yellow]⚠ {safe(leg.target.label)}: {safe(note)}[/]")
            return
        self.events.open()
        self.events.post("plan", fleet=self.fleet, release=self.release, action=self.action,
                         stages=[[j.target.label for j in stage] for stage in in_stages(legs)])
        try:
            self._hold(legs)
            self._forward_all(legs)
            if self.stopping:
                self._undo(legs, revert)
        finally:
            if self.transaction:
                self.events.parallel([j.target for j in legs], self._free, MAX_PARALLEL)
            self.events.close()
        self._result(legs)

    def _forward_all(self, legs: list[Leg]) -> None:
        """Stage by stage, batch by batch, each batch's hosts in parallel, until a host fails."""
        for stage in in_stages(legs):
            for batch in self.rollout.batches(by_host(stage)):
                self.events.parallel(batch, self._forward, self.rollout.width(len(batch)))
                if self.stopping:
                    return

    def _hold(self, legs: list[Leg]) -> None:
        """Take every host's lock for the run, in host-name order; on a refusal ``go`` frees those taken (nothing
        changed)."""
        if not self.transaction:
            return
        for leg in sorted(legs, key=lambda j: (j.host, j.target.system.name)):
            try:
                execute(self.sel.session(leg.target), hold_program(leg.target, leg.intent), leg.target.label,
                        quiet=True)
            except ToolError as e:
                self.events.post("host", host=leg.host, system=leg.target.system.name, result="refused", detail=str(e))
                raise ToolError(f"{e}\nnothing was changed on any host (every lock this run took is released)",
                                e.code) from None

    def _free(self, target: Target) -> None:
        try:
            execute(self.sel.session(target), free_program(target, self.fleet), target.label, quiet=True)
        except ToolError as e:
            self.events.post("info", host=target.host.name, system=target.system.name,
                             text=f"could not release the run's lock ({e}): 'fab unlock --force' does")

    def _forward(self, legs: list[Leg]) -> None:
        """One host's legs, in order; the first that fails stops the host and the run."""
        for leg in legs:
            if self.stopping:
                return
            try:
                result = execute(self.sel.session(leg.target), leg.program, leg.target.label,
                                 display=self.events.display(leg.target))
                leg.result, leg.detail, leg.previous = "switched", f"{leg.intent.tag} is live", switched_from(result)
                for note in leg.notes(result) if leg.notes else []:
                    self.events.post("info", host=leg.host, system=leg.target.system.name, text=f"⚠ {note}")
            except ToolError as e:
                self.stopping = True
                leg.result, leg.detail, leg.code = "failed", str(e), e.code
            except Exception as e:  # noqa: BLE001 - one host's surprise must not hide the others' results
                self.stopping = True
                leg.result, leg.detail, leg.code = "failed", redact(f"unexpected {type(e).__name__}: {e}"), FAILED
            self.events.post("host", host=leg.host, system=leg.target.system.name, result=leg.result, detail=leg.detail)

    def _undo(self, legs: list[Leg], revert: Revert) -> None:
        """Put back what every switched host ran before, the last stage first (or keep them: --no-revert)."""
        switched = [j for j in legs if j.result == "switched"]
        if not self.rollout.revert:
            for leg in switched:
                leg.result, leg.detail = "kept", f"{leg.detail} (kept: --no-revert)"
            return
        for stage in reversed(in_stages(switched)):
            self.events.parallel(by_host(stage), lambda host_jobs: self._back(host_jobs, revert),
                                 self.rollout.width(len(stage)))

    def _back(self, legs: list[Leg], revert: Revert) -> None:
        for leg in legs:
            if leg.previous is None:   # its first release: there is nothing to go back to
                leg.result, leg.detail = "kept", f"{leg.detail} (its first release: nothing ran before it)"
            else:
                try:
                    session = self.sel.session(leg.target)
                    program = revert(session, leg.target, leg.previous, leg.intent)
                    program.tail = leg.program.tail if "receive_token" in program.step_names else ""  # (its token)
                    execute(session, program, leg.target.label, display=self.events.display(leg.target))
                    leg.result, leg.detail = "reverted", f"{leg.intent.tag} was live; the release before it is back"
                except ToolError as e:
                    leg.result, leg.detail, leg.code = "revert failed", str(e), NEEDS_ATTENTION
            self.events.post("host", host=leg.host, system=leg.target.system.name, result=leg.result, detail=leg.detail)

    def _result(self, legs: list[Leg]) -> None:
        outcomes = [Outcome(j.host, j.target.system.name, j.result in ("switched", "kept"), redact(j.detail), j.code,
                            result=j.result) for j in legs]
        code = worst(j.code for j in legs)
        self.events.post("result", fleet=self.fleet, release=self.release, exit=code,
                         hosts=[{"host": o.host, "system": o.system, "result": o.result} for o in outcomes])
        self.events.drain()
        if not self.json:
            outcome_table(f"{self.action} {self.release}", outcomes)
        if code:
            counts = [(sum(j.result == r for j in legs), r) for r in RESULTS]
            raise ToolError(f"{self.action} {self.release}: " + ", ".join(f"{n} {r}" for n, r in counts if n), code)
