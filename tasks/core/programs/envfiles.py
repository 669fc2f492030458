"""fab env-check's program and its verdict: per stack, the keys its .env template sets and its .env lacks, the
placeholders left, and hosts.yml's must_match groups compared on the VPS (only equal or differ leaves it)."""
from __future__ import annotations

import re

from ..errors import BAD_INPUT, ToolError
from ..model import Stack
from ..target import Target
from .declare import Intent, add_stacks, placeholder_words
from .protocol import Program, Result, fields, report

FAIL, WARN, NOTE = "fail", "warn", "note"   # (a note changes no exit code)
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
UNWRITABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")   # control characters but tab and line break
MAX_VALUE = 65536


def dotenv_line(key: str, value: str) -> str:
    """``KEY="value"`` as compose reads it back exactly (checked against Compose v2), and as systemd reads
    a unit's EnvironmentFile (checked against systemd 252, for a value on one line): in double quotes, with backslash, quote
    and dollar escaped (so nothing is interpolated) and a line break as \\n (compose's only)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("\n", "\\n")
    return f'{key}="{escaped}"'


def settable(target: Target, stack: Stack, key: str, value: str) -> str:
    """The line env-set writes for ``key``; refused (exit 2, before anything connects) when the key is not one,
    is the tool's own (an app's tag variable, COMPOSE_PROJECT_NAME: every deploy rewrites them), or the value
    is empty, too long or holds a control character (never repeated)."""
    if not KEY.fullmatch(key):
        raise ToolError(f"{key[:64]!r} is not an environment variable name (letters, digits, _)", BAD_INPUT)
    if key == "COMPOSE_PROJECT_NAME" or key in {a.tag_var for a in stack.apps}:
        raise ToolError(f"{key} is the tool's own line of the .env (every deploy writes it)", BAD_INPUT)
    if not value or len(value) > MAX_VALUE or UNWRITABLE.search(value):
        raise ToolError(f"the value for {key} is empty, longer than 64 KiB or holds a control character (other than "
                        "a tab or a line break): nothing was changed", BAD_INPUT)
    if "\n" in value and (stack.binary or target.system.engine == "swarm"):
        raise ToolError(f"the value for {key} spans lines, which " + (
            f"{stack.name}'s unit environment file would hold only over several quoted lines" if stack.binary
            else "docker stack cannot be given") + ": give it on one line; nothing was changed", BAD_INPUT)
    return dotenv_line(key, value)


def set_program(target: Target, stack: Stack, key: str, intent: Intent) -> Program:
    """Lock, then ``key``'s line of ``stack``'s .env written from the line that follows the program on stdin."""
    head = {"STATE": target.state_dir, "SYSTEM": target.system.name, **intent.head()}
    prog = add_stacks(Program(f"env-set {key} on {target.label}", head).step("begin").step("lock_take"), target,
                      [stack])
    return prog.step("env_set", stack.name, key)


def env_program(target: Target) -> Program:
    """Read-only: the checks of every stack of ``target``, then each must_match group whose stacks all run
    here (a group across hosts cannot be compared on one)."""
    stacks = list(target.system.stacks)
    prog = add_stacks(Program(f"env-check on {target.label}", {}), target, stacks)
    prog.step("env_check", *placeholder_words(stacks))
    for group in here(target):
        prog.step("env_match", *group)
    return prog


def here(target: Target) -> list[tuple[str, ...]]:
    """The must_match groups whose stacks all run on ``target``'s host."""
    names = {s.name for s in target.system.stacks}
    return [g for g in target.system.must_match if all(w.split(":")[0] in names for w in g)]


@report
def findings(target: Target, result: Result) -> list[tuple[str, str]]:
    """(level, text) for each thing env-check found; nothing when all is well."""
    out = []
    for d in result.all("env_missing"):
        stack, key = fields(d, "stack", "key")
        out.append((FAIL, f"stack {stack} has no .env (its template sets keys): fab setup makes it") if not key
                   else (WARN, f"stack {stack}: its .env lacks {key}, which its template sets (compose reads it empty)"))
    out += [(FAIL, "stack {}: {} still holds its template's placeholder".format(*fields(d, "stack", "key")))
            for d in result.all("env_placeholder")]
    for d in result.all("env_match"):
        keys, verdict, where = fields(d, "keys", "result", "where")
        if verdict == "missing":
            out.append((FAIL, f"must_match {keys}: {where} not set"))
        elif verdict == "differ":
            out.append((FAIL, f"must_match {keys}: {where} differs from {keys.split()[0]}"))
    skipped = [g for g in target.system.must_match if g not in here(target)]
    out += [(NOTE, f"must_match {' '.join(g)}: its stacks run on other hosts too, not compared here") for g in skipped]
    return out
