"""The bootstrap program: a bare host made ready for the tool (sh/bootstrap.sh: its OS, the tools the programs
use, Docker Engine and the Compose v2 plugin, the daemon), and what it reports."""
from __future__ import annotations

from dataclasses import dataclass

from ..model import Host
from .protocol import Program, Result, fields, report


def bootstrap_program(host: Host, sysroot: str = "") -> Program:
    """One program for the whole host (no system, no lock: nothing the tool deploys runs yet); ``sysroot``
    prefixes every path under /etc (the fast tier's scratch folder; "" on a host)."""
    how = host.bootstrap
    return (Program(f"bootstrap of {host.name}", {"SYSROOT": sysroot}).step("os_detect")
            .step("distro_mirror", how.docker, how.mirror or "").step("bootstrap_tools")
            .step("bootstrap_docker", how.docker, how.mirror or "").step("bootstrap_check"))


@dataclass(frozen=True)
class Bootstrapped:
    """What a bootstrap found and did: the OS, whether it installed tools or Docker, the versions running."""
    os: str
    tools: str          # kept, or the tools installed
    docker: str         # kept, or installed (from distro or docker-ce)
    engine: str
    compose: str

    @property
    def changed(self) -> bool:
        return self.tools != "kept" or self.docker != "kept"


@report
def bootstrapped(result: Result) -> Bootstrapped:
    os_id, version = fields(result.one("os"), "id", "version")
    tools, docker = result.one("tools"), result.one("docker")
    engine, compose = fields(result.one("versions"), "engine", "compose")
    return Bootstrapped(f"{os_id} {version}",
                        "kept" if tools["result"] == "kept" else f"installed {tools.get('names', '')}",
                        "kept" if docker["result"] == "kept" else f"installed from {docker.get('source', '?')}",
                        engine, compose)
