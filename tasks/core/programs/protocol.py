"""How the tool and a remote program talk: the program's shape (head, library, steps), the exit codes, and the
lines it prints, read into a Result.

A program is one ``{ ... }`` block sent to ``bash -s``: the prelude, the exit codes its functions use, the
variables of its head (every value ``shlex.quote``d after validation: the library interpolates nothing else),
the library functions it needs, then its steps, each ``run NAME ARGS`` (a step that is not a function, or that
fails without saying why, stops the program). It answers in lines (see sh/base.sh): ``@@step``, ``@@ok``,
``@@fail``, ``@@info``, ``@@error``, ``@@data KEY {json}``, ``@@text KEY line``; the rest is docker's output.
"""
from __future__ import annotations

import enum
import functools
import json
import re
import shlex
from dataclasses import dataclass, field

from .. import grammar
from ..errors import (
    BACKUP_FAILED,
    BAD_INPUT,
    BUSY,
    FAILED,
    JOB_FAILED,
    NEEDS_ATTENTION,
    NOT_STARTED,
    REMOTE_FAILED,
    ROLLED_BACK,
    ToolError,
)
from ..grammar import redact
from ..ssh import Session
from ..ui import StepDisplay
from . import library, reports, steps


class Code(enum.IntEnum):
    """A remote program's exit codes (``die "$R_LOCKED"`` in the shell), each with the tool's exit code."""
    FAILED = 1          # unexpected: a step failed without saying why, or the shell stopped
    LOCKED = 10         # another deploy holds the lock
    LOGIN = 11          # docker login failed
    PULL = 12           # a pull failed
    ROLLED_BACK = 13    # the release failed its gate; the previous good one is back
    BROKEN = 14         # the release failed and the previous one could not be restored
    CONFLICT = 15       # the history changed since the tool read it
    REFUSED = 16        # the host refuses: secrets file, preflight
    NOT_STARTED = 17    # compose could not start the release (not its health); the previous one is back
    BACKUP = 18         # a backup, drill or restore failed; the live databases are as they were
    JOB = 19            # a run-once job failed (before: nothing more switched; after: the previous release is back)

    @property
    def shell_name(self) -> str:
        return f"R_{self.name}"


# The tool's own grammar, written into a program that checks values with it (the shell never spells it again).
CONSTANTS = {"PIN_RE": grammar.PIN.pattern, "DB_NAME_RE": grammar.DB_NAME.pattern, "TOKEN_RE": grammar.TOKEN.pattern,
             "RESTIC_KEY_RE": grammar.RESTIC_KEY.pattern,
             "FILE_PART_RE": grammar.FILE_PART.pattern}

TOOL_CODE = {Code.FAILED: FAILED, Code.LOCKED: BUSY, Code.LOGIN: REMOTE_FAILED, Code.PULL: REMOTE_FAILED,
             Code.ROLLED_BACK: ROLLED_BACK, Code.BROKEN: NEEDS_ATTENTION, Code.CONFLICT: BUSY,
             Code.REFUSED: BAD_INPUT, Code.NOT_STARTED: NOT_STARTED,
             Code.BACKUP: BACKUP_FAILED, Code.JOB: JOB_FAILED}


def q(value) -> str:
    return shlex.quote(str(value))


@dataclass
class Program:
    """One remote program: ``head`` variables (strings, or lists for bash arrays) and ``steps`` (a library
    function and its arguments each). ``text`` is what the host receives first; ``--dry-run`` prints it. A
    secret the program reads (a token, a key) follows it on stdin (``given``): never printed, never in repr."""
    name: str
    head: dict = field(default_factory=dict)
    steps: list[tuple] = field(default_factory=list)
    tail: str = field(default="", repr=False, compare=False)

    def given(self, *lines: str) -> Program:
        """The program with ``lines`` following it on stdin, one per line, in the order its steps read them."""
        self.tail = "".join(f"{line}\n" for line in lines)
        return self

    def with_token(self, token: str) -> Program:
        """The program with a run's registry token following it, if it reads one (its ``receive_token`` step)."""
        return self.given(token) if "receive_token" in self.step_names else self

    def step(self, function: str, *args) -> Program:
        """Run library ``function`` with ``args``: checked against its signature (programs/steps.py) now."""
        steps.check(function, args)
        self.steps.append((function, *args))
        return self

    @property
    def step_names(self) -> set[str]:
        return {s[0] for s in self.steps}

    @property
    def text(self) -> str:
        return assemble(self.name, [assign(k, v) for k, v in self.head.items()], self.step_names | {"run"},
                        ["run " + " ".join(q(part) for part in step) for step in self.steps])


def assemble(name: str, head: list[str], calls: set[str], body: list[str]) -> str:
    """The prelude, the exit codes and library functions that ``calls`` need, ``head`` and ``body``, as one
    { } block ending in ``exit 0``."""
    lib = library.load()
    functions = lib.closure(calls | lib.prelude_calls())
    used = set().union(*(f.codes for f in functions), library.CODE.findall("\n".join(body)))
    codes = " ".join(f"{c.shell_name}={c.value}" for c in Code if c.shell_name in used)
    text = lib.code(functions)
    constants = [assign(k, v) for k, v in CONSTANTS.items() if f"${{{k}}}" in text or f"${k}" in text]
    parts = [lib.prelude, codes, *constants, *head, text, *body, "exit 0"]
    return "{\n# " + name + "\n" + "\n".join(p for p in parts if p) + "\n}\n"


def assign(name: str, value) -> str:
    """``name=value`` (a list becomes a bash array), every value quoted."""
    if isinstance(value, (list, tuple)):
        return f"{name}=(" + " ".join(q(v) for v in value) + ")"
    return f"{name}={q(value)}"


@dataclass
class Result:
    """What a program reported: exit code, @@data objects by key, @@text lines by key, errors, other output."""
    code: int = 0
    data: dict[str, list[dict]] = field(default_factory=dict)
    text: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def all(self, key: str) -> list[dict]:
        return self.data.get(key, [])

    def one(self, key: str) -> dict | None:
        """The last @@data object of ``key`` (None when the program sent none)."""
        return self.data[key][-1] if key in self.data else None


class Reader:
    """Reads a program's stdout lines into a Result and shows its steps on a display as they happen."""

    def __init__(self, result: Result, display: StepDisplay, other=None):
        self.result, self.display, self.other = result, display, other

    def line(self, line: str) -> None:
        kind, _, rest = line.partition(" ") if line.startswith("@@") else ("", "", line)
        r, d = self.result, self.display
        if kind == "@@step":
            name, _, text = rest.partition(" ")
            d.step_started(text, name)
        elif kind == "@@ok":
            d.step_ended(ok=True)
        elif kind == "@@fail":
            d.fail(rest)
        elif kind == "@@info":
            d.info(rest)
        elif kind == "@@error":
            d.step_ended(ok=False)
            r.errors.append(rest)
        elif kind == "@@data":
            key, _, value = rest.partition(" ")
            r.data.setdefault(key, []).append(_json_object(key, value))
        elif kind == "@@text":
            key, _, value = rest.partition(" ")
            r.text.setdefault(key, []).append(value)
        elif self.other:
            self.other(line)
        else:
            r.log.append(line)


UNREADABLE = BAD_INPUT   # a report a host sent that the tool cannot read: the host's state is damaged (or the host
# is hostile), as with a damaged history line: exit 2, never an "unexpected" exit 1


def report(parse):
    """Marks a parser of what a host reported: a missing or mistyped field is a clear error naming the report,
    never a crash (data read back from a host is not trusted)."""
    @functools.wraps(parse)
    def checked(*args, **kwargs):
        try:
            return parse(*args, **kwargs)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise ToolError(f"the host sent a report the tool cannot read ({parse.__qualname__}: "
                            f"{type(e).__name__}: {redact(str(e))[:120]})", UNREADABLE) from None
    return checked


def count(value: str) -> int:
    """A number a host reported (a size, a uid): ASCII digits only (int() would take '٣' or ' 3')."""
    if not re.fullmatch(r"[0-9]{1,20}", value):
        raise ValueError(f"not a count: {value[:40]!r}")
    return int(value)


def whole(value) -> int:
    """A count a host wrote as a JSON number (a manifest's, restic's summary): a whole number, or a clear error."""
    if type(value) is not int or value < 0:
        raise ValueError(f"not a count: {str(value)[:40]!r}")
    return value


def fields(obj: dict, *keys: str) -> tuple[str, ...]:
    """The string values of ``keys`` in one @data object (the shell's ``data`` sends only strings)."""
    values = tuple(obj[k] for k in keys)
    if not all(isinstance(v, str) for v in values):
        raise TypeError(f"{', '.join(keys)} must be strings")
    return values


def _json_object(key: str, value: str) -> dict:
    try:
        obj = json.loads(value)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        raise ToolError(f"the host sent a malformed @@data {key} line: {redact(value)[:200]!r}", UNREADABLE)
    wrong = reports.problem(key, obj)
    if wrong:
        raise ToolError(f"the host sent a report the tool cannot read ({redact(wrong)[:200]})", UNREADABLE)
    return obj


def execute(session: Session, program: Program, label: str, quiet: bool = False, display=None,
            other=None) -> Result:
    """Run ``program`` on the session's host, its steps shown under ``label`` (unless quiet) or on ``display``
    (a fleet run's events); its ``tail`` follows it on stdin (a secret it reads: ``Program.given``); ``other``
    gets each line that is not the protocol's as it comes (fab logs) instead of the Result's log. The Result
    when it succeeded; otherwise a ToolError with the program's own error and the tool exit code its exit code
    maps to."""
    result, display = Result(), display or StepDisplay(label, quiet)
    reader = Reader(result, display, other)
    result.code, stderr = session.stream(program.text + program.tail, reader.line)
    display.step_ended(ok=result.code == 0)
    result.log.extend(stderr)
    if result.code == 0:
        return result
    message = "; ".join(result.errors) or f"remote program failed with exit code {result.code}"
    tail = "\n".join(line for line in result.log[-12:] if line.strip())
    detail = f"\n{tail}" if tail and not result.errors else ""
    raise ToolError(f"{label}: {message}{detail}", TOOL_CODE.get(result.code, FAILED))
