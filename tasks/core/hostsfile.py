"""hosts.yml's shape: every key once, with its type, its default and what it means (pydantic v2 models).

The models are the contract of the file: ``inventory.load`` validates each file against them (every error at
once), ``fab-vps schema`` prints them as the JSON Schema editors use, and each model builds the configuration
object of ``model`` it describes. Rules that need the whole inventory (placement, groups) live in
``inventory``. Imported only when an inventory is read: pydantic is not needed by ``fab --list``.
"""
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, StrictBool
from pydantic import model_validator as checks

from . import grammar, model
from .backupplan import FILES
from .backupspecs import BackupSpec, nested
from .hookspecs import HooksSpec, NotifySpec
from .repospecs import RepoSpec
from .stackspecs import StackSpec
from .swarmspecs import SwarmSpec
from .values import (
    AbsPath,
    ApiUrl,
    IpAddress,
    Matching,
    Names,
    RelPath,
    SafeName,
    Spec,
    Text,
    UserName,
    Whole,
    refuse,
)


class RegistrySpec(Spec):
    """Where the pinned images come from. Under a system or a host it overrides only the keys it gives."""
    server: Matching(grammar.REGISTRY_SERVER, "is not a host[:port]") | None = Field(
        None, description="host[:port] of the registry, e.g. ghcr.io (required at the top level)")
    username: Matching(grammar.REGISTRY_USER, "has characters a registry does not accept") | None = \
        Field(None, description="the account the token belongs to (required at the top level)")
    logout: StrictBool = Field(False, description="docker logout after the pulls: no credential stays in "
                               "~/.docker/config.json")
    github_api: ApiUrl | None = Field(None, description="opt-in: this registry's password is a GitHub token; "
                                      "ask this API about its expiry and scopes")
    token: Literal["stored", "per-deploy"] = Field(
        "stored", description="stored: setup keeps the token on the VPS (the seeds' secrets file); per-deploy: the "
        "VPS keeps none, each deploy or rollback brings one (--token-env, --token-command, a prompt) on the SSH "
        "channel, used for its pulls only")

    def over(self, base: model.Registry | None) -> model.Registry:
        """This registry on top of ``base``: the keys given here win; github_api is inherited only by the same
        server (another registry's password is not a GitHub token)."""
        given = self.model_dump(exclude_unset=True)
        same = base is not None and given.get("server", base.server) == base.server
        merged = {**(vars(base) if base else {}), **({} if same else {"github_api": None}), **given}
        per_deploy = given["token"] == "per-deploy" if "token" in given else merged.get("per_deploy", False)
        return model.Registry(server=merged["server"], username=merged["username"],
                              logout=merged.get("logout", False), github_api=merged.get("github_api"),
                              per_deploy=per_deploy)


def _waves(value):
    if not isinstance(value, list) or not all(isinstance(w, list) for w in value):
        raise refuse("together must be a list of lists of stacks, e.g. together: [[ems, sms]]")
    return value


class PruneSpec(Spec):
    """Old images removed after every good deploy of the system (what `fab prune` does, in the same program)."""
    keep: Whole(2, 1000) = Field(5, description="the last N good releases stay ready to roll back to (their images "
                                                "are kept); 2 at least: the running one and a plain rollback's")


class SystemSpec(Spec):
    """One system: its stacks in the order they come up, and what it shares with every host that runs it."""
    stacks: dict[SafeName, StackSpec] = Field(description="in the order they are brought up")
    secrets: RelPath = Field(".secrets/github", description="the token file, relative to <root>/<system>")
    registry: RegistrySpec | None = None
    tag: Matching(grammar.TAG, "is not a valid image tag") | None = Field(
        None, description="the tag deployed when --tag is not given")
    backup: BackupSpec = BackupSpec()
    together: Annotated[list[list[SafeName]], BeforeValidator(_waves)] = Field(
        [], description="consecutive stacks independent of each other, brought up at once")
    repo: RepoSpec | None = Field(None, description="where setup clones repo/ from (default: it is there already)")
    prune: PruneSpec | None = Field(None, description="prune the system's old images after every good deploy "
                                                      "(default: only `fab prune` does)")
    must_match: list[Annotated[list[Matching(grammar.ENV_KEY, "must be STACK:KEY, e.g. postgres:POSTGRES_PASSWORD")],
                               Field(min_length=2)]] = Field(
        [], description="values that must be equal across the stacks' .env files (a binary's: its unit's "
                        "EnvironmentFile), compared on the VPS by fab env-check: [[postgres:DB_PASS, escala:DB_PASS]]")
    engine: Literal["compose", "swarm"] = Field(
        "compose", description="compose: each host runs its stacks; swarm: `docker stack deploy` through a manager "
                               "of swarm:, the swarm placing the services on its nodes")

    @checks(mode="after")
    def _whole(self):
        if not self.stacks:
            raise refuse("needs at least one stack under 'stacks:'", "stacks")
        if self.engine == "swarm":
            self._check_swarm()
        pinned: dict[str, str] = {}
        for name, stack in self.stacks.items():
            for app in stack.build(name).apps:
                if app.name in pinned:
                    raise refuse(f"app {app.name!r} is pinned by stacks {pinned[app.name]!r} and {name!r}: app names "
                                 "are unique in a system (they name versions)", "stacks", name)
                pinned[app.name] = name
        if self.backup.before_deploy and not any(getattr(s, "database", None) for s in self.stacks.values()):
            raise refuse("has no stack with database: to back up", "backup", "before_deploy")
        self._check_copied()
        if FILES in self.stacks and (self.backup.paths or self.backup.volumes):
            raise refuse(f"a stack named {FILES!r} would share its backups' name with the system's files: rename "
                         "it", "stacks", FILES)
        self._check_together()
        for i, group in enumerate(self.must_match):
            for j, where in enumerate(group):
                if where.split(":")[0] not in self.stacks:
                    raise refuse(f"{where}: the system has no stack {where.split(':')[0]!r}", "must_match", i, j)
        return self

    def _check_swarm(self):
        """What the swarm itself does for a stack of a swarm system, refused in the tool's words: placement
        (deploy.placement in the compose file), replicas (deploy.replicas), the rollout (deploy.update_config);
        a binary runs under systemd on one host, not on a swarm. Of backup:, only what follows the database's
        task to its node (the dumps and their retention): files, volumes and copies off the node are not yet."""
        for key in ("paths", "volumes", "offsite", "before_deploy"):
            if key in self.backup.model_fields_set:
                raise refuse(f"{key}: is not done on a swarm yet (fab backup dumps a swarm system's databases on "
                             "the node that runs them, and keeps them there)", "backup", key)
        for name, stack in self.stacks.items():
            if getattr(stack, "binary", None):
                raise refuse("a binary stack cannot run on a swarm (engine: swarm): deploy it in a system of its "
                             "own", "stacks", name)
            for key, instead in (("hosts", "deploy.placement.constraints (node labels from hosts.yml's labels:)"),
                                 ("scale", "deploy.replicas"), ("rollout", "deploy.update_config (order: start-first)"),
                                 ("jobs", "a service of deploy.mode: replicated-job (waited for at every deploy)")):
                if key in stack.model_fields_set:
                    raise refuse(f"{key}: is the compose engine's: on a swarm the compose file says it with "
                                 f"{instead}", "stacks", name, key)

    def _check_copied(self):
        """A path of backup.paths neither holds nor lies in the backups (each would hold the ones before it)
        or the secrets (the token and keys stay on the VPS: an offsite copy would carry them away)."""
        apart = (("data/backups", "where the backups are written"), (".secrets", "the secrets' folder"),
                 (self.secrets, "the token file"))
        for i, path in enumerate(self.backup.paths):
            for there, what in apart:
                if nested(path, there) or nested(there, path):
                    raise refuse(f"{path!r} would copy {there} ({what}) into the backups: name the folders around "
                                 "it instead", "backup", "paths", i)

    def _check_together(self):
        names, seen = list(self.stacks), set()
        for i, wave in enumerate(self.together):
            if len(wave) < 2:
                raise refuse("each entry of together: lists two or more stacks, e.g. [ems, sms]", "together", i)
            unknown = [n for n in wave if n not in names]
            if unknown:
                raise refuse(f"together: names {', '.join(unknown)}, not a stack of this system (stacks: "
                             f"{', '.join(names)})", "together", i)
            if seen & set(wave) or len(set(wave)) < len(wave):
                raise refuse("a stack is in together: once at most", "together", i)
            positions = sorted(names.index(n) for n in wave)
            if positions != list(range(positions[0], positions[0] + len(wave))):
                raise refuse(f"together: {', '.join(wave)} must be next to each other in stacks: (what comes "
                             "between them would have to be both before and after them)", "together", i)
            seen |= set(wave)

    def build(self, name: str, registry: model.Registry) -> tuple[model.System, model.Registry | None]:
        """The system, and its own registry (None: the inventory's)."""
        names = list(self.stacks)
        system = model.System(
            name=name, stacks=tuple(s.build(n) for n, s in self.stacks.items()), secrets=self.secrets, tag=self.tag,
            backup=self.backup.build(),
            together=tuple(tuple(sorted(w, key=names.index)) for w in self.together),
            repo=self.repo.build() if self.repo else None, prune=self.prune.keep if self.prune else None,
            engine=self.engine, must_match=tuple(tuple(g) for g in self.must_match))
        return system, self.registry and self.registry.over(registry)


class LegacySpec(Spec):
    """Where a system lived before seed 001's hierarchy (for migrate-layout)."""
    repo: AbsPath = Field(description="the old git checkout (holds servers/...)")
    letsencrypt: AbsPath | None = Field(None, description="the old Traefik ACME folder")
    uploads: AbsPath | None = Field(None, description="the old uploads folder (with <app>/ inside)")
    logs: AbsPath | None = Field(None, description="the old logs folder (with <app>/ inside)")
    volumes: Names(grammar.SAFE_NAME, "volume names") = Field([], description="named volumes that must survive")

    def build(self) -> model.Legacy:
        return model.Legacy(self.repo, self.letsencrypt, self.uploads, self.logs, tuple(self.volumes))


class BootstrapSpec(Spec):
    """How `fab bootstrap` installs Docker Engine and the Compose v2 plugin on this host."""
    docker: Literal["distro", "docker-ce"] = Field(
        "distro", description="distro: the distribution's packages (RHEL-family hosts, which ship none, and "
                              "Debian 12, whose Compose is 1.x, need docker-ce); docker-ce: Docker's repository")
    mirror: Matching(grammar.MIRROR_URL, "must be an http(s):// URL without a user, query or fragment") | None = Field(
        None, description="a copy of the distribution's archive (distro) or of https://download.docker.com/linux "
                          "(docker-ce), for hosts that reach only a local mirror")

    def build(self) -> model.Bootstrap:
        return model.Bootstrap(self.docker, self.mirror)


NodeLabels = dict[Matching(grammar.NODE_LABEL, "is not a node label name (lowercase letters, digits, . _ -; fab. is "
                           "the tool's own)"), Text]


class HostSpec(Spec):
    """A VPS: how to reach it and which systems it runs."""
    address: Text = Field(description="IP address or DNS name")
    systems: list[SafeName] = Field(description="the systems it runs, e.g. [ems_system] ([] only for a Swarm "
                                                "worker, which runs what its managers place on it)")
    labels: NodeLabels = Field({}, description="Swarm node labels `fab swarm init` sets, for the placement "
                                               "constraints of the compose files (node.labels.db == true)")
    swarm_address: IpAddress | None = Field(None, description="the address the other Swarm nodes reach this one at "
                                                              "(default: address, which must then be an IP)")
    user: UserName = Field("root", description="who SSH logs in as")
    sudo: StrictBool = Field(False, description="run every program as root with `sudo -n` (user: opc on Oracle Linux, "
                                          "where root cannot log in); a sudo that asks for a password is refused")
    port: Whole(1, 65535) = 22
    root: AbsPath = Field("/root", description="where the systems' folders live")
    identity: Text | None = Field(None, description="the SSH private key (~ is expanded)")
    known_hosts: Text | None = Field(None, description="the known_hosts file to check its key against")
    registry: RegistrySpec | None = None
    bootstrap: BootstrapSpec = BootstrapSpec()
    legacy: dict[SafeName, LegacySpec] = Field({}, description="per system: where it lived before (migrate-layout)")

    @checks(mode="after")
    def _once(self):
        for i, name in enumerate(self.systems):
            if name in self.systems[:i]:
                raise refuse(f"lists system {name!r} twice", "systems", i)
        return self


def _members(value):
    if not isinstance(value, list) or not value:
        raise refuse("needs a list of hosts, e.g. [vps1, vps2]")
    for i, host in enumerate(value):
        if host in value[:i]:
            raise refuse(f"lists host {host!r} twice", i)
    return value


class Fragment(Spec):
    """A file of hosts.d/: more systems, hosts and groups."""
    systems: dict[SafeName, SystemSpec] = {}
    hosts: dict[SafeName, HostSpec] = {}
    groups: dict[SafeName, Annotated[list[SafeName], BeforeValidator(_members)]] = Field(
        {}, description="hosts selected together (--group NAME) and placed together (a stack's hosts:)")


class HostsFile(Fragment):
    """hosts.yml: the registry, the systems, the hosts that run them and groups of hosts."""
    registry: RegistrySpec
    github_api: ApiUrl | None = Field(None, description="where to ask GitHub about a token (default api.github.com)")
    swarm: SwarmSpec | None = Field(None, description="a Docker Swarm of these hosts (fab swarm init)")
    hooks: HooksSpec | None = Field(None, description="commands run on your machine around deploy, rollback, backup")
    notify: NotifySpec | None = Field(None, description="a webhook told when a deploy, rollback or backup ends")

    @checks(mode="after")
    def _registry(self):
        for key in ("server", "username"):
            if getattr(self.registry, key) is None:
                raise refuse(f"registry.{key} is missing", "registry", key)
        return self


def schema(fragment: bool = False) -> dict[str, Any]:
    """The JSON Schema of hosts.yml (or of a hosts.d/ file), as editors read it."""
    cls = Fragment if fragment else HostsFile
    out = cls.model_json_schema()
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["title"] = "hosts.d/*.yml of fab-vps" if fragment else "hosts.yml of fab-vps"
    return out
