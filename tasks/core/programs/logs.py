"""The logs program (sh/logs.sh): what a system's stacks said, a compose stack's containers or a binary's unit,
each line led by its stack; and the parser of those lines."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..model import Stack
from ..target import Target
from .declare import add_stacks
from .protocol import Program

# docker compose logs leads each line with the container's service and number: "backend-2  | text"; docker
# service logs (a swarm stack's, its namespace taken off by the program) with the task's slot and node:
# "backend.2@sw3    | text"
_COMPOSE_LINE = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9_.@-]*)\s+\| ?(?P<text>.*)")


@dataclass(frozen=True)
class Since:
    """--since, as each reader takes it: docker's (600s, 2026-12-05T14:30) and journalctl's (-600s, 2026-12-05
    14:30)."""
    docker: str = ""
    journal: str = ""


def logs_program(target: Target, stacks: list[Stack], service: str, tail: int, since: Since, follow: bool) -> Program:
    """Read-only: the last ``tail`` lines of each of ``stacks`` (``service`` only, when given), then with
    ``follow`` what comes next until the operator's machine goes."""
    prog = add_stacks(Program(f"logs of {target.label}", {"LOG_READERS": []}), target, stacks)
    for s in stacks:
        prog.step("logs_show", s.name, service, tail, since.journal if s.binary else since.docker,
                  "follow" if follow else "once")
    return prog.step("logs_wait") if follow else prog


def log_line(line: str, binaries: set[str]) -> tuple[str, str]:
    """A line of the program: (where it comes from below the target: the stack, and for a compose stack its
    container's service and number; what it said). ``binaries``: the stacks whose lines are journalctl's."""
    stack, tab, text = line.partition("\t")
    if not tab:
        return "", line
    found = None if stack in binaries else _COMPOSE_LINE.fullmatch(text)
    return (f"{stack}/{found['name']}", found["text"]) if found else (stack, text)
