"""fab env-check: the stacks' .env files (and a binary's unit environment) read on the VPS without a value ever
leaving it: keys the template sets and the .env lacks, placeholders left, and hosts.yml's must_match groups."""
from __future__ import annotations

import json as jsonlib

from .core.cli import command, select
from .core.errors import FOUND_BROKEN, WARNING, ToolError, worst
from .core.programs.envfiles import FAIL, WARN, env_program, findings
from .core.programs.protocol import execute
from .core.ui import console, safe

EXIT = {FAIL: FOUND_BROKEN, WARN: WARNING}
STYLE = {FAIL: "red", WARN: "yellow"}


@command({"json": "print the findings as JSON: {host/system: [{level, text}]}"})
def env_check(c, host=None, group=None, all=False, system=None, json=False):
    """Check the stacks' .env files on the VPS: keys missing, placeholders, values that must match.

    Per stack: each key its template (.env_example, .env.docker or env_template:) sets and its .env lacks
    (WARN: compose reads it empty), each key still holding a placeholder (FAIL); each must_match group of
    hosts.yml ([[postgres:DB_PASS, escala:DB_PASS]]) compared on the VPS, a binary's value read from its unit's
    EnvironmentFile (FAIL when one differs or is not set). No value leaves the host. Exit 0, 8 (WARN), 11 (FAIL)."""
    out, codes = {}, []
    with select(host, system, all, group) as sel:
        for target in sel.targets:
            found = findings(target, execute(sel.session(target), env_program(target), target.label, quiet=True))
            out[target.label] = [{"level": level, "text": text} for level, text in found]
            codes += [EXIT.get(level, 0) for level, _ in found]
            if not json:
                console.print(f"[bold]{safe(target.label)}[/]" + ("" if found else ": [green]OK[/]"))
                for level, text in found:
                    console.print(f"  [{STYLE.get(level, 'dim')}]{level.upper()}[/] {safe(text)}", soft_wrap=True)
    if json:
        print(jsonlib.dumps(out, indent=2))
    code = worst(codes)
    if code:
        raise ToolError("env-check found " + ("something to fix (FAIL)" if code == FOUND_BROKEN else "warnings (WARN)"),
                        code)
