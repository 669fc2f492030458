"""fab exec's two halves: the program that finds the running container of a stack's service (sh/exec.sh), and
the `docker exec` command line the operator's command then runs in, each word quoted once for the login shell
SSH always hands a command line to, so it reaches the container exactly as typed."""
from __future__ import annotations

import re

from ..model import Stack
from ..ssh import as_root
from ..target import Target
from .declare import add_stacks
from .protocol import Program, Result, fields, q, report

_CONTAINER_ID = re.compile(r"[0-9a-f]{12,64}")


def exec_program(target: Target, stack: Stack, service: str) -> Program:
    """Read-only: the running container of ``stack``'s ``service`` ("": its only one)."""
    return add_stacks(Program(f"exec in {target.label}/{stack.name}"), target, [stack]).step("exec_find", stack.name,
                                                                                             service)


@report
def found(result: Result) -> tuple[str, str]:
    """(container id, service) the program found."""
    container, service = fields(result.one("exec"), "container", "service")
    if not _CONTAINER_ID.fullmatch(container):
        raise ValueError(f"not a container id: {container[:40]!r}")
    return container, service


def exec_command(target: Target, container: str, words: list[str], terminal: bool) -> str:
    """``docker exec`` of ``words`` in ``container`` (stdin kept open; a terminal when the operator has one), as
    the host runs it (through sudo for a sudo host). No shell inside the container parses the words either."""
    flags = "-it" if terminal else "-i"
    return as_root(target.host, f"docker exec {flags} {container} " + " ".join(q(w) for w in words))
