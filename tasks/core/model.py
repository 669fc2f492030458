"""The configuration objects: hosts, the systems they run, each system's stacks and the apps (images) they pin,
and the paths derived from them. A ``Target`` (one system on one host) owns every path of it on the host: its
folder, state, secrets, compose files, .env files, compose projects and image repositories. Built and
validated by ``inventory.load`` from hosts.yml; nothing here reads a file.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import grammar
from .errors import BAD_INPUT, ToolError

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
class Database:
    """A stack's PostgreSQL, which ``fab backup`` dumps and ``fab restore`` restores: the compose service it
    runs as, the role to connect as (None: the container's POSTGRES_USER, as the official image sets it) and
    the databases (empty: every database but the templates and ``postgres``)."""
    service: str
    user: str | None = None
    databases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Retention:
    """How many backups to keep per stack: the ``last`` newest, and the newest of each of the last ``daily``
    days, ``weekly`` ISO weeks and ``monthly`` months that have one (a backup may count for several; restic's
    rules). The newest is always kept."""
    last: int = 3
    daily: int = 7
    weekly: int = 4
    monthly: int = 6

    def __str__(self) -> str:
        return f"keep last {self.last}, daily {self.daily}, weekly {self.weekly}, monthly {self.monthly}"


@dataclass(frozen=True)
class NginxPool:
    """nginx in front of start-first services (seed 002): nginx resolves a name once and Docker's DNS answers
    with every running container, healthy or not, so the tool owns the pool instead: one ``upstream SERVICE``
    block per proxied service, listing its healthy containers, written to ``folder`` (beside the compose
    file, mounted into nginx, included by its nginx.conf) and nginx reloaded (gracefully) at each change."""
    service: str                               # the compose service that runs nginx, in the same stack
    upstreams: tuple[tuple[str, int], ...]     # (proxied service, its port): only these roll start-first
    folder: str = "upstreams"                  # relative to the compose file's folder


@dataclass(frozen=True)
class StartFirst:
    """``rollout: start-first``: a stack of stateless services behind a proxy changes without downtime: each
    service's new containers start beside the old ones and take traffic only once healthy; the old ones are
    drained out of the proxy's pool before they stop. The default (no StartFirst) stops, then starts. The
    proxy is Traefik (health-filtered docker labels) unless ``nginx`` says otherwise."""
    drain: int = 3                          # seconds the proxy needs to drop a container that turned unhealthy
    batch: int = 0                          # replicas replaced at a time (0: all of a service's at once)
    shared_volumes: tuple[str, ...] = ()    # named volumes old and new containers may both write (allowed here)
    nginx: NginxPool | None = None          # nginx in front: the tool writes its upstreams and reloads it


@dataclass(frozen=True)
class Binary:
    """A stack that is one executable run by a systemd unit (seed 003's Go binary), not a compose file. Each
    release lives in releases/<tag>/ beside ``path``, which becomes a symlink the tool switches atomically."""
    path: str                        # the live path the unit's ExecStart runs (absolute)
    unit: str                        # the systemd unit, without .service
    owner: str | None = None         # user[:group] of the release folders (the seed's chown -R opc:opc)
    mode: str = "0755"
    keep: int = 5                    # releases kept beside it (the live one and the one before always)
    unit_template: str | None = None  # relative to <root>/<system>: fab setup installs it as the unit file

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def releases(self) -> str:
        return posixpath.join(posixpath.dirname(self.path), "releases")

    @property
    def unit_file(self) -> str:
        return f"/etc/systemd/system/{self.unit}.service"


@dataclass(frozen=True)
class Stack:
    """One compose stack of a system and the apps (images) it pins: none for a stack whose images the tool
    does not pin (Traefik, PostgreSQL): those are only brought up, in order. EnlevoHub's one compose file pins
    two (backend, frontend), each with its own variable."""
    name: str
    compose: str | None       # relative to <root>/<system>; None for a binary
    apps: tuple[App, ...] = ()
    health: str | None = None
    wait: int = 120
    project: str | None = None   # keep the compose project of a stack started by hand (its containers, volumes)
    scale: tuple[tuple[str, int], ...] = ()   # (service, replicas): honoured by every up, restore and rollback
    require_healthcheck: bool = False   # refuse a deploy whose pinned services have no healthcheck
    env_template: str | None = None     # the file beside the compose file its .env is made from
    placeholders: tuple[str, ...] = ()  # more values that must not stay in its .env (a template's defaults)
    database: Database | None = None    # a PostgreSQL the tool backs up and restores
    binary: Binary | None = None        # a binary under systemd instead of a compose file (its app: the stack)
    hosts: tuple[str, ...] = ()         # placement: the hosts or groups it runs on (empty: every host of the system)
    start_first: StartFirst | None = None   # rollout: start-first (None: stop, then start)


@dataclass(frozen=True)
class System:
    name: str
    stacks: tuple[Stack, ...]
    secrets: str = DEFAULT_SECRETS
    tag: str | None = None
    keep: Retention = Retention()
    backup_before_deploy: bool = False   # a verified dump of every database before each deploy, in its release
    elsewhere: tuple[str, ...] = ()      # stacks placed only on other hosts (a host's view of a placed system)
    together: tuple[tuple[str, ...], ...] = ()   # consecutive stacks independent of each other: brought up at once

    def placed(self, host: str, groups: dict[str, tuple[str, ...]]) -> System:
        """This system as ``host`` runs it: only the stacks placed there (``hosts:`` naming it or one of its
        groups; a stack without ``hosts:`` runs everywhere); the others are ``elsewhere``."""
        here = tuple(s for s in self.stacks if not s.hosts
                     or any(host == n or host in groups.get(n, ()) for n in s.hosts))
        return replace(self, stacks=here, elsewhere=tuple(s.name for s in self.stacks if s not in here),
                       backup_before_deploy=self.backup_before_deploy and any(s.database for s in here))

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
        """A system that pins images pulls them from its registry with the token on the VPS; one of public
        images only (Plantão's PostgreSQL, a binary) needs no token, no secrets folder and no login."""
        return bool(self.apps())

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
        return [t.project(s) for t in self.targets() for s in t.system.stacks if not s.binary]

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

    @property
    def artifacts(self) -> str:
        """Where binaries arrive (named by their sha256) before a deploy installs them: the tool's state."""
        return posixpath.join(self.state_dir, "artifacts")

    @property
    def backups(self) -> str:
        """Where ``fab backup`` writes (seed 001's data/backups/): on the VPS, beside the data it saves."""
        return self.path("data/backups")

    def path(self, relative: str) -> str:
        return posixpath.join(self.base, relative)

    def relative(self, path: str) -> str:
        """``path`` as the release record names it: relative to <root>/<system> when it lies inside."""
        return path.removeprefix(self.base + "/")

    def compose(self, stack: Stack) -> str:
        return self.path(stack.compose)

    def env_file(self, stack: Stack) -> str:
        """The .env beside the compose file: compose reads it on every `up`; the tool pins releases there."""
        return posixpath.join(posixpath.dirname(self.compose(stack)), ".env")

    def upstreams(self, stack: Stack) -> str:
        """The folder of nginx's upstream blocks (rollout.nginx.folder), beside the compose file."""
        return posixpath.join(posixpath.dirname(self.compose(stack)), stack.start_first.nginx.folder)

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
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)   # name -> host names, as listed
    systems: dict[str, System] = field(default_factory=dict)           # every stack, wherever it is placed

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
        if host.registry.github_api:
            return host.registry.github_api
        return (self.github_api or DEFAULT_GITHUB_API) if host.registry.server == "ghcr.io" else ""
