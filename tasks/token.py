"""fab rotate-token and fab token-status: the GHCR read token's lifecycle on each VPS.

The new token comes from a source a scheduler can use (an environment variable, a command such as a password
manager's CLI, standard input) or, at a terminal, a prompt without echo. It is never an argument of any process,
never printed; it travels to each VPS on the SSH channel's stdin, right after the program that proves it.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .core import asked, hooks
from .core.cli import Selection, command, operator, print_program, select
from .core.errors import BAD_INPUT, WARNING, ToolError
from .core.grammar import check_days, check_token, redact
from .core.programs.declare import Intent
from .core.programs.protocol import execute
from .core.programs.token import WARN_DAYS, check_program, describe, rotate_program, rotated
from .core.target import Target
from .core.ui import Outcome, outcome_table

ALL_HELP = "every host in hosts.yml, in parallel"


@command({"all": ALL_HELP, "token-env": "read the new token from this environment variable",
          "token-command": "run this local command and use its output as the token (e.g. a password manager's CLI)",
          "token-stdin": "read the new token from standard input",
          "dry-run": "print the remote program and change nothing (the token is not read)",
          "revoke-old": "once the new token has logged in and pulled the running release's images, revoke the old "
                        "one through GitHub's API (a GHCR token; a revoke that fails leaves the rotation done)",
          "warn-days": "warn when GitHub says the new token expires within this many days (default 14)"})
def rotate_token(c, host=None, group=None, all=False, system=None, token_env=None, token_command=None, token_stdin=False,
                 dry_run=False, revoke_old=False, warn_days=str(WARN_DAYS)):
    """Put a new GHCR token on the VPS: proven by a real docker login before it replaces the old one."""
    days = check_days(warn_days)
    with select(host, system, all, group) as sel:
        intent = Intent("rotate-token", "", "", *operator())
        brought = [t.label for t in sel.targets if t.system.needs_token and not t.keeps_token]
        if brought:
            raise ToolError(f"{', '.join(brought)}: registry.token is per-deploy: the VPS keeps no token to rotate "
                            "(each deploy brings its own: --token-env, --token-command)", BAD_INPUT)
        apis = {t.label: sel.inventory.github_api_for(t.host) for t in sel.targets}
        unknown = [label for label, api in apis.items() if not api]   # (``all`` is the option here)
        if revoke_old and unknown:
            raise ToolError("--revoke-old: only a GitHub token can be revoked (ghcr.io, or registry: {github_api: URL}); "
                            f"not on {', '.join(unknown)}", BAD_INPUT)
        programs = {t.label: rotate_program(t, intent, apis[t.label], revoke_old) for t in sel.targets}
        if dry_run:
            for target in sel.targets:
                print_program(target, programs[target.label], "<the new token, one line>\n")
            return
        token = check_token(read_token(token_env, token_command, token_stdin))
        redact.secrets.append(token)

        def rotate(target: Target) -> str:
            return rotated(execute(sel.session(target), programs[target.label].given(token), target.label,
                                   quiet=len(sel.targets) > 1), days)

        _report("rotate-token", _each(sel, rotate))


@command({"all": ALL_HELP,
          "warn-days": "warn when GitHub says the token expires within this many days (default 14)"})
def token_status(c, host=None, group=None, all=False, system=None, warn_days=str(WARN_DAYS)):
    """Check each token: file and mode, age, a live login, and GitHub's expiry date and scopes."""
    days = check_days(warn_days)
    with select(host, system, all, group) as sel, \
            hooks.around(sel.inventory, "token-status", "", sel.targets, "", hooked=False):
        def check(target: Target) -> str:
            if not target.keeps_token:
                return "keeps no token (registry.token: per-deploy, or the system pins no image)"
            program = check_program(target, sel.inventory.github_api_for(target.host))
            return describe(execute(sel.session(target), program, target.label, quiet=True), days)

        _report("token-status", _each(sel, check))


def read_token(env_name, command, stdin) -> str:
    """The new token from exactly one source; a prompt without echo only at a terminal."""
    return asked.secret("the new token", "--token-env VAR, --token-command CMD or --token-stdin", env_name, command,
                        stdin)


def _each(sel: Selection, work) -> list[Outcome]:
    """``work(target)`` for every target, in parallel (one connection each); a failing host does not stop
    the others."""
    def one(target: Target) -> Outcome:
        h, s = target.host.name, target.system.name
        try:
            return Outcome(h, s, True, work(target))
        except ToolError as e:
            return Outcome(h, s, False, str(e), e.code, warning=e.code == WARNING)
        except Exception as e:  # noqa: BLE001 - one host's surprise must not hide the others' results
            return Outcome(h, s, False, redact(f"unexpected {type(e).__name__}: {e}"), 1)
    with ThreadPoolExecutor(max_workers=min(16, len(sel.targets)) or 1) as pool:
        return list(pool.map(one, sel.targets))


def _report(what: str, outcomes: list[Outcome]) -> None:
    """A per-host table; exit non-zero (the worst code) if any host failed or warned."""
    outcome_table(what, outcomes)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        errors = [o.code for o in failed if not o.warning]
        raise ToolError(f"{len(failed)} of {len(outcomes)} failed or warned: " + "; ".join(
            f"{o.host}/{o.system} ({o.detail.split(' — ', 1)[-1]})" for o in failed),
            max(errors) if errors else WARNING)
