"""The recover programs (sh/recover.sh): a lost server's system brought onto another host from a copy off the
VPS: the operator's copy of the restic key put in place and the snapshot's backups, .env files and release
history placed under the new host's folders (fetch); then, once setup has put its folders in place, its
databases and files restored before anything uses them (data). The release itself comes back by the deploy
program, by its recorded digests. And the parser of what the fetch placed."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..model import Stack
from ..target import Target
from .declare import Intent, add_databases, add_files, add_stacks
from .protocol import Program, Result, fields, report


def fetch_program(new: Target, old: Target, repo: str, snapshot: str, intent: Intent) -> Program:
    """Lock on ``new``, the key from stdin, then ``snapshot`` of ``repo`` (taken on ``old``, whose folder the
    snapshot's paths name) placed under ``new``'s folders; an earlier fetch that stopped short is gone on from.
    Nothing runs yet: the data and the release come after."""
    head = {"STATE": new.state_dir, "BACKUPS": new.backups, "BASE": new.base, "SYSTEM": new.system.name,
            "RESTIC_KEY": new.restic_key, **intent.head()}
    return Program(f"recovery of {old.label} onto {new.label}", head).step("begin").step("lock_take").step(
        "recover_key").step("recover_fetch", repo, snapshot, old.base, *_carried(new))


def data_program(new: Target, intent: Intent, databases: list[tuple[Stack, str]], files: str | None) -> Program:
    """Lock, then each database stack's data from its backup (its database service started alone, nothing else
    running), then the files and volumes (a volume made as compose would, for its stack to adopt)."""
    prog = Program(f"data of {new.label} from its copy", {
        "STATE": new.state_dir, "BACKUPS": new.backups, "SYSTEM": new.system.name, **intent.head()})
    add_stacks(prog.step("begin").step("need_docker").step("lock_take"), new, list(new.system.stacks))
    add_databases(prog, new, [stack for stack, _ in databases])
    for stack, name in databases:
        prog.step("recover_data", stack.name, name)
    if files:
        add_files(prog, new).step("files_live", files, "make-volumes")
    return prog


def scratch_program(new: Target) -> Program:
    """Read-only: ``new`` is a scratch host for a drill (no container; the system's files outside its folder
    absent or empty), for the teardown to take away only what the drill made."""
    return Program(f"drill host check on {new.label}").step("recover_scratch", *_outside(new), *_binaries(new))


def teardown_program(new: Target) -> Program:
    """After a drill: the system's stacks down with their volumes (its units stopped and disabled), its state,
    data, secrets, .env files, the paths it restored outside its folder and its binaries' files removed, the
    registry login gone. Nothing locks: the state goes."""
    prog = Program(f"drill teardown on {new.label}", {"STATE": new.state_dir, "BASE": new.base, "KEYS": new.keys,
                                                      "REGISTRY": new.host.registry.server})
    return add_stacks(prog, new, list(new.system.stacks)).step("recover_teardown", *_outside(new), *_binaries(new))


def _outside(target: Target) -> list[str]:
    """The system's backed-up paths outside its folder (absolute ones of ``backup.paths``)."""
    return [p for p in target.system.backup.paths if p.startswith("/")]


def _carried(target: Target) -> list[str]:
    """What the copy holds of the system's binaries (their releases, their units' environment folders), placed
    where it was."""
    return [p for s in target.system.binaries() for p in s.binary.carried]


def _binaries(target: Target) -> list[str]:
    """Everything of the system's binaries on a host: what the copy holds, the live path, the unit file."""
    return [*_carried(target), *(p for s in target.system.binaries() for p in (s.binary.path, s.binary.unit_file))]


@dataclass
class Placed:
    """What a fetch placed on the new host: the snapshot it came from, the backups (newest last in each
    series, as their names sort) and the .env files."""
    snapshot: str = ""
    backups: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)

    def newest(self, series: str) -> str | None:
        """The newest backup of ``series`` (a database stack, or files) that the copy held."""
        names = sorted(p.rsplit("/", 1)[-1] for p in self.backups)
        return next((n for n in reversed(names) if n.startswith(f"{series}-")), None)


@report
def placed(result: Result) -> Placed:
    """What the fetch placed (or an earlier one that stopped short, as its marker lists it)."""
    out = Placed()
    for d in result.all("recovered"):
        kind, path = fields(d, "kind", "path")
        if kind == "snapshot":
            out.snapshot = path
        elif kind == "backup":
            out.backups.append(path)
        elif kind == "env":
            out.env.append(path)
    return out
