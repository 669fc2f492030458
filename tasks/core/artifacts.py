"""The files a deploy sends for its binary stacks (seed 003's Go binary): which file goes to which stack
(``--artifact``), their sha256 and size, computed here before anything connects, and their upload over the
deploy's own SSH connection (named by their sha256: a host that has the bytes already is not sent them again;
the deploy program checks the sha256 before it installs anything)."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from .errors import BAD_INPUT, ToolError
from .model import Stack
from .ssh import Session
from .target import Target
from .ui import console, safe, transfer


@dataclass(frozen=True)
class Artifact:
    path: str
    sha256: str
    size: int

    @classmethod
    def read(cls, path: str) -> Artifact:
        if not os.path.isfile(path):
            raise ToolError(f"--artifact {path}: no such file", BAD_INPUT)
        digest, size = hashlib.sha256(), 0
        try:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
                    size += len(block)
        except OSError as e:   # (/proc/self/mem: a file that cannot be read through)
            raise ToolError(f"--artifact {path}: cannot be read ({e.strerror})", BAD_INPUT) from None
        if size != os.path.getsize(path):
            raise ToolError(f"--artifact {path}: not a regular file whose size holds still (it changed while "
                            "read, or is a special file)", BAD_INPUT)
        return cls(path, digest.hexdigest(), size)


def chosen(value: str | None, target: Target, stacks: list[Stack], tags) -> dict[str, Artifact]:
    """--artifact for this deploy of ``target``: PATH when it has one binary stack, else stack=PATH pairs;
    each needs the tag of its build (from --tag). Binary stacks left out keep what runs."""
    if value is None:
        return {}
    binaries = [s.name for s in target.system.binaries(stacks)]
    if not binaries:
        raise ToolError(f"--artifact: this deploy of {target.label} has no binary stack (binary: in hosts.yml)",
                        BAD_INPUT)
    pairs = {}
    for part in value.split(","):
        name, _, path = part.partition("=")
        if path and name in binaries:
            pairs[name] = path
        elif len(binaries) == 1 and len(value.split(",")) == 1:
            pairs[binaries[0]] = part
        else:
            raise ToolError(f"--artifact {part!r}: name the binary stack it is for (stack=PATH; binary stacks: "
                            f"{', '.join(binaries)})", BAD_INPUT)
    untagged = [n for n in pairs if not (isinstance(tags, str) or (isinstance(tags, dict) and n in tags))]
    if untagged:
        raise ToolError(f"--artifact for {', '.join(untagged)} needs the tag of this build: --tag TAG "
                        f"(or {untagged[0]}=TAG)", BAD_INPUT)
    return {name: Artifact.read(path) for name, path in pairs.items()}


def upload(session: Session, target: Target, files: dict[str, Artifact]) -> None:
    """Send each file to the host's artifacts folder, with a progress bar at a terminal."""
    for name, f in files.items():
        with transfer(f"{target.label}: {name} ({f.size / 1048576:.1f} MiB)", f.size) as progress:
            sent = session.upload(f.path, target.artifacts, f.sha256, progress)
        what = "uploaded" if sent else "already on the host, not sent again"
        console.print(f"  [green]✓[/] [bold]{safe(target.label)}[/] {safe(name)}: {safe(f.path)} "
                      f"(sha256 {f.sha256[:12]}) {what}")
