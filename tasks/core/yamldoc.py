"""A YAML file that remembers the line of every node, so that each validation error can say file:line; hostile
YAML (alias bombs, tags, merges, deep nesting, huge files) is refused before anything reads the data."""
from __future__ import annotations

from pathlib import Path

import yaml

from .errors import BAD_INPUT, ToolError

MAX_BYTES = 1 << 20     # an inventory is a page or two; a megabyte is already absurd
MAX_DEPTH = 16          # hosts.yml nests six levels deep at most
MAX_NODES = 20000       # values after aliases are expanded: a real inventory has hundreds, an alias bomb billions
PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "bool", "null", "float", "map", "seq")}


class YamlDoc:
    """One YAML file's data (plain mappings, lists and scalars) plus the line of each key."""

    def __init__(self, path: Path, data, lines: dict):
        self.path, self.data, self.lines = path, data, lines

    @classmethod
    def read(cls, path: Path) -> YamlDoc:
        """Parse ``path``; every way a file can be malformed is a file:line error, never a crash or a hang:
        aliases that expand beyond a budget (a 2 KB alias bomb expands to gigabytes), tags, merge keys and keys
        that are not plain scalars (a key is read as written: `on:` is "on", `1:` is "1"), deep nesting, huge
        files, bytes that are not UTF-8. Plain aliases (shared settings) are fine."""
        try:
            raw = path.read_bytes()
            if len(raw) > MAX_BYTES:
                raise ToolError(f"{path}:1: the inventory is larger than {MAX_BYTES // 1024} KB", BAD_INPUT)
            text = raw.decode("utf-8")
            cls._shallow(path, text)
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            lines: dict = {}
            data = cls._build(path, node, (), lines, [MAX_NODES]) if node is not None else {}
        except UnicodeDecodeError as e:
            line = raw[:e.start].count(b"\n") + 1
            raise ToolError(f"{path}:{line}: not valid UTF-8", BAD_INPUT) from None
        except yaml.reader.ReaderError as e:   # (a character YAML refuses, such as NUL: it gives a position)
            line = text[:e.position].count("\n") + 1
            char = f"U+{e.character:04X}" if isinstance(e.character, int) else repr(e.character)
            raise ToolError(f"{path}:{line}: not valid YAML: character {char} is not allowed", BAD_INPUT) from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f":{mark.line + 1}" if mark else ""
            raise ToolError(f"{path}{where}: not valid YAML: {getattr(e, 'problem', None) or e}", BAD_INPUT) from None
        except OSError as e:
            raise ToolError(f"cannot read inventory {path}: {e.strerror}", BAD_INPUT) from None
        if not isinstance(data, dict):
            raise ToolError(f"{path}:1: the inventory must be a mapping with systems: and hosts:", BAD_INPUT)
        return cls(path, data, lines)

    @staticmethod
    def _shallow(path: Path, text: str) -> None:
        """Refuse deep nesting from the parser's events, before PyYAML's composer recurses into it (5,000 levels
        ended in a RecursionError)."""
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH + 1:
                    raise ToolError(f"{path}:{event.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels",
                                    BAD_INPUT)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1

    @classmethod
    def _build(cls, path, node, at, lines, budget: list[int]):
        line = node.start_mark.line + 1
        budget[0] -= 1
        if budget[0] < 0:
            raise ToolError(f"{path}:{line}: the inventory expands to more than {MAX_NODES} values "
                            "(YAML aliases nested into an alias bomb?)", BAD_INPUT)
        if len(at) > MAX_DEPTH:
            raise ToolError(f"{path}:{line}: nested deeper than {MAX_DEPTH} levels", BAD_INPUT)
        if node.tag not in PLAIN_TAGS:
            raise ToolError(f"{path}:{line}: YAML tag {node.tag} is not accepted in an inventory", BAD_INPUT)
        lines[at] = line
        if isinstance(node, yaml.MappingNode):
            out = {}
            for knode, vnode in node.value:
                if not isinstance(knode, yaml.ScalarNode) or knode.tag not in PLAIN_TAGS:
                    raise ToolError(f"{path}:{knode.start_mark.line + 1}: a key must be a plain name "
                                    "(no lists, mappings or << merges)", BAD_INPUT)
                key = knode.value   # (a key is a name, as written: `on:` is "on", not YAML 1.1's true)
                if key in out:
                    raise ToolError(f"{path}:{knode.start_mark.line + 1}: {key!r} appears twice", BAD_INPUT)
                out[key] = cls._build(path, vnode, at + (key,), lines, budget)
                lines[at + (key,)] = knode.start_mark.line + 1  # errors point at the key's line
            return out
        if isinstance(node, yaml.SequenceNode):
            return [cls._build(path, v, at + (i,), lines, budget) for i, v in enumerate(node.value)]
        return yaml.SafeLoader(" ").construct_object(node)

    def line(self, at: tuple) -> int:
        """The line of the key at ``at``, or of the nearest key above it."""
        return next((self.lines[at[:i]] for i in range(len(at), -1, -1) if at[:i] in self.lines), 1)
