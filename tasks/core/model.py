"""The configuration objects: hosts, the systems they run, each system's stacks and the apps (images) they pin.
A ``Target`` (one system on one host) owns every path of it on the host. Built by ``hostsfile``'s models, which
declare each key of hosts.yml once with its default (none is repeated here); nothing here reads a file."""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import grammar
from .backupplan import BackupPlan
from .cluster import Swarm
from .errors import BAD_INPUT, ToolError
from .hooks import Hooks
from .jobs import Job
from .target import Target

DEFAULT_GITHUB_API = "https://api.github.com"


@dataclass(frozen=True)
class Registry:
    server: str
    username: str
    logout: bool           # docker logout after the pulls: no credentials left in ~/.docker/config.json
    github_api: str | None          # opt-in: this registry's password is a GitHub token; ask this API about it
    per_deploy: bool = False        # registry.token: per-deploy: the VPS keeps no token, each run brings one


@dataclass(frozen=True)
class App:
    """One image the tool pins: ``name`` is unique in its system (the key of pins, history and ``--tag
    name=TAG``), ``tag_var`` the variable of the compose file's image line that carries its tag@digest."""
    name: str
    image: str                # the repository, without a tag
    tag_var: str


@dataclass(frozen=True)
class Database:
    """A stack's PostgreSQL, which ``fab backup`` dumps and ``fab restore`` restores: the compose service it
    runs as, the role to connect as (None: the container's POSTGRES_USER, as the official image sets it) and
    the databases (empty: every database but the templates and ``postgres``)."""
    service: str
    user: str | None
    databases: tuple[str, ...]


@dataclass(frozen=True)
class NginxPool:
    """nginx in front of start-first services (seed 002): nginx resolves a name once and Docker's DNS answers
    with every running container, healthy or not, so the tool owns the pool instead: one ``upstream SERVICE``
    block per proxied service, listing its healthy containers, written to ``folder`` (beside the compose
    file, mounted into nginx, included by its nginx.conf) and nginx reloaded (gracefully) at each change."""
    service: str                               # the compose service that runs nginx, in the same stack
    upstreams: tuple[tuple[str, int], ...]     # (proxied service, its port): only these roll start-first
    folder: str                                # relative to the compose file's folder


@dataclass(frozen=True)
class StartFirst:
    """``rollout: start-first``: a stack of stateless services behind a proxy changes without downtime: each
    service's new containers start beside the old ones and take traffic only once healthy; the old ones are
    drained out of the proxy's pool before they stop. The default (no StartFirst) stops, then starts. The
    proxy is Traefik (health-filtered docker labels) unless ``nginx`` says otherwise."""
    drain: int                              # seconds the proxy needs to drop a container that turned unhealthy
    batch: int                              # replicas replaced at a time (0: all of a service's at once)
    shared_volumes: tuple[str, ...]         # named volumes old and new containers may both write (allowed here)
    nginx: NginxPool | None                 # nginx in front: the tool writes its upstreams and reloads it


@dataclass(frozen=True)
class Binary:
    """A stack that is one executable run by a systemd unit (seed 003's Go binary), not a compose file. Each
    release lives in releases/<tag>/ beside ``path``, which becomes a symlink the tool switches atomically."""
    path: str                        # the live path the unit's ExecStart runs (absolute)
    unit: str                        # the systemd unit, without .service
    owner: str | None                # user[:group] of the release folders (the seed's chown -R opc:opc)
    mode: str
    keep: int                        # releases kept beside it (the live one and the one before always)
    unit_template: str | None        # relative to <root>/<system>: fab setup installs it as the unit file
    certs: str | None = None         # the folder its own ACME client keeps certificates in (fab doctor reads them)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def releases(self) -> str:
        return posixpath.join(posixpath.dirname(self.path), "releases")

    @property
    def unit_file(self) -> str:
        return f"/etc/systemd/system/{self.unit}.service"

    @property
    def env_dir(self) -> str:
        """The tool's folder for the unit's EnvironmentFile (setup creates the file there, root's only)."""
        return f"/etc/{self.unit}"

    @property
    def carried(self) -> tuple[str, ...]:
        """What a copy off the VPS holds of it beside the backups: every release kept (a rollback works on a
        rebuilt server too) and its environment folder (values written on the VPS, kept nowhere else)."""
        return (self.releases, self.env_dir)


@dataclass(frozen=True)
class Stack:
    """One compose stack of a system and the apps (images) it pins: none for a stack whose images the tool
    does not pin (Traefik, PostgreSQL): those are only brought up, in order. EnlevoHub's one compose file pins
    two (backend, frontend), each with its own variable."""
    name: str
    compose: str | None       # relative to <root>/<system>; None for a binary
    apps: tuple[App, ...]
    health: str | None
    wait: int
    project: str | None          # keep the compose project of a stack started by hand (its containers, volumes)
    scale: tuple[tuple[str, int], ...]        # (service, replicas): honoured by every up, restore and rollback
    require_healthcheck: bool           # refuse a deploy whose pinned services have no healthcheck
    env_template: str | None            # the file beside the compose file its .env is made from
    placeholders: tuple[str, ...]       # more values that must not stay in its .env (a template's defaults)
    database: Database | None           # a PostgreSQL the tool backs up and restores
    binary: Binary | None               # a binary under systemd instead of a compose file (its app: the stack)
    hosts: tuple[str, ...]              # placement: the hosts or groups it runs on (empty: every host of the system)
    start_first: StartFirst | None          # rollout: start-first (None: stop, then start)
    jobs: tuple[Job, ...] = ()              # run-once jobs (jobs.py), in hosts.yml's order


@dataclass(frozen=True)
class System:
    name: str
    stacks: tuple[Stack, ...]
    secrets: str
    tag: str | None
    backup: BackupPlan
    together: tuple[tuple[str, ...], ...]   # consecutive stacks independent of each other: brought up at once
    elsewhere: tuple[str, ...] = ()      # stacks placed only on other hosts (a host's view of a placed system)
    repo: Repo | None = None             # where setup clones repo/ from (None: the operator puts it there)
    prune: int | None = None             # after every good deploy, prune images keeping this many good releases'
    engine: str = "compose"              # or "swarm": its stacks deployed with `docker stack deploy` on a manager
    must_match: tuple[tuple[str, ...], ...] = ()   # STACK:KEY groups whose values must be equal (fab env-check)

    def placed(self, host: str, groups: dict[str, tuple[str, ...]]) -> System:
        """This system as ``host`` runs it: only the stacks placed there (``hosts:`` naming it or one of its
        groups; a stack without ``hosts:`` runs everywhere); the others are ``elsewhere``."""
        here = tuple(s for s in self.stacks if not s.hosts
                     or any(host == n or host in groups.get(n, ()) for n in s.hosts))
        before = self.backup.before_deploy and any(s.database for s in here)
        return replace(self, stacks=here, elsewhere=tuple(s.name for s in self.stacks if s not in here),
                       backup=replace(self.backup, before_deploy=before))

    @property
    def databases(self) -> list[Stack]:
        """The stacks that hold a database (``database:`` in hosts.yml), in order."""
        return [s for s in self.stacks if s.database]

    def backup_stack(self, name: str) -> Stack | None:
        """The database stack backup ``name`` belongs to (backups are named <stack>-<UTC time>)."""
        return next((s for s in self.databases if name.startswith(s.name + "-")
                     and grammar.BACKUP_STAMP.fullmatch(name[len(s.name) + 1:])), None)

    def apps(self, stacks: list[Stack] | None = None) -> list[App]:
        """The apps (pinned images) of ``stacks`` (default: every stack), in stack order."""
        return [a for s in (self.stacks if stacks is None else stacks) for a in s.apps]

    @property
    def needs_token(self) -> bool:
        """A system that pins images pulls them from its registry with a token; one of public images only
        (Plantão's PostgreSQL, a binary) needs no token, no secrets folder and no login."""
        return bool(self.apps())

    @property
    def needs_docker(self) -> bool:
        """Every system does but one of binaries alone, which pulls no image (its artifacts come over https)."""
        return self.needs_token or not all(s.binary for s in self.stacks)

    def versioned(self, stacks: list[Stack] | None = None) -> list[str]:
        """What a release pins a version of, in stack order: each app (image), and each binary stack (named
        after its stack). The keys of pins, history and ``--tag name=TAG``."""
        return [n for s in (self.stacks if stacks is None else stacks)
                for n in ([s.name] if s.binary else [a.name for a in s.apps])]

    def binaries(self, stacks: list[Stack] | None = None) -> list[Stack]:
        return [s for s in (self.stacks if stacks is None else stacks) if s.binary]

    def selected(self, only: list[str] | None) -> list[Stack]:
        """The stacks in their configured order, limited to ``only`` when given (unknown names refused)."""
        known = [s.name for s in self.stacks]
        unknown = [n for n in only or [] if n not in known + list(self.elsewhere)]
        if unknown:
            raise ToolError(f"system {self.name} has no stack {', '.join(unknown)} (stacks: {', '.join(known)})",
                            BAD_INPUT)
        return [s for s in self.stacks if not only or s.name in only]


@dataclass(frozen=True)
class Legacy:
    """Where a system lived before seed 001's hierarchy (for migrate-layout). Absolute paths on the host."""
    repo: str                       # the old git checkout (holds servers/...)
    letsencrypt: str | None         # the old Traefik ACME folder
    uploads: str | None             # the old uploads folder (with <app>/ inside)
    logs: str | None                # the old logs folder (with <app>/ inside)
    volumes: tuple[str, ...]        # named volumes that must survive untouched (PostgreSQL's)


@dataclass(frozen=True)
class Repo:
    """Where a system's repo/ is cloned from: ``url`` at ``ref``; ``known_host`` pins the git server's key."""
    url: str
    ref: str
    known_host: str = ""


@dataclass(frozen=True)
class Bootstrap:
    """How `fab bootstrap` installs Docker: ``docker`` distro or docker-ce; ``mirror`` a URL standing in for either."""
    docker: str = "distro"
    mirror: str | None = None


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    systems: tuple[System, ...]
    registry: Registry
    user: str
    port: int
    root: str
    identity: str | None
    known_hosts: str | None
    legacy: tuple        # (system name, Legacy) pairs
    sudo: bool = False   # log in as ``user`` and run every program as root through `sudo -n` (seed 003's opc)
    bootstrap: Bootstrap = Bootstrap()
    labels: tuple[tuple[str, str], ...] = ()   # Swarm node labels (fab swarm init sets them)
    swarm_address: str | None = None           # where the other Swarm nodes reach it (None: address, an IP)

    @property
    def node_address(self) -> str:
        """The address this host is a Swarm node at (the inventory checked it is an IP)."""
        return self.swarm_address or self.address

    def projects(self) -> list[str]:
        """Every compose project the tool runs on this host (what is not one of them was started by hand)."""
        return [t.project(s) for t in self.targets() for s in t.system.stacks if not s.binary]

    def targets(self, only: str | None = None) -> list[Target]:
        """Each system of this host as a Target, or just the system ``only`` (which must be one of them)."""
        chosen = [s for s in self.systems if not only or s.name == only]
        if only and not chosen:
            raise ToolError(f"host {self.name} runs no system {only!r} (it runs "
                            f"{', '.join(s.name for s in self.systems)})", BAD_INPUT)
        return [Target(self, s) for s in chosen]


@dataclass
class Inventory:
    path: Path
    github_api: str | None          # where to ask GitHub about a token (default api.github.com for ghcr.io)
    hosts: dict[str, Host] = field(default_factory=dict)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)   # name -> host names, as listed
    systems: dict[str, System] = field(default_factory=dict)           # every stack, wherever it is placed
    swarm: Swarm | None = None                                           # swarm: in hosts.yml
    hooks: Hooks | None = None                                           # hooks: and notify: in hosts.yml

    def choose(self, hosts: list[str] | None, group: str | None, every: bool) -> list[Host]:
        """The hosts a task acts on: ``--host a,b`` (each must be in the inventory), ``--group NAME`` or
        ``--all`` (exactly one of them), in the order given, each once."""
        if sum(map(bool, (hosts, group, every))) > 1:
            raise ToolError("give one of --host, --group and --all", BAD_INPUT)
        if every:
            return list(self.hosts.values())
        if group:
            if group not in self.groups:
                raise ToolError(f"unknown group {group!r}: {self.path} has {', '.join(sorted(self.groups)) or 'none'}",
                                BAD_INPUT)
            return [self.hosts[n] for n in self.groups[group]]
        return [self.host(n) for n in dict.fromkeys(hosts or [None])]

    def order(self, system: str, stack: str) -> int:
        """Where ``stack`` comes in its system's configured order (across every host it is placed on)."""
        return [s.name for s in self.systems[system].stacks].index(stack)

    def host(self, name: str | None) -> Host:
        """The host called ``name``; a clear error listing the known ones otherwise."""
        known = ", ".join(sorted(self.hosts)) or "none"
        if not name:
            raise ToolError(f"say which host: --host NAME[,NAME], --group NAME or --all (known hosts in {self.path}: "
                            f"{known})", BAD_INPUT)
        if name not in self.hosts:
            raise ToolError(f"unknown host {name!r}: {self.path} knows {known}", BAD_INPUT)
        return self.hosts[name]

    def github_api_for(self, host: Host) -> str:
        """Where to ask GitHub about ``host``'s token (every caller asks here): the registry's own github_api
        (an explicit opt-in), else for ghcr.io the inventory's github_api or api.github.com. Any other
        registry's password is not a GitHub token and is never sent to GitHub: empty means never ask."""
        ghcr = (self.github_api or DEFAULT_GITHUB_API) if host.registry.server == "ghcr.io" else ""
        return host.registry.github_api or ghcr
