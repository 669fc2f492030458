"""Secret values the operator gives the tool without an argument (an argument is in every process listing and
shell history): from an environment variable, a local command's output (a password manager's CLI), standard
input, or at a terminal a prompt without echo. What a command printed is never shown: it may be the secret."""
from __future__ import annotations

import getpass
import os
import subprocess
import sys

from .errors import BAD_INPUT, ToolError
from .grammar import check_token, redact
from .target import Target

TOKEN_PLACE = "<this run's registry token, one line>\n"   # where --dry-run shows it would follow the program
TOKEN_SOURCES = "--token-env VAR or --token-command CMD (or keep one on the VPS: registry: {token: stored})"


def secret(what: str, sources: str, env_name: str | None = None, command: str | None = None, stdin: bool = False,
           whole: bool = False) -> str:
    """``what`` (e.g. "the new token") from exactly one source (``sources`` names the options that give one); a
    prompt only at a terminal. One line, stripped, unless ``whole``: then all of standard input but one final
    line break (a value may hold line breaks), read without being asked for when it is not a terminal."""
    if sum(map(bool, (env_name, command, stdin))) > 1:
        raise ToolError(f"give one source of {what}: {sources}", BAD_INPUT)
    if env_name:
        if not os.environ.get(env_name):
            raise ToolError(f"environment variable {env_name} is not set or empty", BAD_INPUT)
        text = os.environ[env_name]
    elif command:
        text = _printed(what, command)
    elif stdin or not sys.stdin.isatty():
        if not stdin and not whole:
            raise ToolError(f"no source of {what}: {sources}", BAD_INPUT)
        text = sys.stdin.read() if whole else sys.stdin.readline()
    else:
        text = getpass.getpass(f"{what[0].upper()}{what[1:]} (not echoed): ")
    return text.removesuffix("\n") if whole else text.strip()


def _printed(what: str, command: str) -> str:
    proc = subprocess.run(command, shell=True, capture_output=True)
    if proc.returncode != 0:
        raise ToolError(f"the command giving {what} failed with exit code {proc.returncode}", BAD_INPUT)
    try:
        return proc.stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError(f"the command giving {what} printed something that is not text (not UTF-8)", BAD_INPUT) from None


def registry_token(targets: list[Target], env_name: str | None, command: str | None) -> str:
    """The registry token a run brings (registry.token per-deploy, or one given for this run): read once here,
    checked, masked in every output from now on; "" when no target pulls with one. CI without a source of it
    is refused (exit 2) before anything connects."""
    given = bool(env_name or command)
    if not any(t.brings_token(given) for t in targets):
        return ""
    token = check_token(secret("the registry token", TOKEN_SOURCES, env_name, command), "the registry token")
    redact.secrets.append(token)
    return token
