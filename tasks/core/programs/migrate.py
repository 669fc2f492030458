"""The migrate-layout programs: survey (read-only), the migration itself, and removing the old copies; with
what the survey reports read into typed facts (old stacks, their pins, refusals, disk space)."""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from .. import grammar
from ..target import Target
from .declare import Intent, add_stacks
from .protocol import Program, Result, fields, report
from .setup import add_hierarchy


@dataclass
class OldProject:
    """A compose project running from the old repo, as `docker ps` labels describe it."""
    name: str
    workdir: str
    files: str
    images: dict = field(default_factory=dict)   # service -> (image reference, tag@digest or "")

    def line(self) -> str:
        return f"{self.name}\t{self.workdir}\t{self.files}"


@dataclass
class Survey:
    migrated: str | None               # when the migration completed, if it did
    refusals: list[str]
    need: int                          # bytes to copy
    avail: int                         # bytes free
    projects: list[OldProject]         # what runs from the old paths (plus what a killed run saw)
    saved_pins: dict                   # pins a killed run saved before it changed anything

    @classmethod
    @report
    def parse(cls, result: Result) -> Survey:
        migrated = result.one("migrated")
        space = result.one("space") or {}
        projects: dict[str, OldProject] = {}
        for d in result.all("old"):
            name, workdir, files, service, ref, pin = fields(d, "project", "workdir", "files", "service", "ref", "pin")
            proj = projects.setdefault(name, OldProject(name, workdir, files))
            proj.images[service] = (ref, pin if grammar.PIN.fullmatch(pin) else "")
        for d in result.all("saved_old"):  # its old stacks may already be down: what runs now wins
            name, workdir, files = fields(d, "project", "workdir", "files")
            projects.setdefault(name, OldProject(name, workdir, files))
        return cls(migrated["at"] if migrated else None, [d["reason"] for d in result.all("refuse")],
                   int(space.get("need") or 0), int(space.get("avail") or 0), list(projects.values()),
                   {d["app"]: d["pin"] for d in result.all("saved_pin") if grammar.PIN.fullmatch(d["pin"])})

    @report
    def pins(self, target: Target) -> dict[str, str]:
        """The tag@digest each app stack ran under the old layout (matched by the repo folder its old project
        ran from), over what a killed run saved: the new stacks come up on the same images."""
        pins = dict(self.saved_pins)
        for stack in target.system.stacks:
            folder = posixpath.dirname(posixpath.relpath(stack.compose, "repo"))
            for app in stack.apps:
                repo = target.image_repo(app)
                for proj in self.projects:
                    if posixpath.relpath(proj.workdir, target.legacy.repo) == folder:
                        for ref, pin in proj.images.values():
                            if ref.startswith(repo + ":") and pin:
                                pins[app.name] = pin
        return pins


def _head(target: Target) -> dict:
    """What survey and the migration both read: where things are, what to copy, the volumes to keep."""
    return {"BASE": target.base, "STATE": target.state_dir, "ACTION": "migrate-layout",
            "VOLUMES": list(target.legacy.volumes), "COPIES": _copies(target)}


def _copies(target: Target) -> list[str]:
    return [f"{n}\t{src}\t{dst}" for n, src, dst in target.migration_copies()]


def survey_program(target: Target) -> Program:
    """Read-only: is it migrated, what would be refused, what runs from the old paths and with which images."""
    return Program(f"migrate-layout survey on {target.label}", {**_head(target), "OLD_REPO": target.legacy.repo}) \
        .step("survey")


def migrate_program(target: Target, survey: Survey, pins: dict, intent: Intent) -> Program:
    """Copy and verify, stop the old stacks, start the new ones in order on the same images, health-gate,
    check the volumes; on failure the old stacks come back. Markers in state/migration make it resumable."""
    head = {**_head(target), **intent.head(), "SYSTEM": target.system.name,
            "OLD_PROJECTS": [p.line() for p in survey.projects]}
    prog = Program(f"migrate-layout on {target.label}", head)
    for step in ("begin", "need_docker", "migrated_already", "lock_take", "migration_checks_or_die"):
        prog.step(step)
    prog.step("save_plan", *[f"pin {name} {pin}" for name, pin in pins.items()],
              *[f"old {p.line()}" for p in survey.projects])
    add_hierarchy(prog.step("copy_all"), target)
    moved = [(src, dst) for name, src, dst in target.migration_copies() if name != "repo"]
    for s in target.system.stacks:  # seed 001 step 4: the .env values that point into the old folders
        for src, dst in moved:
            prog.step("repoint_env", target.env_file(s), src, dst)
    add_stacks(prog, target, list(target.system.stacks))
    for name, pin in pins.items():
        prog.step("use_pin", name, pin)
    return prog.step("switch_over")


def remove_old_program(target: Target) -> Program:
    """After a completed migration, delete the old copies the migration kept (an explicit operator request)."""
    head = {"STATE": target.state_dir, "SYSTEM": target.system.name, "COPIES": _copies(target)}
    return Program(f"migrate-layout --remove-old on {target.label}", head).step("remove_old")
