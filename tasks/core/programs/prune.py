"""The prune program (sh/prune.sh): a system's old app images, untagged images, stopped containers of its
projects and the build cache, said with their sizes and, unless only listed, removed under the system's lock;
and what it reported, read into rows and the space freed."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..target import Target
from .declare import Intent
from .protocol import Program, Result, count, fields, report

DEFAULT_KEEP = 5


def prune_program(target: Target, keep: int, remove: bool, intent: Intent | None, host_wide: bool) -> Program:
    """Prune ``target``'s system: with ``remove`` under its lock (``intent`` names the run in the lock and
    audit), else read-only. ``host_wide``: also what belongs to no system (untagged images, the build cache):
    once per host."""
    mode = "remove" if remove else "list"
    head = {"STATE": target.state_dir, "SYSTEM": target.system.name, **(intent.head() if remove and intent else {})}
    prog = Program(f"prune of {target.label}", head)
    if remove:
        prog.step("begin").step("need_docker").step("lock_take").step("docker_room")
    prog.step("prune_images", target.host.root, keep, mode, *image_repos(target))
    prog.step("prune_containers", mode, *[target.project(s) for s in target.system.stacks if not s.binary])
    if host_wide:
        prog.step("prune_untagged", mode).step("prune_cache", mode)
    return prog.step("docker_room") if remove else prog


def after_deploy(prog: Program, target: Target) -> Program:
    """``prune: {keep: N}``: the system's old images pruned once a deploy is live (a failure only said)."""
    if target.system.prune and image_repos(target):
        prog.step("prune_after_deploy", target.host.root, target.system.prune, *image_repos(target))
    return prog


def image_repos(target: Target) -> list[str]:
    """The repositories of the system's apps, once each: the only images prune_images looks at."""
    return sorted({target.image_repo(a) for a in target.system.apps()})


@dataclass(frozen=True)
class Pruned:
    """One thing a prune looked at: what (image, untagged, container, cache), its name, its size, and what
    happened (gone, would, kept, failed) and why."""
    what: str
    name: str
    bytes: int
    result: str
    why: str = ""


@report
def pruned(result: Result) -> list[Pruned]:
    """What the program reported, the build cache last (its size is docker's own rounded figure)."""
    rows = []
    for d in result.all("pruned"):
        what, name, size, outcome = fields(d, "what", "name", "bytes", "result")
        rows.append(Pruned(what, name, count(size), outcome, d.get("why", "")))
    cache = result.one("prune_cache")
    if cache:
        size, outcome = fields(cache, "size", "result")
        rows.append(Pruned("cache", "build cache", human_bytes(size), outcome))
    return rows


_HUMAN = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([kKMGT]?i?B)")
_UNITS = {"B": 1, "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
          "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}


def human_bytes(text: str) -> int:
    """Bytes from docker's rounded sizes ("1.2GB", "512kB", "0B")."""
    found = _HUMAN.fullmatch(text.strip())
    if not found or found[2] not in _UNITS:
        raise ValueError(f"not a size: {text[:40]!r}")
    return int(float(found[1]) * _UNITS[found[2]])


def held(rows: list[Pruned]) -> int:
    """The bytes the rows that went (or would go) held, each counted whole: at most what they free (images
    share layers)."""
    return sum(r.bytes for r in rows if r.result in ("gone", "would"))


@report
def freed(result: Result) -> int | None:
    """The space a prune freed, measured: the free bytes under Docker's root after it less before it."""
    rooms = [count(fields(d, "bytes")[0]) for d in result.all("docker_room")]
    return max(0, rooms[-1] - rooms[0]) if len(rooms) >= 2 else None
