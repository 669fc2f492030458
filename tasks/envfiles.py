"""fab env-check: the stacks' .env files (and a binary's unit environment) read on the VPS without a value ever
leaving it: keys the template sets and the .env lacks, placeholders left, and hosts.yml's must_match groups."""
from __future__ import annotations

import json as jsonlib

from .core import asked
from .core.cli import Selection, command, operator, select
from .core.errors import BAD_INPUT, FOUND_BROKEN, WARNING, ToolError, worst
from .core.grammar import redact
from .core.programs.declare import Intent
from .core.programs.envfiles import FAIL, WARN, env_program, findings, set_program, settable
from .core.programs.protocol import execute
from .core.target import Target
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


@command({"stack": "the stack whose .env (or unit EnvironmentFile) gets the value", "key": "the variable, e.g. DB_PASSWORD",
          "from-command": "run this local command and use its output as the value (e.g. 'pass show ems/db')",
          "stdin": "read the value from standard input (also without this flag when stdin is not a terminal)"})
def env_set(c, key, host=None, system=None, stack=None, from_command=None, stdin=False):
    """Set one value of a stack's .env on the VPS, without a shell there: from stdin or a command, never printed.

    The value (quotes, $, #, line breaks and all) is written as compose reads it back, in place of the key's
    line (or added), atomically, the file's owner and mode kept; it never is an argument, here or on the VPS.
    A binary stack's value goes into its unit's EnvironmentFile (as systemd reads it), a swarm stack's into its
    .env on the manager; there a value must be on one line. It takes effect at the next deploy of the stack."""
    with select(host, system, False, None) as sel:
        targets = writable(sel)
        chosen = targets[0].system.selected([stack] if stack else None)
        if len(chosen) != 1:
            raise ToolError(f"say which stack's .env: --stack NAME ({', '.join(s.name for s in chosen)})", BAD_INPUT)
        value = asked.secret(f"the value of {key}", "--from-command CMD or --stdin", command=from_command,
                             stdin=stdin, whole=True)
        line = settable(targets[0], chosen[0], key, value)
        if len(value) >= 4:   # (never printed; masked anyway should the host say it)
            redact.secrets.append(value)
        for target in targets:
            program = set_program(target, chosen[0], key, Intent("env-set", "", "", *operator()))
            said = execute(sel.session(target), program.given(line), target.label).one("env_set") or {}
            how, where = said.get("result", "written"), target.relative(said.get("file", "its env file"))
            console.print(f"{safe(target.label)}: {safe(key)} {safe(how)} in {safe(where)} (the value is not shown); "
                          f"it takes effect at the next deploy of {safe(chosen[0].name)}", soft_wrap=True)
        name, done = targets[0].system.name, {t.host.name for t in targets}
        others = [h.name for h in sel.inventory.hosts.values()
                  if h.name not in done and any(s.name == name for s in h.systems)]
        if others and targets[0].system.engine == "swarm":
            raise ToolError(f"the other managers of {name} keep their own .env and deploy with it "
                            f"when they are the one that answers: set it there too (--host {','.join(others)})",
                            WARNING)


def writable(sel: Selection) -> list[Target]:
    """The targets env-set writes on: one system on one host, or a swarm system on each of its chosen managers
    (every manager keeps its own .env: the deploy goes through whichever answers first)."""
    names = {t.system.name for t in sel.targets}
    if len(names) == 1 and (len(sel.targets) == 1 or sel.targets[0].system.engine == "swarm"):
        return sel.targets
    raise ToolError("env-set writes one system's env file on one host: give --host NAME (and --system); a swarm "
                    "system's on its managers: --host sw1,sw2,sw3", BAD_INPUT)
