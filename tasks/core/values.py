"""The kinds of value hosts.yml holds (a path, a name, a whole number, a URL) as pydantic types that say in words
what is wrong with a value, and the reading of pydantic's errors as the messages ``inventory`` prints with
file:line. Every path refuses control characters and surrounding whitespace: a tab at the end of ``/srv`` once
split a shell ``read`` and let ``--remove-old`` delete ``/srv``."""
from __future__ import annotations

import difflib
import ipaddress
import posixpath
import re
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, WithJsonSchema
from pydantic import model_validator as checks
from pydantic_core import PydanticCustomError

from . import grammar
from .pubkeys import key_problem

# One line that shows as it is (grammar.UNSHOWN: no control, zero-width or direction-changing character), trimmed.
_INNER, _EDGE = rf"[^\x09\x0a{grammar.UNSHOWN}]", rf"[^\s{grammar.UNSHOWN}]"
PRINTABLE = re.compile(rf"{_EDGE}(?:{_INNER}{{0,1022}}{_EDGE})?")
# What a key's name is, by the mapping it is a key of (for "system name 'a b' is not a safe name").
KINDS = {"systems": "system", "hosts": "host", "stacks": "stack", "groups": "group", "images": "app",
         "legacy": "system", "scale": "service", "upstreams": "service"}


def refuse(message: str, *at) -> PydanticCustomError:
    """A rule broken, said as a whole sentence; ``at`` are the keys below the model it is about."""
    return PydanticCustomError("hosts", message, {"at": at})


def wrong(message: str) -> PydanticCustomError:
    """A value that is wrong: printed after the key's dotted path (``hosts.vps1.port must be ...``)."""
    return PydanticCustomError("hosts_value", message)


def _json(schema: dict) -> WithJsonSchema:
    return WithJsonSchema(schema)


def Matching(pattern: re.Pattern, why: str):  # noqa: N802 (a type)
    """A string that fully matches ``pattern``; ``why`` says what it should be."""
    def check(value):
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise wrong(f"{value!r} {why}")
        return value
    return Annotated[str, BeforeValidator(check), _json({"type": "string", "pattern": f"^(?:{pattern.pattern})$"})]


def Whole(low: int, high: int):  # noqa: N802
    """A whole number from ``low`` to ``high`` (``'22'`` and ``true`` are not numbers)."""
    def check(value):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise wrong(f"must be a whole number from {low} to {high}, not {value!r}")
        return value
    return Annotated[int, BeforeValidator(check), _json({"type": "integer", "minimum": low, "maximum": high})]


def Names(pattern: re.Pattern, what: str):  # noqa: N802
    """A list of strings that each fully match ``pattern``."""
    def check(value):
        if not isinstance(value, list) or not all(isinstance(v, str) and pattern.fullmatch(v) for v in value):
            raise wrong(f"must be a list of {what}")
        return value
    return Annotated[list[str], BeforeValidator(check),
                     _json({"type": "array", "items": {"type": "string", "pattern": f"^(?:{pattern.pattern})$"}})]


def _host_key(value):
    """git_host_key: one public key, ``TYPE BASE64`` (a comment after it is dropped)."""
    problem = key_problem(value) if isinstance(value, str) else "must be a public key: TYPE BASE64"
    if problem:
        raise wrong(problem)
    return " ".join(value.split()[:2])


HostKey = Annotated[str, BeforeValidator(_host_key), _json({"type": "string", "pattern": "^[a-z0-9@.-]+ [A-Za-z0-9+/]+=*"})]


def _path(value, absolute: bool) -> str:
    """A normalised path, absolute or inside the system's folder; one printable line, no surrounding spaces."""
    if not isinstance(value, str) or not PRINTABLE.fullmatch(value):
        raise wrong(f"{value!r} must be a path on one line, without control characters or surrounding spaces")
    norm = posixpath.normpath(value)
    if absolute and (not value.startswith("/") or norm != value.rstrip("/") or norm == "/"):
        raise wrong(f"{value!r} must be a normalised absolute path")
    if not absolute and (value.startswith("/") or norm in (".", "..") or norm.startswith("../")):
        raise wrong(f"{value!r} must be a path inside the system's folder")
    return norm


_LINE = rf"(?:{_INNER}*{_EDGE})?$"   # the rest of a path: one line, no trailing space
AbsPath = Annotated[str, BeforeValidator(lambda v: _path(v, True)), _json({"type": "string", "pattern": "^/" + _LINE})]
RelPath = Annotated[str, BeforeValidator(lambda v: _path(v, False)),
                    _json({"type": "string", "pattern": rf"^[^/\s{grammar.UNSHOWN}]" + _LINE})]


def _backup_path(value) -> str:
    """A path of backup: paths: relative or absolute, in the characters a backup's part may hold."""
    path = _path(value, isinstance(value, str) and value.startswith("/"))
    if not grammar.BACKUP_PATH.fullmatch(path) or path.split("/")[-1] in (".", ".."):
        raise wrong(f"{value!r}: a backed-up path holds letters, digits and . _ @ + - only (it names a folder "
                    "in every backup)")
    return path


BackupPath = Annotated[str, BeforeValidator(_backup_path),
                       _json({"type": "string", "pattern": f"^(?:{grammar.BACKUP_PATH.pattern})$"})]
Text = Matching(PRINTABLE, "must be a non-empty string on one line, without surrounding spaces")
SafeName = Matching(grammar.SAFE_NAME, "is not a safe name (letters, digits, _ . -; it becomes a path)")
UserName = Matching(grammar.USER_NAME, "is not a user name (letters, digits, _ . -, not starting with - or .)")
Service = Matching(grammar.SERVICE, "is not a compose service name")
FileName = Matching(grammar.FILE_NAME, "must be a folder name beside the compose file (e.g. upstreams)")


def _variable(value):
    if isinstance(value, str) and grammar.RESERVED_VAR.fullmatch(value):
        raise wrong(f"{value!r} is a variable the shell, docker or compose read themselves: name the image line's "
                    "own variable (e.g. IMAGE_TAG)")
    return value


EnvVar = Annotated[Matching(grammar.ENV_VAR, "must be an UPPER_CASE variable name"), BeforeValidator(_variable),
                   _json({"type": "string", "pattern": f"^(?:{grammar.ENV_VAR.pattern})$",
                          "not": {"pattern": f"^(?:{grammar.RESERVED_VAR.pattern})$"}})]
ImageName = Matching(grammar.IMAGE_NAME, "is not an image repository (no tag: the tool picks it)")
ApiUrl = Matching(grammar.API_URL, "must be an https:// URL (http:// only to 127.0.0.1 or localhost)")


def is_ip(value) -> bool:
    """An IPv4 or IPv6 address written as text (``ip_address(5)`` would take a number)."""
    try:
        return isinstance(value, str) and bool(ipaddress.ip_address(value))
    except ValueError:
        return False


def _ip(value):
    """An IPv4 or IPv6 address, written back normalised."""
    if is_ip(value):
        return str(ipaddress.ip_address(value))
    raise wrong(f"{value!r} is not an IP address (Swarm's nodes reach each other at an address, never a name)")


IpAddress = Annotated[str, BeforeValidator(_ip), _json({"type": "string", "anyOf": [{"format": "ipv4"},
                                                                                    {"format": "ipv6"}]})]


def _placement(value):
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and grammar.SAFE_NAME.fullmatch(n) for n in names):
        raise wrong("must be a host or group name, or a list of them (e.g. hosts: [app] or hosts: en4)")
    return list(dict.fromkeys(names))


Placement = Annotated[list[str], BeforeValidator(_placement), _json(
    {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
     "description": "the hosts or groups it runs on (default: every host of the system)"})]


class Unknown(str):
    """What an unknown key's value becomes: the sentence that explains it (pydantic then reports the key)."""


class Spec(BaseModel):
    """A mapping of hosts.yml: unknown keys are errors that list the known ones and guess the one meant, values
    are never coerced (``port: '22'`` is refused), and the model is immutable once read."""
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    @checks(mode="before")
    @classmethod
    def _known(cls, data):
        if not isinstance(data, dict):
            return data
        known = [f.alias or name for name, f in cls.model_fields.items()]
        out = dict(data)
        for key in data:
            if key not in known:
                guess = difflib.get_close_matches(str(key), known, n=1)
                out[key] = Unknown(f"unknown key {key!r}" + (f" (did you mean {guess[0]!r}?)" if guess else "") +
                                   f"; expected: {', '.join(sorted(known))}")
        return out


def explain(error: ValidationError, tags: set[str]) -> list[tuple[tuple, str]]:
    """Each error of ``error`` as (where in the file, message); ``tags`` are union branches, not keys."""
    out = []
    for e in error.errors(include_url=False):
        at = tuple(p for p in e["loc"] if p not in tags)
        where = ".".join(str(p) for p in at if p != "[key]") or "top level"
        kind, value = e["type"], e.get("input")
        if kind == "hosts":
            at, message = at + tuple(e["ctx"]["at"]), e["msg"]
        elif at and at[-1] == "[key]":
            at, message = at[:-1], f"{KINDS.get(at[-3], 'key') if len(at) > 2 else 'key'} name {e['msg']}"
        elif kind == "extra_forbidden":
            message = f"{value} in {'.'.join(str(p) for p in at[:-1]) or 'top level'}"
        elif kind == "missing":
            message = f"{where} is missing"
        else:
            message = f"{where} {_words(kind, value, e['msg'])}"
        out.append((at, message))
    return out


def _words(kind: str, value, said: str) -> str:
    """What pydantic said of a value, in this file's words."""
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be a mapping, not {type(value).__name__}"
    return {"bool_type": "must be true or false", "list_type": f"must be a list, not {type(value).__name__}",
            "string_type": f"must be a string, not {value!r}",
            "literal_error": f"{value!r}: {said.removeprefix('Input should be ')}"}.get(kind, said)
