"""The bootstrap program: a bare host made ready for the tool (sh/bootstrap.sh: its OS, the tools the programs
use, Docker Engine and the Compose v2 plugin, the daemon), and what it reports."""
from __future__ import annotations

from dataclasses import dataclass

from ..model import Host
from .protocol import Program, Result, count, fields, report


def bootstrap_program(host: Host, sysroot: str = "", user: NewUser | None = None) -> Program:
    """One program for the whole host (no system, no lock: nothing the tool deploys runs yet); ``sysroot``
    prefixes every path under /etc (the fast tier's scratch folder; "" on a host); ``user``: the deploy user
    made after Docker (its docker group exists by then)."""
    how = host.bootstrap
    prog = (Program(f"bootstrap of {host.name}", {"SYSROOT": sysroot}).step("os_detect")
            .step("distro_mirror", how.docker, how.mirror or "").step("bootstrap_tools")
            .step("bootstrap_docker", how.docker, how.mirror or "").step("bootstrap_check"))
    return prog.step("create_user", user.name, "\n".join(user.keys)) if user else prog


@dataclass(frozen=True)
class NewUser:
    """The deploy user --create-user makes: its login name and the public keys it logs in with."""
    name: str
    keys: tuple[str, ...]


def login_program() -> Program:
    """Run through the new user's login and sudo: says who it runs as (uid 0 proves both work)."""
    return Program("login check").step("login_check")


def lock_root_program(sysroot: str = "") -> Program:
    """Root's SSH login closed, run as the new user once its login is proven."""
    return Program("lock root", {"SYSROOT": sysroot}).step("lock_root")


@dataclass(frozen=True)
class Bootstrapped:
    """What a bootstrap found and did: the OS, whether it installed tools or Docker, the versions running."""
    os: str
    tools: str          # kept, or the tools installed
    docker: str         # kept, or installed (from distro or docker-ce)
    engine: str
    compose: str
    user: str = ""      # the deploy user: "" (none asked), or what was done ("deploy created, 1 key added")

    @property
    def changed(self) -> bool:
        return self.tools != "kept" or self.docker != "kept"


@report
def logged_in(result: Result) -> tuple[int, str]:
    """The uid login_check ran as and the user who logged in."""
    uid, user = fields(result.one("whoami"), "uid", "user")
    return count(uid), user


@report
def bootstrapped(result: Result) -> Bootstrapped:
    os_id, version = fields(result.one("os"), "id", "version")
    tools, docker = result.one("tools"), result.one("docker")
    engine, compose = fields(result.one("versions"), "engine", "compose")
    made = result.one("user")
    user = ""
    if made:
        name, created, keys = fields(made, "name", "created", "keys")
        user = f"{name} {'created' if created == 'yes' else 'kept'}, {keys} key(s) added"
    return Bootstrapped(f"{os_id} {version}",
                        "kept" if tools["result"] == "kept" else f"installed {tools.get('names', '')}",
                        "kept" if docker["result"] == "kept" else f"installed from {docker.get('source', '?')}",
                        engine, compose, user)
