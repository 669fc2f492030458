"""fab exec: a command in a running container of a stack (psql, celery inspect, a shell), without an SSH
session: on a terminal when the operator has one, its exit code fab's own."""
from __future__ import annotations

import sys

from invoke.exceptions import Exit

from .core import grammar
from .core.attach import attach, has_terminal
from .core.cli import command, select
from .core.errors import BAD_INPUT, ToolError
from .core.programs.exec import exec_command, exec_program, found
from .core.programs.protocol import execute

USAGE = "fab exec --host NAME --stack STACK [--service SERVICE] -- COMMAND [ARGUMENT...]"


@command({"stack": "the stack whose container runs the command",
          "service": "the compose service whose (first running) container runs it (default: the stack's only "
                     "service)"}, name="exec")
def exec_(c, host=None, system=None, stack=None, service=None):
    """Run a command in a running container of a stack: fab exec --host NAME --stack S -- psql -U admin.

    The words after -- reach the container exactly as typed (no shell parses them again); it gets a terminal
    when fab has one; fab exits with the command's exit code."""
    words = command_words(sys.argv)
    if not host or "," in host or not stack:
        raise ToolError(f"exec runs in one container of one host: {USAGE}", BAD_INPUT)
    if service is not None and not grammar.SERVICE.fullmatch(service):
        raise ToolError(f"--service {service!r}: a compose service name (letters, digits, _ . -)", BAD_INPUT)
    with select(host, system) as sel:
        target, chosen = _the_stack(sel.targets, stack)
        session = sel.session(target)
        container, _ = found(execute(session, exec_program(target, chosen, service or ""), target.label, quiet=True))
        terminal = has_terminal()
        code = attach(session, exec_command(target, container, words, terminal), terminal)
    if code:
        raise Exit(code=code)


def command_words(argv: list[str]) -> list[str]:
    """The command's words: those after the first ``--``, as the shell gave them to fab (Invoke keeps only
    their text joined by spaces, which loses where one word ends: "a b" would become two)."""
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        raise ToolError(f"give the command after --: {USAGE}", BAD_INPUT)
    return argv[argv.index("--") + 1:]


def _the_stack(targets, stack: str):
    """The one system of the host that has ``stack`` (a compose stack), and the stack."""
    having = [(t, s) for t in targets for s in t.system.stacks if s.name == stack]
    if not having:
        for t in targets:
            t.system.selected([stack])   # (refuses, naming the stacks it has)
        raise ToolError(f"stack {stack} runs on none of the systems chosen", BAD_INPUT)
    if len(having) > 1:
        raise ToolError(f"stack {stack} is in systems {', '.join(t.system.name for t, _ in having)}: "
                        "choose one with --system", BAD_INPUT)
    target, chosen = having[0]
    if chosen.binary:
        raise ToolError(f"stack {stack} is a binary under systemd: it has no container to run a command in",
                        BAD_INPUT)
    return target, chosen
