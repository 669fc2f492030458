"""A YAML file that remembers the line of every node, so that each validation error can say file:line."""
from __future__ import annotations

import posixpath
from pathlib import Path

import yaml

from .errors import BAD_INPUT, ToolError


class YamlDoc:
    """One YAML file's data plus the line of each key; typed getters that fail with file:line."""

    def __init__(self, path: Path, data, lines: dict):
        self.path, self.data, self.lines = path, data, lines

    @classmethod
    def read(cls, path: Path) -> YamlDoc:
        try:
            node = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f":{mark.line + 1}" if mark else ""
            raise ToolError(f"{path}{where}: not valid YAML: {getattr(e, 'problem', None) or e}", BAD_INPUT) from None
        except OSError as e:
            raise ToolError(f"cannot read inventory {path}: {e.strerror}", BAD_INPUT) from None
        lines: dict = {}
        data = cls._build(path, node, (), lines) if node is not None else {}
        if not isinstance(data, dict):
            raise ToolError(f"{path}:1: the inventory must be a mapping with systems: and hosts:", BAD_INPUT)
        return cls(path, data, lines)

    @classmethod
    def _build(cls, path, node, at, lines):
        lines[at] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out = {}
            for knode, vnode in node.value:
                key = yaml.SafeLoader(" ").construct_object(knode)
                if key in out:
                    raise ToolError(f"{path}:{knode.start_mark.line + 1}: {key!r} appears twice", BAD_INPUT)
                out[key] = cls._build(path, vnode, at + (key,), lines)
                lines[at + (key,)] = knode.start_mark.line + 1  # errors point at the key's line
            return out
        if isinstance(node, yaml.SequenceNode):
            return [cls._build(path, v, at + (i,), lines) for i, v in enumerate(node.value)]
        return yaml.SafeLoader(" ").construct_object(node)

    def fail(self, at: tuple, message: str):
        line = next((self.lines[at[:i]] for i in range(len(at), -1, -1) if at[:i] in self.lines), 1)
        raise ToolError(f"{self.path}:{line}: {message}", BAD_INPUT)

    def where(self, at: tuple) -> str:
        return ".".join(str(p) for p in at) or "top level"

    def mapping(self, at, value) -> dict:
        if value is None:
            self.fail(at, f"{self.where(at)} is missing")
        if not isinstance(value, dict):
            self.fail(at, f"{self.where(at)} must be a mapping, not {type(value).__name__}")
        return value

    def string(self, at, value) -> str:
        if value is None:
            self.fail(at, f"{self.where(at)} is missing")
        if not isinstance(value, str) or not value.strip():
            self.fail(at, f"{self.where(at)} must be a non-empty string, not {value!r}")
        return value

    def matching(self, at, value, pattern, what: str) -> str:
        """A string that fully matches ``pattern``; ``what`` says what it should be."""
        if not pattern.fullmatch(self.string(at, value)):
            self.fail(at, f"{self.where(at)} {value!r} {what}")
        return value

    def integer(self, at, value, low: int, high: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.fail(at, f"{self.where(at)} must be a whole number from {low} to {high}, not {value!r}")
        return value

    def boolean(self, at, value) -> bool:
        if not isinstance(value, bool):
            self.fail(at, f"{self.where(at)} must be true or false")
        return value

    def abspath(self, at, value) -> str:
        value = self.string(at, value)
        if not value.startswith("/") or posixpath.normpath(value) != value.rstrip("/") or "\n" in value or value == "/":
            self.fail(at, f"{self.where(at)} {value!r} must be a normalised absolute path")
        return posixpath.normpath(value)

    def relpath(self, at, value) -> str:
        value = self.string(at, value)
        norm = posixpath.normpath(value)
        if value.startswith("/") or norm.startswith("..") or "\n" in value:
            self.fail(at, f"{self.where(at)} {value!r} must be a path inside the system's folder")
        return norm

    def check_name(self, at, name, what: str, pattern) -> None:
        if not isinstance(name, str) or not pattern.fullmatch(name):
            self.fail(at, f"{what} name {name!r} is not a safe name (letters, digits, _ . -; it becomes a path)")

    def only_keys(self, at, spec: dict, allowed: set) -> None:
        for key in spec:
            if key not in allowed:
                self.fail(at + (key,), f"unknown key {key!r} in {self.where(at)} (expected: {', '.join(sorted(allowed))})")
