"""hosts.yml: which hosts exist, which systems run on them and how their stacks are brought up.

Loaded once per task and validated completely before anything remote happens. Every error names the file, the
line and what is wrong. ``hosts.d/*.yml`` beside the main file may add hosts and systems (the sandbox writes its
host there), so a local or generated host never needs an edit to the committed inventory.
"""
from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import BAD_INPUT, ToolError

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
IMAGE_NAME = re.compile(r"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*$")
REGISTRY_SERVER = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$")
URL = re.compile(r"^https?://[^\s'\"`$\\]+$")
DEFAULT_SECRETS = ".secrets/github"


@dataclass(frozen=True)
class Registry:
    server: str
    username: str
    logout: bool = False   # docker logout after the pulls: no credentials left in ~/.docker/config.json


@dataclass(frozen=True)
class Stack:
    """One compose stack of a system. ``image`` is the full repository (registry included) or None for a stack
    whose images the tool does not pin (Traefik, PostgreSQL): those are only brought up, in order."""
    name: str
    compose: str              # relative to <root>/<system>
    image: str | None = None
    health: str | None = None
    tag_var: str = "IMAGE_TAG"
    wait: int = 120


@dataclass(frozen=True)
class System:
    name: str
    stacks: tuple[Stack, ...]
    secrets: str = DEFAULT_SECRETS
    tag: str | None = None


@dataclass(frozen=True)
class Legacy:
    """Where a system lived before seed 001's hierarchy (for migrate-layout). Absolute paths on the host."""
    repo: str                       # the old git checkout (holds servers/...)
    letsencrypt: str | None = None  # the old Traefik ACME folder
    uploads: str | None = None      # the old uploads folder (with <app>/ inside)
    logs: str | None = None         # the old logs folder (with <app>/ inside)
    volumes: tuple[str, ...] = ()   # named volumes that must survive untouched (PostgreSQL's)


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    systems: tuple[System, ...]
    registry: Registry
    user: str = "root"
    port: int = 22
    root: str = "/root"
    identity: str | None = None
    known_hosts: str | None = None
    legacy: tuple = ()   # (system name, Legacy) pairs

    def base(self, system: System) -> str:
        """Where ``system`` lives on this host: <root>/<system>."""
        return posixpath.join(self.root, system.name)


@dataclass
class Inventory:
    path: Path
    hosts: dict[str, Host] = field(default_factory=dict)
    github_api: str | None = None   # where token-status asks GitHub about a token (default api.github.com)

    def host(self, name: str | None) -> Host:
        """The host called ``name``; a clear error listing the known ones otherwise."""
        known = ", ".join(sorted(self.hosts)) or "none"
        if not name:
            raise ToolError(f"say which host: --host NAME (known hosts in {self.path}: {known})", BAD_INPUT)
        if name not in self.hosts:
            raise ToolError(f"unknown host {name!r}: {self.path} knows {known}", BAD_INPUT)
        return self.hosts[name]


def default_path() -> Path:
    """FAB_INVENTORY if set, else hosts.yml in the current directory."""
    return Path(os.environ.get("FAB_INVENTORY", "hosts.yml"))


def load(path: Path | None = None) -> Inventory:
    """Read and validate the inventory at ``path`` plus any ``hosts.d/*.yml`` beside it."""
    path = Path(path or default_path())
    if not path.exists():
        raise ToolError(f"inventory not found: {path} (set FAB_INVENTORY or run from the project folder)", BAD_INPUT)
    main = _Doc.read(path)
    extra = [_Doc.read(p) for p in sorted((path.parent / "hosts.d").glob("*.yml"))]
    registry = _registry(main, main.data.get("registry"), ("registry",))
    systems: dict[str, tuple[System, Registry | None]] = {}
    host_nodes: dict[str, tuple[_Doc, dict]] = {}
    for doc in [main] + extra:
        doc.only_keys((), doc.data, {"registry", "github_api", "systems", "hosts"} if doc is main else {"systems", "hosts"})
        for name, spec in doc.mapping(("systems",), doc.data.get("systems", {})).items():
            doc.check_name(("systems", name), name, "system")
            if name in systems:
                doc.fail(("systems", name), f"system {name!r} is defined twice")
            systems[name] = _system(doc, name, spec, registry)
        for name, spec in doc.mapping(("hosts",), doc.data.get("hosts", {})).items():
            doc.check_name(("hosts", name), name, "host")
            if name in host_nodes:
                doc.fail(("hosts", name), f"host {name!r} is defined twice")
            host_nodes[name] = (doc, spec)
    inv = Inventory(path)
    if "github_api" in main.data and not URL.fullmatch(main.string(("github_api",), main.data["github_api"])):
        main.fail(("github_api",), "github_api must be an http(s) URL")
    inv.github_api = main.data.get("github_api")
    for name, (doc, spec) in host_nodes.items():
        inv.hosts[name] = _host(doc, name, spec, systems, registry)
    return inv


def _registry(doc: "_Doc", spec, at: tuple, base: Registry | None = None) -> Registry | None:
    """The registry at ``at``; an override (system or host) may give only the fields it changes from ``base``."""
    if spec is None and base is not None:
        return None
    spec = doc.mapping(at, spec)
    doc.only_keys(at, spec, {"server", "username", "logout"})
    server = doc.string(at + ("server",), spec.get("server", base and base.server))
    if not REGISTRY_SERVER.fullmatch(server):
        doc.fail(at + ("server",), f"registry server {server!r} is not a host[:port]")
    username = doc.string(at + ("username",), spec.get("username", base and base.username))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", username):
        doc.fail(at + ("username",), f"registry username {username!r} has characters a registry does not accept")
    logout = spec.get("logout", base.logout if base else False)
    if not isinstance(logout, bool):
        doc.fail(at + ("logout",), f"{doc.where(at + ('logout',))} must be true or false")
    return Registry(server, username, logout)


def _system(doc: "_Doc", name: str, spec, default_registry: Registry) -> tuple[System, Registry | None]:
    at = ("systems", name)
    spec = doc.mapping(at, spec)
    doc.only_keys(at, spec, {"secrets", "stacks", "registry", "tag"})
    secrets = doc.relpath(at + ("secrets",), spec.get("secrets", DEFAULT_SECRETS))
    tag = spec.get("tag")
    if tag is not None:
        from .plan import check_tag  # the tag grammar lives with the commands that use it
        try:
            tag = check_tag(doc.string(at + ("tag",), tag))
        except ToolError as e:
            doc.fail(at + ("tag",), str(e))
    stacks_spec = doc.mapping(at + ("stacks",), spec.get("stacks"))
    if not stacks_spec:
        doc.fail(at + ("stacks",), f"system {name!r} needs at least one stack under 'stacks:'")
    stacks = []
    for sname, sspec in stacks_spec.items():
        sat = at + ("stacks", sname)
        doc.check_name(sat, sname, "stack")
        sspec = doc.mapping(sat, sspec)
        doc.only_keys(sat, sspec, {"compose", "image", "health", "tag_var", "wait"})
        image = sspec.get("image")
        if image is not None and not IMAGE_NAME.fullmatch(doc.string(sat + ("image",), image)):
            doc.fail(sat + ("image",), f"{image!r} is not an image repository (no tag: the tool picks it)")
        health = sspec.get("health")
        if health is not None and not URL.fullmatch(doc.string(sat + ("health",), health)):
            doc.fail(sat + ("health",), f"health {health!r} must be an http(s) URL")
        tag_var = sspec.get("tag_var", "IMAGE_TAG")
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", doc.string(sat + ("tag_var",), tag_var)):
            doc.fail(sat + ("tag_var",), f"tag_var {tag_var!r} must be an UPPER_CASE variable name")
        stacks.append(Stack(sname, doc.relpath(sat + ("compose",), sspec.get("compose")), image, health, tag_var,
                            doc.integer(sat + ("wait",), sspec.get("wait", 120), 1, 3600)))
    registry = _registry(doc, spec.get("registry"), at + ("registry",), default_registry)
    return System(name, tuple(stacks), secrets, tag), registry


def _host(doc: "_Doc", name: str, spec, systems: dict, default_registry: Registry) -> Host:
    at = ("hosts", name)
    spec = doc.mapping(at, spec)
    doc.only_keys(at, spec, {"address", "user", "port", "root", "systems", "identity", "known_hosts", "registry",
                             "legacy"})
    names = spec.get("systems")
    if not isinstance(names, list) or not names:
        doc.fail(at + ("systems",), f"host {name!r} needs a list of systems, e.g. systems: [ems_system]")
    chosen = []
    for i, sname in enumerate(names):
        if sname not in systems:
            doc.fail(at + ("systems", i), f"host {name!r} runs unknown system {sname!r} (known: {', '.join(sorted(systems)) or 'none'})")
        chosen.append(systems[sname])
    root = doc.abspath(at + ("root",), spec.get("root", "/root"))
    system_registry = next((r for s, r in chosen if r), None) or default_registry
    host_registry = _registry(doc, spec.get("registry"), at + ("registry",), system_registry)
    opt = {k: doc.string(at + (k,), spec[k]) for k in ("identity", "known_hosts") if k in spec}
    legacy = []
    for sname, lspec in doc.mapping(at + ("legacy",), spec.get("legacy", {})).items():
        lat = at + ("legacy", sname)
        if sname not in [s.name for s, _ in chosen]:
            doc.fail(lat, f"legacy layout given for {sname!r}, which host {name!r} does not run")
        lspec = doc.mapping(lat, lspec)
        doc.only_keys(lat, lspec, {"repo", "letsencrypt", "uploads", "logs", "volumes"})
        paths = {k: doc.abspath(lat + (k,), lspec[k]) for k in ("repo", "letsencrypt", "uploads", "logs") if k in lspec}
        if "repo" not in paths:
            doc.fail(lat, f"{doc.where(lat)}.repo (the old checkout) is missing")
        volumes = lspec.get("volumes", [])
        if not isinstance(volumes, list) or not all(isinstance(v, str) and SAFE_NAME.fullmatch(v) for v in volumes):
            doc.fail(lat + ("volumes",), "volumes must be a list of volume names")
        legacy.append((sname, Legacy(volumes=tuple(volumes), **paths)))
    return Host(name=name, address=doc.string(at + ("address",), spec.get("address")),
                systems=tuple(s for s, _ in chosen),
                registry=host_registry or system_registry,
                user=doc.string(at + ("user",), spec.get("user", "root")),
                port=doc.integer(at + ("port",), spec.get("port", 22), 1, 65535),
                root=posixpath.normpath(root), legacy=tuple(legacy),
                **{k: os.path.expanduser(v) for k, v in opt.items()})


class _Doc:
    """One YAML file with the line of every node, so each error can say where it is."""

    def __init__(self, path: Path, data, lines: dict):
        self.path, self.data, self.lines = path, data, lines

    @classmethod
    def read(cls, path: Path) -> "_Doc":
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

    def integer(self, at, value, low: int, high: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.fail(at, f"{self.where(at)} must be a whole number from {low} to {high}, not {value!r}")
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

    def check_name(self, at, name, what: str) -> None:
        if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
            self.fail(at, f"{what} name {name!r} is not a safe name (letters, digits, _ . -; it becomes a path)")

    def only_keys(self, at, spec: dict, allowed: set) -> None:
        for key in spec:
            if key not in allowed:
                self.fail(at + (key,), f"unknown key {key!r} in {self.where(at)} (expected: {', '.join(sorted(allowed))})")
