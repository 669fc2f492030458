"""hosts.yml: which hosts exist, which systems run on them and how their stacks are brought up.

Loaded once per task and validated completely before anything remote happens; every error names the file, the
line and what is wrong. ``hosts.d/*.yml`` beside the main file may add hosts and systems (the sandbox writes its
host there). What it builds are the configuration objects of ``model``.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import grammar
from .errors import BAD_INPUT, ToolError
from .model import (
    DEFAULT_SECRETS,
    App,
    Binary,
    Database,
    Host,
    Inventory,
    Legacy,
    NginxPool,
    Registry,
    Retention,
    Stack,
    StartFirst,
    System,
)
from .yamldoc import YamlDoc


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
    system_docs: dict[str, YamlDoc] = {}
    host_nodes: dict[str, tuple[YamlDoc, dict]] = {}
    group_nodes: dict[str, tuple[YamlDoc, object]] = {}
    for doc in [main] + extra:
        doc.only_keys((), doc.data, {"registry", "github_api", "systems", "hosts", "groups"} if doc is main
                      else {"systems", "hosts", "groups"})
        for name, spec in doc.mapping(("systems",), doc.data.get("systems", {})).items():
            doc.check_name(("systems", name), name, "system", grammar.SAFE_NAME)
            if name in systems:
                doc.fail(("systems", name), f"system {name!r} is defined twice")
            systems[name], system_docs[name] = _system(doc, name, spec, registry), doc
        for name, spec in doc.mapping(("hosts",), doc.data.get("hosts", {})).items():
            doc.check_name(("hosts", name), name, "host", grammar.SAFE_NAME)
            if name in host_nodes:
                doc.fail(("hosts", name), f"host {name!r} is defined twice")
            host_nodes[name] = (doc, spec)
        for name, members in doc.mapping(("groups",), doc.data.get("groups", {})).items():
            if name in group_nodes:
                doc.fail(("groups", name), f"group {name!r} is defined twice")
            group_nodes[name] = (doc, members)
    inv = Inventory(path)
    if "github_api" in main.data:
        inv.github_api = _api_url(main, ("github_api",), main.data["github_api"])
    inv.groups = {name: _group(doc, name, members, host_nodes) for name, (doc, members) in group_nodes.items()}
    inv.systems = {name: system for name, (system, _) in systems.items()}
    for name, system in inv.systems.items():
        _check_placement(system_docs[name], system, inv.groups, host_nodes)
    for name, (doc, spec) in host_nodes.items():
        inv.hosts[name] = _host(doc, name, spec, systems, registry, inv.groups)
    return inv


def _group(doc: YamlDoc, name: str, members, hosts: dict) -> tuple[str, ...]:
    """``groups: {NAME: [host, ...]}``: hosts selected together (``--group NAME``) and placed together."""
    at = ("groups", name)
    doc.check_name(at, name, "group", grammar.SAFE_NAME)
    if name in hosts:
        doc.fail(at, f"group {name!r} has the name of a host: a stack's hosts: could mean either")
    if not isinstance(members, list) or not members:
        doc.fail(at, f"group {name!r} needs a list of hosts, e.g. {name}: [vps1, vps2]")
    for i, host in enumerate(members):
        if not isinstance(host, str) or host not in hosts:
            doc.fail(at + (i,), f"group {name!r} lists unknown host {host!r} (known: {', '.join(sorted(hosts))})")
        if host in members[:i]:
            doc.fail(at + (i,), f"group {name!r} lists host {host!r} twice")
    return tuple(members)


def _check_placement(doc: YamlDoc, system: System, groups: dict, hosts: dict) -> None:
    """Each name in a stack's ``hosts:`` is a host or a group, and each of those hosts runs the system."""
    for stack in system.stacks:
        at = ("systems", system.name, "stacks", stack.name, "hosts")
        for name in stack.hosts:
            if name not in hosts and name not in groups:
                doc.fail(at, f"stack {stack.name!r} is placed on {name!r}, which is neither a host nor a group "
                         f"(hosts: {', '.join(sorted(hosts))}; groups: {', '.join(sorted(groups)) or 'none'})")
            for host in groups.get(name, (name,)):
                spec = hosts[host][1]
                if not isinstance(spec, dict) or system.name not in (spec.get("systems") or []):
                    doc.fail(at, f"stack {stack.name!r} is placed on host {host!r}, which does not run system "
                             f"{system.name!r} (add it to that host's systems:)")


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
    doc.only_keys(at, spec, {"secrets", "stacks", "registry", "tag", "backup", "together"})
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
    keep, before = _backup(doc, at + ("backup",), spec.get("backup", {}))
    if before and not any(s.database for s in stacks):
        doc.fail(at + ("backup", "before_deploy"), f"system {name!r} has no stack with database: to back up")
    together = _together(doc, at + ("together",), spec.get("together", []), [s.name for s in stacks])
    return System(name, tuple(stacks), secrets, tag, keep, before, together=together), registry


def _together(doc: YamlDoc, at: tuple, spec, names: list[str]) -> tuple[tuple[str, ...], ...]:
    """``together: [[ems, sms], ...]``: stacks that do not depend on each other, consecutive in the system's
    order, brought up at once (a deploy waits for the slowest, not for the sum)."""
    if not isinstance(spec, list):
        doc.fail(at, "together must be a list of lists of stacks, e.g. together: [[ems, sms]]")
    seen: set[str] = set()
    waves = []
    for i, wave in enumerate(spec):
        if not isinstance(wave, list) or len(wave) < 2 or not all(isinstance(n, str) for n in wave):
            doc.fail(at + (i,), "each entry of together: lists two or more stacks, e.g. [ems, sms]")
        unknown = [n for n in wave if n not in names]
        if unknown:
            doc.fail(at + (i,), f"together: names {', '.join(unknown)}, not a stack of this system "
                     f"(stacks: {', '.join(names)})")
        if seen & set(wave) or len(set(wave)) < len(wave):
            doc.fail(at + (i,), "a stack is in together: once at most")
        positions = sorted(names.index(n) for n in wave)
        if positions != list(range(positions[0], positions[0] + len(wave))):
            doc.fail(at + (i,), f"together: {', '.join(wave)} must be next to each other in stacks: (what comes "
                     "between them would have to be both before and after them)")
        seen |= set(wave)
        waves.append(tuple(names[p] for p in positions))
    return tuple(waves)


def _backup(doc: YamlDoc, at: tuple, spec) -> tuple[Retention, bool]:
    """``backup: {before_deploy: bool, keep: {last, daily, weekly, monthly}}`` of a system."""
    spec = doc.mapping(at, spec)
    doc.only_keys(at, spec, {"before_deploy", "keep"})
    keep = doc.mapping(at + ("keep",), spec.get("keep", {}))
    doc.only_keys(at + ("keep",), keep, {"last", "daily", "weekly", "monthly"})
    default = Retention()
    counts = {k: doc.integer(at + ("keep", k), keep.get(k, getattr(default, k)), 0, 1000)
              for k in ("last", "daily", "weekly", "monthly")}
    return Retention(**counts), doc.boolean(at + ("before_deploy",), spec.get("before_deploy", False))


def _database(doc: YamlDoc, at: tuple, spec) -> Database | None:
    """``database: {service, user, databases}`` of a stack: its PostgreSQL."""
    if spec is None:
        return None
    spec = doc.mapping(at, spec)
    doc.only_keys(at, spec, {"service", "user", "databases"})
    service = doc.matching(at + ("service",), spec.get("service"), grammar.SERVICE,
                           "must name the compose service that runs PostgreSQL")
    user = spec.get("user")
    if user is not None:
        doc.matching(at + ("user",), user, grammar.DB_NAME, "is not a PostgreSQL role name the tool accepts")
    names = spec.get("databases", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and grammar.DB_NAME.fullmatch(n) for n in names):
        doc.fail(at + ("databases",), "databases must be a list of database names (letters, digits, _ . -)")
    return Database(service, user, tuple(names))


def _stack(doc: YamlDoc, at: tuple, name, spec) -> Stack:
    doc.check_name(at, name, "stack", grammar.SAFE_NAME)
    spec = doc.mapping(at, spec)
    health = spec.get("health")
    if health is not None:
        doc.matching(at + ("health",), health, grammar.URL, "must be an http(s) URL")
    placed = _placement(doc, at + ("hosts",), spec.get("hosts", []))
    if "binary" in spec:
        doc.only_keys(at, spec, {"binary", "health", "wait", "hosts"})
        return Stack(name, None, health=health, wait=doc.integer(at + ("wait",), spec.get("wait", 60), 1, 3600),
                     binary=_binary(doc, at + ("binary",), spec["binary"]), hosts=placed)
    doc.only_keys(at, spec, {"compose", "image", "tag_var", "images", "health", "wait", "project", "scale",
                             "require_healthcheck", "env_template", "placeholders", "database", "binary", "hosts",
                             "rollout"})
    project = spec.get("project")
    if project is not None:
        doc.matching(at + ("project",), project, grammar.COMPOSE_PROJECT,
                     "is not a compose project name (lower case letters, digits, '-' and '_')")
    scale = tuple((doc.matching(at + ("scale", svc), svc, grammar.SERVICE, "is not a compose service name"),
                   doc.integer(at + ("scale", svc), n, 0, 100))
                  for svc, n in doc.mapping(at + ("scale",), spec.get("scale", {})).items())
    strict = doc.boolean(at + ("require_healthcheck",), spec.get("require_healthcheck", False))
    template = spec.get("env_template")
    if template is not None:
        doc.matching(at + ("env_template",), template, grammar.FILE_NAME,
                     "must be a file name beside the compose file (e.g. .env.production)")
    listed = spec.get("placeholders", [])
    if not isinstance(listed, list) or not all(isinstance(v, str) and grammar.PLACEHOLDER.fullmatch(v) for v in listed):
        doc.fail(at + ("placeholders",), "placeholders must be a list of values (one line each, 1-200 characters)")
    return Stack(name, doc.relpath(at + ("compose",), spec.get("compose")), _apps(doc, at, name, spec), health,
                 doc.integer(at + ("wait",), spec.get("wait", 120), 1, 3600), project, scale, strict, template,
                 tuple(listed), _database(doc, at + ("database",), spec.get("database")), hosts=placed,
                 start_first=_rollout(doc, at + ("rollout",), spec.get("rollout", "stop-first")))


def _rollout(doc: YamlDoc, at: tuple, spec) -> StartFirst | None:
    """A stack's ``rollout:``: stop-first (the default) or start-first, as a word or as ``{strategy:
    start-first, drain: 3, batch: 1, shared_volumes: [uploads]}``."""
    options = doc.mapping(at, spec) if isinstance(spec, dict) else {"strategy": spec}
    doc.only_keys(at, options, {"strategy", "drain", "batch", "shared_volumes", "nginx"})
    strategy = options.get("strategy", "start-first" if isinstance(spec, dict) else spec)
    if strategy not in ("stop-first", "start-first"):
        doc.fail(at, f"rollout must be stop-first (stop the old containers, then start the new) or start-first "
                     f"(new ones beside the old, behind a proxy), not {strategy!r}")
    if strategy == "stop-first":
        if set(options) - {"strategy"}:
            doc.fail(at, "drain, batch, shared_volumes and nginx are settings of rollout: start-first")
        return None
    shared = options.get("shared_volumes", [])
    if not isinstance(shared, list) or not all(isinstance(v, str) and grammar.SERVICE.fullmatch(v) for v in shared):
        doc.fail(at + ("shared_volumes",), "shared_volumes must be a list of the compose file's volume names")
    nginx = options.get("nginx")
    return StartFirst(doc.integer(at + ("drain",), options.get("drain", 3), 0, 300),
                      doc.integer(at + ("batch",), options.get("batch", 0), 0, 100), tuple(shared),
                      None if nginx is None else _nginx(doc, at + ("nginx",), nginx))


def _nginx(doc: YamlDoc, at: tuple, spec) -> NginxPool:
    """``rollout.nginx: {service: frontend, upstreams: {backend: 3001}, folder: upstreams}``."""
    spec = doc.mapping(at, spec)
    doc.only_keys(at, spec, {"service", "upstreams", "folder"})
    service = doc.matching(at + ("service",), spec.get("service"), grammar.SERVICE, "is not a compose service name")
    upstreams = tuple((doc.matching(at + ("upstreams", svc), svc, grammar.SERVICE, "is not a compose service name"),
                       doc.integer(at + ("upstreams", svc), port, 1, 65535))
                      for svc, port in doc.mapping(at + ("upstreams",), spec.get("upstreams")).items())
    if not upstreams:
        doc.fail(at + ("upstreams",), "upstreams must name the services nginx proxies to, with their port "
                 "(e.g. upstreams: {backend: 3001})")
    if service in dict(upstreams):
        doc.fail(at + ("service",), f"nginx's own service {service} cannot be one of its upstreams")
    folder = doc.matching(at + ("folder",), spec.get("folder", "upstreams"), grammar.FILE_NAME,
                          "must be a folder name beside the compose file (e.g. upstreams)")
    return NginxPool(service, upstreams, folder)


def _placement(doc: YamlDoc, at: tuple, spec) -> tuple[str, ...]:
    """A stack's ``hosts:``: a host or group name, or a list of them (checked against the inventory once it
    is read whole)."""
    names = [spec] if isinstance(spec, str) else spec
    if not isinstance(names, list) or not all(isinstance(n, str) and grammar.SAFE_NAME.fullmatch(n) for n in names):
        doc.fail(at, "hosts must be a host or group name, or a list of them (e.g. hosts: [app] or hosts: en4)")
    return tuple(dict.fromkeys(names))


def _binary(doc: YamlDoc, at: tuple, spec) -> Binary:
    """``binary: {path, unit, owner, mode, keep, unit_template}`` of a stack (seed 003's Go binary)."""
    spec = doc.mapping(at, spec)
    doc.only_keys(at, spec, {"path", "unit", "owner", "mode", "keep", "unit_template"})
    path = doc.abspath(at + ("path",), spec.get("path"))
    if path.count("/") < 2:
        doc.fail(at + ("path",), "must be a file in a folder of its own (e.g. /opt/plantao/escala-plantao): its "
                 "releases live beside it")
    unit = doc.matching(at + ("unit",), spec.get("unit"), grammar.UNIT, "is not a systemd unit name (e.g. plantao)")
    owner = spec.get("owner")
    if owner is not None:
        doc.matching(at + ("owner",), owner, grammar.OWNER, "must be user or user:group")
    mode = doc.matching(at + ("mode",), str(spec.get("mode", "0755")), grammar.FILE_MODE,
                        "must be an octal mode such as 0755 (quoted in YAML)")
    template = spec.get("unit_template")
    if template is not None:
        template = doc.relpath(at + ("unit_template",), template)
    return Binary(path, unit.removesuffix(".service"), owner, mode, doc.integer(at + ("keep",), spec.get("keep", 5), 2, 100),
                  template)


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


def _host(doc: YamlDoc, name: str, spec, systems: dict, default_registry: Registry, groups: dict) -> Host:
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
        system, own_registry = systems[sname]
        here = system.placed(name, groups)
        if not here.stacks:
            doc.fail(at + ("systems", i), f"host {name!r} runs system {sname!r}, but none of its stacks is placed "
                     f"on it (their hosts: lists name other hosts)")
        chosen.append((here, own_registry))
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
