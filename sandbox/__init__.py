"""The sandbox: real sshd, dockerd, Compose and an authenticated TLS registry on this machine, standing in for
a VPS and ghcr.io. Shared by the end-to-end tests, the README demo and the benchmarks.

    sb = Sandbox(); hosts = sb.up(["sandbox"]); ...; sb.down()
"""
from __future__ import annotations

import os
from pathlib import Path

from . import acme, infra, install, proc, registry, system
from .bare_host import BareHost
from .images import Builder
from .proc import SandboxError
from .systemd_host import SystemdHost
from .vps import SandboxHost, SmallDiskHost

DEFAULT_STATE = Path(os.environ.get("FAB_SANDBOX_DIR", "/var/lib/fab-sandbox"))

__all__ = ["Sandbox", "SandboxHost", "SandboxError"]


class Sandbox:
    """The registry, the image cache and any number of sandbox hosts, all kept under ``state``."""

    def __init__(self, state: Path = DEFAULT_STATE):
        self.state = state
        self.registry = registry.Registry(state)
        self.hub = registry.Registry(state, "hub", registry.HUB_PORT, auth=False)  # the Docker Hub stand-in
        self.acme = acme.Acme(state, self.registry)   # Let's Encrypt's stand-in (Pebble)
        self.builder = Builder(state)
        self.client_key = state / "ssh" / "id_ed25519"

    def up(self, names=("sandbox",), log=print, kind: str | None = None) -> list[SandboxHost]:
        """Install and start what is missing, then return the named hosts (new ones of ``kind``: "systemd" for
        a host booted by systemd, "bare" for one without Docker), each running with the system seeded if it has none yet."""
        install.ensure_installed(log)
        self.state.mkdir(parents=True, exist_ok=True)
        self.registry.restore_token()
        self.registry.start()
        self.hub.start()
        self.acme.start()
        if self.builder.ensure_images(self.registry):
            log("built and pushed the sandbox release images")
        if infra.ensure(self.builder, self.hub, log):
            log("built and pushed the sandbox's PostgreSQL, nginx, Redis and Traefik images")
        if not self.client_key.exists():
            self.client_key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            proc.sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fab-sandbox", "-f", str(self.client_key))
        hosts = [self.host(name, kind) for name in names]
        for host in hosts:
            host.start()
            if not (host.root / system.SYSTEM).exists():
                system.seed(host.root, self.registry.token)
        return hosts

    def host(self, name: str, kind: str | None = None) -> SandboxHost:
        """The host ``name``, with an address index and a kind (plain, "systemd", "bare" or "small": a small Docker
        disk) of its own kept across restarts; ``kind`` is only read for a new host."""
        index_file, kind_file = self.state / "hosts" / name / "index", self.state / "hosts" / name / "kind"
        if index_file.exists():
            index = int(index_file.read_text())
        else:
            taken = {int(p.read_text()) for p in (self.state / "hosts").glob("*/index")}
            index = min(set(range(1, 250)) - taken)
            index_file.parent.mkdir(parents=True, exist_ok=True)
            index_file.write_text(str(index))
            kind_file.write_text(kind or "plain")
        kind = kind_file.read_text() if kind_file.exists() else "plain"
        cls = {"systemd": SystemdHost, "bare": BareHost, "small": SmallDiskHost}.get(kind, SandboxHost)
        return cls(self.state, name, index, self.client_key)

    def down(self) -> None:
        """Stop every host and the registry; keep the image cache and keys for a warm start."""
        for d in sorted((self.state / "hosts").glob("*/index")):
            self.host(d.parent.name).stop()
        self.registry.stop()
        self.hub.stop()
        self.acme.stop()
        self.builder.stop()

    def inventory_entry(self, host: SandboxHost) -> dict:
        """The hosts.yml entry that reaches ``host``: address, key, known_hosts and the sandbox registry."""
        return {"address": host.address, "user": "root", "port": 22, "root": "/root",
                "identity": str(self.client_key), "known_hosts": str(host.known_hosts),
                "registry": {"server": registry.SERVER}, "systems": [system.SYSTEM]}
