"""hosts.yml: which hosts exist, which systems run on them and how their stacks are brought up.

Loaded once per task and validated completely before anything remote happens; every error names the file, the
line and what is wrong. ``hosts.d/*.yml`` beside the main file may add hosts and systems (the sandbox writes its
host there). The config objects own every path derived from them: a ``Target`` (one system on one host) knows
its folder, state, secrets, compose files, .env files, compose projects and image repositories.
"""
from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from . import grammar
from .errors import BAD_INPUT, ToolError
from .yamldoc import YamlDoc

DEFAULT_SECRETS = ".secrets/github"
DEFAULT_GITHUB_API = "https://api.github.com"


@dataclass(frozen=True)
class Registry:
    server: str
    username: str
    logout: bool = False   # docker logout after the pulls: no credentials left in ~/.docker/config.json
    github_api: str | None = None   # opt-in: this registry's password is a GitHub token; ask this API about it


@dataclass(frozen=True)
class App:
    """One image the tool pins: ``name`` is unique in its system (the key of pins, history and ``--tag
    name=TAG``), ``tag_var`` the variable of the compose file's image line that carries its tag@digest."""
    name: str
    image: str                # the repository, without a tag
    tag_var: str = "IMAGE_TAG"


@dataclass(frozen=True)
class Stack:
    """One compose stack of a system and the apps (images) it pins: none for a stack whose images the tool
    does not pin (Traefik, PostgreSQL): those are only brought up, in order. EnlevoHub's one compose file pins
    two (backend, frontend), each with its own variable."""
    name: str
    compose: str              # relative to <root>/<system>
    apps: tuple[App, ...] = ()
    health: str | None = None
    wait: int = 120
    project: str | None = None   # keep the compose project of a stack started by hand (its containers, volumes)
    scale: tuple[tuple[str, int], ...] = ()   # (service, replicas): honoured by every up, restore and rollback
    require_healthcheck: bool = False   # refuse a deploy whose pinned services have no healthcheck


@dataclass(frozen=True)
class System:
    name: str
    stacks: tuple[Stack, ...]
    secrets: str = DEFAULT_SECRETS
    tag: str | None = None

    def apps(self, stacks: list[Stack] | None = None) -> list[App]:
        """The apps (pinned images) of ``stacks`` (default: every stack), in stack order."""
        return [a for s in (self.stacks if stacks is None else stacks) for a in s.apps]

    def selected(self, only: list[str] | None) -> list[Stack]:
        """The stacks in their configured order, limited to ``only`` when given (unknown names refused)."""
        known = [s.name for s in self.stacks]
        unknown = [n for n in only or [] if n not in known]
        if unknown:
            raise ToolError(f"system {self.name} has no stack {', '.join(unknown)} (stacks: {', '.join(known)})",
                            BAD_INPUT)
        return [s for s in self.stacks if not only or s.name in only]


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

    def projects(self) -> list[str]:
        """Every compose project the tool runs on this host (what is not one of them was started by hand)."""
        return [t.project(s) for t in self.targets() for s in t.system.stacks]

    def targets(self, only: str | None = None) -> list[Target]:
        """Each system of this host as a Target, or just the system ``only`` (which must be one of them)."""
        chosen = [s for s in self.systems if not only or s.name == only]
        if not chosen:
            raise ToolError(f"host {self.name} runs no system {only!r} (it runs "
                            f"{', '.join(s.name for s in self.systems)})", BAD_INPUT)
        return [Target(self, s) for s in chosen]


@dataclass(frozen=True)
class Target:
    """One system on one host, and where everything of it lives there (seed 001's hierarchy)."""
    host: Host
    system: System

    @property
    def label(self) -> str:
        return f"{self.host.name}/{self.system.name}"

    @property
    def base(self) -> str:
        """<root>/<system>."""
        return posixpath.join(self.host.root, self.system.name)

    @property
    def state_dir(self) -> str:
        """The tool's own state: beside data/, outside repo/, so a re-clone cannot lose it."""
        return posixpath.join(self.base, "state")

    @property
    def secrets(self) -> str:
        return posixpath.join(self.base, self.system.secrets)

    @property
    def letsencrypt(self) -> str:
        """Traefik's ACME state, shared by every system of the host."""
        return posixpath.join(self.host.root, "infra", "letsencrypt")

    @property
    def legacy(self) -> Legacy | None:
        return dict(self.host.legacy).get(self.system.name)

    def migration_copies(self) -> list[tuple[str, str, str]]:
        """(name, old path, new path) of everything migrate-layout copies, in order (seed 001, steps 1-2)."""
        legacy = self.legacy
        if legacy is None:
            return []
        out = [("repo", legacy.repo, self.path("repo"))]
        if legacy.letsencrypt:
            out.append(("letsencrypt", legacy.letsencrypt, self.letsencrypt))
        for kind in ("uploads", "logs"):
            if getattr(legacy, kind):
                out.append((kind, getattr(legacy, kind), self.path(f"data/{kind}")))
        return out

    def path(self, relative: str) -> str:
        return posixpath.join(self.base, relative)

    def compose(self, stack: Stack) -> str:
        return self.path(stack.compose)

    def env_file(self, stack: Stack) -> str:
        """The .env beside the compose file: compose reads it on every `up`; the tool pins releases there."""
        return posixpath.join(posixpath.dirname(self.compose(stack)), ".env")

    def project(self, stack: Stack) -> str:
        """The compose project: the stack's ``project:`` (one started by hand, adopted with its containers and
        volumes), else <system>-<stack> (the seed's ems/container and sms/container folders would otherwise
        both be project "container")."""
        return stack.project or f"{self.system.name}-{stack.name}"

    def image_repo(self, app: App) -> str:
        """The full repository of ``app``'s image: relative names go to the host's registry."""
        first = app.image.split("/", 1)[0]
        if "/" in app.image and ("." in first or ":" in first or first == "localhost"):
            return app.image
        return f"{self.host.registry.server}/{app.image}"


@dataclass
class Inventory:
    path: Path
    hosts: dict[str, Host] = field(default_factory=dict)
    github_api: str | None = None   # where to ask GitHub about a token (default api.github.com for ghcr.io)

    def host(self, name: str | None) -> Host:
        """The host called ``name``; a clear error listing the known ones otherwise."""
        known = ", ".join(sorted(self.hosts)) or "none"
        if not name:
            raise ToolError(f"say which host: --host NAME (known hosts in {self.path}: {known})", BAD_INPUT)
        if name not in self.hosts:
            raise ToolError(f"unknown host {name!r}: {self.path} knows {known}", BAD_INPUT)
        return self.hosts[name]

    def github_api_for(self, host: Host) -> str:
        """Where to ask GitHub about ``host``'s token (every caller asks here): the registry's own github_api
        (an explicit opt-in), else for ghcr.io the inventory's github_api or api.github.com. Any other
        registry's password is not a GitHub token and is never sent to GitHub: empty means never ask."""
        if host.registry.github_api:
            return host.registry.github_api
        return (self.github_api or DEFAULT_GITHUB_API) if host.registry.server == "ghcr.io" else ""


def default_path() -> Path:
    """FAB_INVENTORY if set, else hosts.yml in the current directory."""
    return Path(os.environ.get("FAB_INVENTORY", "hosts.yml"))


def load(path: Path | None = None) -> Inventory:
    """Read and validate the inventory at ``path`` plus any ``hosts.d/*.yml`` beside it."""
    path = Path(path or default_path())
    if not path.exists():
        raise ToolError(f"inventory not found: {path} (set FAB_INVENTORY or run from the project folder)", BAD_INPUT)
    main = YamlDoc.read(path)
    extra = [YamlDoc.read(p) for p in sorted((path.parent / "hosts.d").glob("*.yml"))]
    registry = _registry(main, main.data.get("registry"), ("registry",))
    systems: dict[str, tuple[System, Registry | None]] = {}
    host_nodes: dict[str, tuple[YamlDoc, dict]] = {}
    for doc in [main] + extra:
        doc.only_keys((), doc.data, {"registry", "github_api", "systems", "hosts"} if doc is main else {"systems", "hosts"})
        for name, spec in doc.mapping(("systems",), doc.data.get("systems", {})).items():
            doc.check_name(("systems", name), name, "system", grammar.SAFE_NAME)
            if name in systems:
                doc.fail(("systems", name), f"system {name!r} is defined twice")
            systems[name] = _system(doc, name, spec, registry)
        for name, spec in doc.mapping(("hosts",), doc.data.get("hosts", {})).items():
            doc.check_name(("hosts", name), name, "host", grammar.SAFE_NAME)
            if name in host_nodes:
                doc.fail(("hosts", name), f"host {name!r} is defined twice")
            host_nodes[name] = (doc, spec)
    inv = Inventory(path)
    if "github_api" in main.data:
        inv.github_api = _api_url(main, ("github_api",), main.data["github_api"])
    for name, (doc, spec) in host_nodes.items():
        inv.hosts[name] = _host(doc, name, spec, systems, registry)
    return inv


def _registry(doc: YamlDoc, spec, at: tuple, base: Registry | None = None) -> Registry | None:
    """The registry at ``at``; an override (system or host) may give only the fields it changes from ``base``."""
    if spec is None and base is not None:
        return None
    spec = doc.mapping(at, spec)
    doc.only_keys(at, spec, {"server", "username", "logout", "github_api"})
    server = doc.matching(at + ("server",), spec.get("server", base and base.server), grammar.REGISTRY_SERVER,
                          "is not a host[:port]")
    username = doc.matching(at + ("username",), spec.get("username", base and base.username), grammar.REGISTRY_USER,
                            "has characters a registry does not accept")
    logout = doc.boolean(at + ("logout",), spec.get("logout", base.logout if base else False))
    api = spec.get("github_api", base.github_api if base and spec.get("server") in (None, base.server) else None)
    return Registry(server, username, logout, api and _api_url(doc, at + ("github_api",), api))


def _api_url(doc: YamlDoc, at: tuple, value) -> str:
    """An https URL; plain http only to the VPS's own loopback (the token then never crosses a network)."""
    return doc.matching(at, value, grammar.API_URL, "must be an https:// URL (http:// only to 127.0.0.1 or localhost)")


def _system(doc: YamlDoc, name: str, spec, default_registry: Registry) -> tuple[System, Registry | None]:
    at = ("systems", name)
    spec = doc.mapping(at, spec)
    doc.only_keys(at, spec, {"secrets", "stacks", "registry", "tag"})
    secrets = doc.relpath(at + ("secrets",), spec.get("secrets", DEFAULT_SECRETS))
    tag = spec.get("tag")
    if tag is not None:
        tag = doc.matching(at + ("tag",), tag, grammar.TAG, "is not a valid image tag")
    stacks_spec = doc.mapping(at + ("stacks",), spec.get("stacks"))
    if not stacks_spec:
        doc.fail(at + ("stacks",), f"system {name!r} needs at least one stack under 'stacks:'")
    stacks = [_stack(doc, at + ("stacks", sname), sname, sspec) for sname, sspec in stacks_spec.items()]
    seen: dict[str, str] = {}
    for stack in stacks:
        for app in stack.apps:
            if app.name in seen:
                doc.fail(at + ("stacks", stack.name), f"app {app.name!r} is pinned by stacks {seen[app.name]!r} "
                         f"and {stack.name!r}: app names are unique in a system (they name versions)")
            seen[app.name] = stack.name
    registry = _registry(doc, spec.get("registry"), at + ("registry",), default_registry)
    return System(name, tuple(stacks), secrets, tag), registry


def _stack(doc: YamlDoc, at: tuple, name, spec) -> Stack:
    doc.check_name(at, name, "stack", grammar.SAFE_NAME)
    spec = doc.mapping(at, spec)
    doc.only_keys(at, spec, {"compose", "image", "tag_var", "images", "health", "wait", "project", "scale",
                             "require_healthcheck"})
    health = spec.get("health")
    if health is not None:
        doc.matching(at + ("health",), health, grammar.URL, "must be an http(s) URL")
    project = spec.get("project")
    if project is not None:
        doc.matching(at + ("project",), project, grammar.COMPOSE_PROJECT,
                     "is not a compose project name (lower case letters, digits, '-' and '_')")
    scale = tuple((doc.matching(at + ("scale", svc), svc, grammar.SERVICE, "is not a compose service name"),
                   doc.integer(at + ("scale", svc), n, 0, 100))
                  for svc, n in doc.mapping(at + ("scale",), spec.get("scale", {})).items())
    strict = doc.boolean(at + ("require_healthcheck",), spec.get("require_healthcheck", False))
    return Stack(name, doc.relpath(at + ("compose",), spec.get("compose")), _apps(doc, at, name, spec), health,
                 doc.integer(at + ("wait",), spec.get("wait", 120), 1, 3600), project, scale, strict)


def _apps(doc: YamlDoc, at: tuple, stack: str, spec: dict) -> tuple[App, ...]:
    """``image:`` (+ ``tag_var:``): one app named after the stack; ``images: {name: {image, tag_var}}``: one
    per image line of a compose file that runs several (each its own variable)."""
    if "images" in spec:
        for key in ("image", "tag_var"):
            if key in spec:
                doc.fail(at + (key,), f"give either {key}: or images:, not both")
        images = doc.mapping(at + ("images",), spec["images"])
        if not images:
            doc.fail(at + ("images",), "images: needs at least one image")
        apps = []
        for name, ispec in images.items():
            doc.check_name(at + ("images", name), name, "app", grammar.SAFE_NAME)
            ispec = doc.mapping(at + ("images", name), ispec)
            doc.only_keys(at + ("images", name), ispec, {"image", "tag_var"})
            if "tag_var" not in ispec:
                doc.fail(at + ("images", name), f"image {name!r} needs its own tag_var: (the variable of its "
                         "image line in the compose file)")
            apps.append(_app(doc, at + ("images", name), name, ispec))
        variables = [a.tag_var for a in apps]
        for a in apps:
            if variables.count(a.tag_var) > 1:
                doc.fail(at + ("images", a.name, "tag_var"), f"two images of stack {stack!r} use {a.tag_var}: "
                         "each needs its own variable, or one would run the other's digest")
        return tuple(apps)
    if "image" in spec:
        return (_app(doc, at, stack, spec),)
    if "tag_var" in spec:
        doc.fail(at + ("tag_var",), "tag_var: without image: (the stack pins nothing)")
    return ()


def _app(doc: YamlDoc, at: tuple, name: str, spec: dict) -> App:
    image = doc.matching(at + ("image",), spec.get("image"), grammar.IMAGE_NAME,
                         "is not an image repository (no tag: the tool picks it)")
    tag_var = doc.matching(at + ("tag_var",), spec.get("tag_var", "IMAGE_TAG"), grammar.ENV_VAR,
                           "must be an UPPER_CASE variable name")
    return App(name, image, tag_var)


def _host(doc: YamlDoc, name: str, spec, systems: dict, default_registry: Registry) -> Host:
    at = ("hosts", name)
    spec = doc.mapping(at, spec)
    doc.only_keys(at, spec, {"address", "user", "port", "root", "systems", "identity", "known_hosts", "registry",
                             "legacy"})
    names = spec.get("systems")
    if not isinstance(names, list) or not names:
        doc.fail(at + ("systems",), f"host {name!r} needs a list of systems, e.g. systems: [ems_system]")
    chosen = []
    for i, sname in enumerate(names):
        if not isinstance(sname, str) or sname not in systems:
            doc.fail(at + ("systems", i), f"host {name!r} runs unknown system {sname!r} (known: {', '.join(sorted(systems)) or 'none'})")
        if sname in names[:i]:
            doc.fail(at + ("systems", i), f"host {name!r} lists system {sname!r} twice")
        chosen.append(systems[sname])
    system_registry = next((r for s, r in chosen if r), None) or default_registry
    host_registry = _registry(doc, spec.get("registry"), at + ("registry",), system_registry)
    opt = {k: doc.string(at + (k,), spec[k]) for k in ("identity", "known_hosts") if k in spec}
    runs = [s.name for s, _ in chosen]
    legacy = tuple((sname, _legacy(doc, at + ("legacy", sname), sname, lspec, name, runs))
                   for sname, lspec in doc.mapping(at + ("legacy",), spec.get("legacy", {})).items())
    host = Host(name=name, address=doc.string(at + ("address",), spec.get("address")),
                systems=tuple(s for s, _ in chosen),
                registry=host_registry or system_registry,
                user=doc.string(at + ("user",), spec.get("user", "root")),
                port=doc.integer(at + ("port",), spec.get("port", 22), 1, 65535),
                root=doc.abspath(at + ("root",), spec.get("root", "/root")), legacy=legacy,
                **{k: os.path.expanduser(v) for k, v in opt.items()})
    projects = host.projects()
    twice = sorted({p for p in projects if projects.count(p) > 1})
    if twice:
        doc.fail(at + ("systems",), f"host {name!r} would run compose project {', '.join(twice)} for two stacks: "
                 "give one of them another 'project:'")
    for target in host.targets():
        for what, old, new in target.migration_copies():
            if _overlap(old, new):
                doc.fail(at + ("legacy", target.system.name, what),
                         f"legacy {what} {old} overlaps its new location {new}: the copy would be a no-op and "
                         "--remove-old would delete live data")
    return host


def _overlap(a: str, b: str) -> bool:
    """The same folder, or one inside the other."""
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def _legacy(doc: YamlDoc, at: tuple, system: str, spec, host: str, runs: list[str]) -> Legacy:
    if system not in runs:
        doc.fail(at, f"legacy layout given for {system!r}, which host {host!r} does not run")
    spec = doc.mapping(at, spec)
    doc.only_keys(at, spec, {"repo", "letsencrypt", "uploads", "logs", "volumes"})
    paths = {k: doc.abspath(at + (k,), spec[k]) for k in ("repo", "letsencrypt", "uploads", "logs") if k in spec}
    if "repo" not in paths:
        doc.fail(at, f"{doc.where(at)}.repo (the old checkout) is missing")
    volumes = spec.get("volumes", [])
    if not isinstance(volumes, list) or not all(isinstance(v, str) and grammar.SAFE_NAME.fullmatch(v) for v in volumes):
        doc.fail(at + ("volumes",), "volumes must be a list of volume names")
    return Legacy(volumes=tuple(volumes), **paths)
