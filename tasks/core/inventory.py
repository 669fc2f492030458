"""hosts.yml: which hosts exist, which systems run on them and how their stacks are brought up.

Loaded once per task and validated completely before anything remote happens: first each file against its
schema (``hostsfile``), then what only the whole inventory can tell (a stack placed on a host that does not run
its system, a group naming an unknown host). Every error of a stage is reported at once, each with the file,
the line and what is wrong. ``hosts.d/*.yml`` beside the main file may add hosts, systems and groups (the
sandbox writes its host there). What it builds are the configuration objects of ``model``.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import hookspecs
from .cluster import Swarm
from .errors import BAD_INPUT, ToolError
from .model import Host, Inventory, Registry, System
from .values import is_ip
from .yamldoc import YamlDoc


def default_path() -> Path:
    """FAB_INVENTORY if set, else hosts.yml in the current directory."""
    return Path(os.environ.get("FAB_INVENTORY", "hosts.yml"))


class Problems:
    """The errors found so far, each ``file:line: message``, raised together in file order."""

    def __init__(self):
        self.found: list[tuple[int, int, str]] = []

    def add(self, doc: YamlDoc, at: tuple, message: str, order: int = 0) -> None:
        self.found.append((order, doc.line(at), f"{doc.path}:{doc.line(at)}: {message}"))

    def raise_any(self) -> None:
        if self.found:
            raise ToolError("\n".join(dict.fromkeys(m for _, _, m in sorted(self.found))), BAD_INPUT)


def load(path: Path | None = None) -> Inventory:
    """Read and validate the inventory at ``path`` plus any ``hosts.d/*.yml`` beside it."""
    from pydantic import ValidationError  # pydantic: only for the tasks that read an inventory

    from . import hostsfile
    from .stackspecs import TAGS
    from .values import explain

    path = Path(path or default_path())
    if not path.exists():
        raise ToolError(f"inventory not found: {path} (set FAB_INVENTORY or run from the project folder)", BAD_INPUT)
    docs = [YamlDoc.read(path)] + [YamlDoc.read(p) for p in sorted((path.parent / "hosts.d").glob("*.yml"))]
    problems = Problems()
    files = []
    for order, doc in enumerate(docs):
        try:
            files.append((hostsfile.HostsFile if order == 0 else hostsfile.Fragment).model_validate(doc.data))
        except ValidationError as e:
            for at, message in explain(e, TAGS):
                problems.add(doc, at, message, order)
    problems.raise_any()
    inv = _join(path, docs, files, problems)
    problems.raise_any()
    return inv


def _join(path: Path, docs: list[YamlDoc], files: list, problems: Problems) -> Inventory:
    """The files as one inventory: each name defined once, every reference known."""
    registry = files[0].registry.over(None)
    inv = Inventory(path, github_api=files[0].github_api, hooks=hookspecs.build(files[0].hooks, files[0].notify))
    where: dict[tuple[str, str], tuple[int, YamlDoc]] = {}
    specs: dict[str, dict] = {"systems": {}, "hosts": {}, "groups": {}}
    for order, (doc, spec) in enumerate(zip(docs, files, strict=True)):
        for kind, named in specs.items():
            for name, value in getattr(spec, kind).items():
                if name in named:
                    problems.add(doc, (kind, name), f"{kind[:-1]} {name!r} is defined twice", order)
                named[name], where[kind, name] = value, (order, doc)
    systems = {name: spec.build(name, registry) for name, spec in specs["systems"].items()}
    inv.systems = {name: system for name, (system, _) in systems.items()}

    def fail(kind: str, name: str, at: tuple, message: str) -> None:
        order, doc = where[kind, name]
        problems.add(doc, (kind, name) + at, message, order)

    for name, members in specs["groups"].items():
        if name in specs["hosts"]:
            fail("groups", name, (), f"group {name!r} has the name of a host: a stack's hosts: could mean either")
        for i, host in enumerate(members):
            if host not in specs["hosts"]:
                fail("groups", name, (i,), f"group {name!r} lists unknown host {host!r} (known: "
                     f"{', '.join(sorted(specs['hosts']))})")
    inv.groups = {name: tuple(members) for name, members in specs["groups"].items()}
    for system in inv.systems.values():
        for stack in system.stacks:
            for placed in stack.hosts:
                for message in _placement(stack.name, placed, system.name, specs["hosts"], inv.groups):
                    fail("systems", system.name, ("stacks", stack.name, "hosts"), message)
    for name, spec in specs["hosts"].items():
        host = _host(name, spec, systems, registry, inv.groups, lambda at, m, n=name: fail("hosts", n, at, m))
        if host:
            inv.hosts[name] = host
    inv.swarm = _swarm(files[0].swarm, specs["hosts"], inv.groups, lambda at, m: problems.add(docs[0], at, m))
    for name, spec in specs["hosts"].items():
        for at, message in _node(name, spec, inv.swarm):
            fail("hosts", name, at, message)
    for name, system in inv.systems.items():
        if system.engine == "swarm" and inv.swarm is None:
            fail("systems", name, ("engine",), f"system {name!r} runs on a swarm (engine: swarm) but hosts.yml has "
                                               "no swarm: (managers: [...], workers: [...])")
    for host in inv.hosts.values():
        for at, message in _on_swarm(host, inv.swarm):
            fail("hosts", host.name, at, message)
    return inv


def _on_swarm(host: Host, swarm: Swarm | None) -> list[tuple[tuple, str]]:
    """What is wrong with ``host`` running a system of engine: swarm: its files and its deploys are a
    manager's, and the manager's registry login is what it sends the nodes that pull."""
    mine = [i for i, s in enumerate(host.systems) if s.engine == "swarm"]
    if not mine or swarm is None:
        return []
    if host.name not in swarm.managers:
        return [(("systems", mine[0]), f"host {host.name!r} runs {host.systems[mine[0]].name!r}, a swarm system, but "
                                       "is not a manager of swarm: (its stacks are deployed through a manager)")]
    if host.registry.logout:
        return [(("registry", "logout"), f"host {host.name!r} deploys a swarm system: its registry login is sent to "
                                         "the nodes that pull (--with-registry-auth), so it cannot log out")]
    return []


def _swarm(spec, hosts: dict, groups: dict, fail) -> Swarm | None:
    """swarm: with its groups resolved to hosts, each host in one role; None when hosts.yml has none."""
    if spec is None:
        return None
    roles: dict[str, list[str]] = {}
    for role in ("managers", "workers"):
        members = roles[role] = []
        for i, name in enumerate(getattr(spec, role)):
            if name not in hosts and name not in groups:
                fail(("swarm", role, i), f"swarm {role} lists {name!r}, which is neither a host nor a group "
                     f"(hosts: {', '.join(sorted(hosts))}; groups: {', '.join(sorted(groups)) or 'none'})")
            members.extend(h for h in groups.get(name, (name,)) if h in hosts and h not in members)
    for i, name in enumerate(spec.workers):
        both = [h for h in groups.get(name, (name,)) if h in roles["managers"]]
        if both:
            fail(("swarm", "workers", i), f"{', '.join(both)} cannot be both a manager and a worker of the swarm")
    if not roles["managers"]:
        fail(("swarm", "managers"), "a swarm needs at least one manager")
    return Swarm(tuple(roles["managers"]), tuple(h for h in roles["workers"] if h not in roles["managers"]))


def _node(name: str, spec, swarm: Swarm | None) -> list[tuple[tuple, str]]:
    """What is wrong with host ``name`` as a Swarm node, or as a host outside the swarm: (where, message)."""
    if swarm is None or not swarm.role(name):
        out = [(("labels",), f"host {name!r} has node labels but is not in swarm: (managers or workers)")] \
            if spec.labels else []
        if not spec.systems:
            out.append((("systems",), f"host {name!r} runs no system: list the ones it runs (only a Swarm "
                                      "worker may run none)"))
        return out
    if spec.swarm_address or is_ip(spec.address):
        return []
    return [(("address",), f"host {name!r} is a Swarm node whose address {spec.address!r} is a name: give "
                           "swarm_address: the IP the other nodes reach it at")]


def _placement(stack: str, name: str, system: str, hosts: dict, groups: dict) -> list[str]:
    """What is wrong with placing ``stack`` on ``name``: neither a host nor a group, or a host that does not run
    the stack's system."""
    if name not in hosts and name not in groups:
        return [f"stack {stack!r} is placed on {name!r}, which is neither a host nor a group (hosts: "
                f"{', '.join(sorted(hosts))}; groups: {', '.join(sorted(groups)) or 'none'})"]
    return [f"stack {stack!r} is placed on host {host!r}, which does not run system {system!r} (add it to that "
            "host's systems:)" for host in groups.get(name, (name,)) if host in hosts and system not in
            hosts[host].systems]


def _host(name: str, spec, systems: dict, registry: Registry, groups: dict, fail) -> Host | None:
    """The host ``name`` with its systems as placed on it, or None after saying what is wrong."""
    chosen: list[tuple[System, Registry | None]] = []
    for i, sname in enumerate(spec.systems):
        if sname not in systems:
            fail(("systems", i), f"host {name!r} runs unknown system {sname!r} (known: "
                 f"{', '.join(sorted(systems)) or 'none'})")
            continue
        system, own_registry = systems[sname]
        here = system.placed(name, groups)
        if not here.stacks:
            fail(("systems", i), f"host {name!r} runs system {sname!r}, but none of its stacks is placed on it "
                 "(their hosts: lists name other hosts)")
        chosen.append((here, own_registry))
    for sname in spec.legacy:
        if sname not in spec.systems:
            fail(("legacy", sname), f"legacy layout given for {sname!r}, which host {name!r} does not run")
    if len(chosen) < len(spec.systems):
        return None
    system_registry = next((r for _, r in chosen if r), None) or registry
    host = Host(name=name, address=spec.address, systems=tuple(s for s, _ in chosen),
                registry=spec.registry.over(system_registry) if spec.registry else system_registry,
                user=spec.user, sudo=spec.sudo, bootstrap=spec.bootstrap.build(), port=spec.port, root=spec.root,
                identity=spec.identity and os.path.expanduser(spec.identity),
                known_hosts=spec.known_hosts and os.path.expanduser(spec.known_hosts),
                labels=tuple(spec.labels.items()), swarm_address=spec.swarm_address,
                legacy=tuple((s, legacy.build()) for s, legacy in spec.legacy.items() if s in spec.systems))
    projects = host.projects()
    twice = sorted({p for p in projects if projects.count(p) > 1})
    if twice:
        fail(("systems",), f"host {name!r} would run compose project {', '.join(twice)} for two stacks: give one "
             "of them another 'project:'")
    releases = [(t.system.name, s.name, s.binary.releases) for t in host.targets() for s in t.system.binaries()]
    for i, (system, stack, folder) in enumerate(releases):
        other = next((f"{o}/{n}" for o, n, f in releases[:i] if f == folder), None)
        if other:
            fail(("systems",), f"binary stacks {other} and {system}/{stack} would share {folder} on host {name!r}: "
                 "pruning one would delete the other's live release; give each binary a folder of its own")
    for target in host.targets():
        for what, old, new in target.migration_copies():
            if _overlap(old, new):
                fail(("legacy", target.system.name, what), f"legacy {what} {old} overlaps its new location {new}: "
                     "the copy would be a no-op and --remove-old would delete live data")
    return host


def _overlap(a: str, b: str) -> bool:
    """The same folder, or one inside the other."""
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")
