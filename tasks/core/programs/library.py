"""The remote library: the shell functions in ``tasks/core/sh/*.sh``, loaded once, and the part of it that one
program needs (the functions its steps call, and theirs, in library order).

Rules the loader enforces (a file that breaks them fails at load, in every test): a file other than
prelude.sh holds only functions and comments; a function is ``name() {`` ... ``}`` at column 0 (or one line);
comments stay in the files (a program carries code only, under one ``# sh/FILE.sh`` line per file, so a
dry-run says where each function lives).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

SH_DIR = Path(__file__).resolve().parent.parent / "sh"
# In dependency order, bottom first: the order functions appear in a program.
FILES = ("base", "lock", "registry", "images", "stacks", "unchanged", "health", "up", "jobs", "rollout", "binary", "logs", "exec", "prune", "doctor", "envfiles", "backup", "files", "offsite", "recover", "restore", "takeover", "preflight", "plan", "config", "state", "token", "setup", "migrate", "bootstrap", "users", "repo", "swarm", "swarm_stacks", "swarm_state")
FUNCTION = re.compile(r"^([a-z_][a-z0-9_]*)\(\) \{")
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CODE = re.compile(r"\bR_[A-Z_]+\b")
# The tokens of unquoted shell code; after one of START (or at the start) a word is in command position.
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=?|\$\(|<\(|&&|\|\||;;|[;&|(){}!\n]|\S")
START = {"\n", ";", ";;", "&", "|", "&&", "||", "(", ")", "{", "!", "$(", "<(",
         "then", "do", "else", "elif", "if", "while", "until"}
# Library functions that run the command their arguments give (atomic_write FILE COMMAND...): a library word
# among those arguments is a call.
RUNNERS = {"atomic_write"}
# A function named as a value, called later by name: SPEC_DOES[$1:up]=unit_up, EXIT_HOOKS+=(undo_checkout).
NAMED = re.compile(r"=\(([^)]*)\)|=([a-z_][a-z0-9_]*)(?=[\s;)]|$)", re.M)


class LibraryError(Exception):
    """A shell file that does not follow the loader's rules (a bug in the tool, found by every test run)."""


@dataclass(frozen=True)
class Function:
    name: str
    file: str
    text: str                 # its definition
    calls: frozenset[str]     # other library functions its code runs (see ``calls``)
    codes: frozenset[str]     # the R_* exit codes it uses


@dataclass(frozen=True)
class Library:
    prelude: str
    functions: dict[str, Function]

    def closure(self, roots: set[str]) -> list[Function]:
        """The functions ``roots`` need, transitively, in library order. Unknown roots are skipped here: the
        program's own ``run`` refuses them at run time, and the unit tests refuse them before."""
        need, todo = set(), [r for r in roots if r in self.functions]
        while todo:
            name = todo.pop()
            if name not in need:
                need.add(name)
                todo.extend(self.functions[name].calls - need)
        return [f for f in self.functions.values() if f.name in need]

    def code(self, functions: list[Function]) -> str:
        """The definitions of ``functions`` (in library order), under a line naming each file."""
        out, last = [], None
        for f in functions:
            if f.file != last:
                out.append(f"# sh/{f.file}.sh")
                last = f.file
            out.append(f.text)
        return "\n".join(out)

    def prelude_calls(self) -> set[str]:
        return {w for w in WORD.findall(_code(self.prelude)) if w in self.functions}


def calls(code: str, names: set[str] | frozenset[str]) -> frozenset[str]:
    """The library functions ``code`` runs: words of ``names`` in command position, given to a RUNNER as its
    command, or assigned as a value (a hook, a kind's function), outside quoted text but for the ``$( )`` of a double-quoted string. A word in a
    message ("step preflight ...") or an awk program is not a call."""
    bare, found, first, running = _unquoted(code), set(), True, False
    for token in TOKEN.findall(bare):
        if (first or running) and not token.endswith("="):
            found.add(token)
        running = (running or (first and token in RUNNERS)) and token not in START
        first = token in START
    for words, word in NAMED.findall(bare):
        found.update(words.split() if words else [word])
    return frozenset(found & set(names))


def _unquoted(text: str) -> str:
    """``text`` with the inside of its quotes and its comments blanked out, keeping the command substitutions
    of double-quoted strings (``"$(name ...)"`` runs ``name``)."""
    out, _ = _scan(text, 0, None)
    return out


def _scan(text: str, i: int, end: str | None) -> tuple[str, int]:
    """Code from ``i`` up to ``end`` (``)`` closing a ``$(``, tracked by depth; None: the end): (what counts, where
    it stopped)."""
    out, depth = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            out.append("  ")
            i += 2
            continue
        if c == "'":
            close = text.find("'", i + 1)
            close = len(text) - 1 if close < 0 else close
            out.append(" " * (close - i + 1))
            i = close + 1
            continue
        if c == '"':
            inner, i = _quoted(text, i + 1)
            out.append(" " + inner + " ")
            continue
        if c == "#" and (i == 0 or text[i - 1] in " \t\n;"):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        if text.startswith("$(", i):
            inner, i = _scan(text, i + 2, ")")
            out.append("$(" + inner + ")")
            continue
        if end and c == "(":
            depth += 1
        elif end and c == ")":
            if depth == 0:
                return "".join(out), i + 1
            depth -= 1
        out.append(c)
        i += 1
    return "".join(out), i


def _quoted(text: str, i: int) -> tuple[str, int]:
    """A double-quoted string from ``i``: blanks, but for the ``$( )`` inside it; and where it ended."""
    out = []
    while i < len(text) and text[i] != '"':
        if text[i] == "\\":
            out.append("  ")
            i += 2
        elif text.startswith("$(", i):
            inner, i = _scan(text, i + 2, ")")
            out.append(" $(" + inner + ") ")
        else:
            out.append("\n" if text[i] == "\n" else " ")
            i += 1
    return "".join(out), i + 1


def _code(text: str) -> str:
    """``text`` without its comment lines (a word in a comment is not a call)."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def _parse(path: Path) -> list[tuple[str, str]]:
    """(name, definition) of every function of one file."""
    out, lines = [], path.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        match = FUNCTION.match(line)
        if match:
            body = [line]
            while not body[0].rstrip().endswith("}") and body[-1] != "}":  # one line, or up to "}" at column 0
                i += 1
                if i == len(lines):
                    raise LibraryError(f"{path.name}: function {match.group(1)} has no closing '}}' at column 0")
                body.append(lines[i])
            out.append((match.group(1), "\n".join(body)))
        elif line.strip() and not line.startswith("#"):
            raise LibraryError(f"{path.name}:{i + 1}: only functions and comments may stand at the top level")
        i += 1
    return out


@functools.cache
def load() -> Library:
    """The whole library, parsed once per process."""
    parsed = [(stem, name, text) for stem in FILES for name, text in _parse(SH_DIR / f"{stem}.sh")]
    names = {name for _, name, _ in parsed}
    functions: dict[str, Function] = {}
    for stem, name, text in parsed:
        if name in functions:
            raise LibraryError(f"{stem}.sh: function {name} is also defined in {functions[name].file}.sh")
        code = _code(text)
        body = code[code.index("{") + 1:]   # (after "name() {")
        functions[name] = Function(name, stem, text, calls(body, names) - {name}, frozenset(CODE.findall(code)))
    return Library(_code((SH_DIR / "prelude.sh").read_text()), functions)
