"""fab env-check's program and its verdict: per stack, the keys its .env template sets and its .env lacks, the
placeholders left, and hosts.yml's must_match groups compared on the VPS (only equal or differ leaves it)."""
from __future__ import annotations

from ..target import Target
from .declare import add_stacks, placeholder_words
from .protocol import Program, Result, fields, report

FAIL, WARN, NOTE = "fail", "warn", "note"   # (a note changes no exit code)


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
