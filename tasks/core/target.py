"""One system on one host, and where everything of it lives there: its folder, state, secrets, compose files,
.env files, compose projects and image repositories (seed 001's hierarchy). Every path the tool uses on a host
is derived here and nowhere else."""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import App, Host, Legacy, Stack, System


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

    def brings_token(self, given: bool = False) -> bool:
        """Whether a run here brings its registry token on stdin (one ``given`` for the run: --token-env; or
        registry.token per-deploy) rather than reading the VPS's secrets file; public images need none."""
        return self.system.needs_token and (given or self.host.registry.per_deploy)

    @property
    def keeps_token(self) -> bool:
        """Whether the VPS keeps this system's registry token (its secrets file: setup, doctor, rotate-token)."""
        return self.system.needs_token and not self.host.registry.per_deploy

    def token_head(self, given: bool = False) -> dict[str, str]:
        """A program's head for its registry token: where it is read from (``brings_token``)."""
        return {"PER_DEPLOY": "1"} if self.brings_token(given) else {"SECRETS": self.secrets}

    @property
    def keys(self) -> str:
        """The folder of the VPS's own secrets (its git deploy key; the token file by default): root's only,
        never copied into a backup."""
        return posixpath.join(self.base, ".secrets")

    @property
    def restic_key(self) -> str:
        """The system's restic password (backup: offsite): made on the VPS, root's only; every offsite copy is
        encrypted with it, and none can be read without it."""
        return posixpath.join(self.keys, "restic")

    @property
    def deploy_key(self) -> str:
        """The VPS's own key for the system's git server (repo: in hosts.yml; made there, never leaving it),
        with the pinned known_hosts beside it: root's only, outside repo/."""
        return posixpath.join(self.keys, "git", "id_ed25519")

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

    @property
    def offsite_drill(self) -> str:
        """Where a drill from a copy off the VPS restores the backup it reads (removed when it ends)."""
        return posixpath.join(self.backups, ".offsite-drill")

    def path(self, relative: str) -> str:
        return posixpath.join(self.base, relative)

    def file_parts(self) -> list[tuple[str, str | tuple[str, ...]]]:
        """What a files backup copies, as (part, source): a path of ``backup.paths`` relative to the system is
        part system/<path>, an absolute one host/<path>; a volume of ``backup.volumes`` is part volume/<name>,
        its source the names it may have (compose's <project>_<name> for each stack, then the bare name)."""
        parts: list[tuple[str, str | tuple[str, ...]]] = []
        for p in self.system.backup.paths:
            parts.append((f"host{p}", p) if p.startswith("/") else (f"system/{p}", self.path(p)))
        projects = [self.project(s) for s in self.system.stacks if not s.binary]
        for v in self.system.backup.volumes:
            parts.append((f"volume/{v}", (*(f"{p}_{v}" for p in projects), v)))
        return parts

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
