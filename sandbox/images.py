"""Release images for the sandbox, built offline FROM scratch with Debian's busybox-static and pushed to the
sandbox registry by a builder dockerd of their own (no bridge, no iptables: builds only COPY files).

A release image serves /health (absent in a broken release, so its health check fails), /version and /build.
Built images are cached: a stamp of the build inputs in the registry's state skips the builder entirely.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from . import proc, registry

FILES = Path(__file__).parent / "files"
APPS = ("edumigsoft/ems_server", "edumigsoft/sms_server",   # seed 001
        "edumigsoft/enlevohub-backend",                       # seed 002
        "edumigsoft/evaonline-runtime")                       # seed 004: api, worker, beat and flower
SUPPORT = ("sandbox/proxy", "sandbox/db")  # stand-ins for Traefik and PostgreSQL in the infra/postgres stacks
GOOD = ("v1.4.2", "v1.4.3")
BROKEN = ("v1.5.0",)


class Builder:
    """A dockerd used only to build and push; started on demand, stopped when the images are pushed."""

    def __init__(self, state: Path):
        self.dir = state / "builder"
        self.sock = self.dir / "docker.sock"
        self.pidfile = self.dir / "dockerd.pid"
        self.log = self.dir / "dockerd.log"
        self.stamp = state / "registry" / "images.stamp"

    def docker(self, *args: str, **kw):
        env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}", DOCKER_CONFIG=str(self.dir / "cli"),
                   DOCKER_BUILDKIT="0")
        return proc.sh("docker", *args, env=env, **kw)

    def ensure_images(self, reg: registry.Registry) -> bool:
        """Build and push every sandbox image unless the cached stamp says they are there. True if it built."""
        stamp = self._inputs_digest()
        if self.stamp.exists() and self.stamp.read_text() == stamp:
            return False
        self.start()
        try:
            self.docker("login", registry.SERVER, "-u", registry.USERNAME, "--password-stdin", input=reg.token)
            for repo in APPS:
                for tag in GOOD + BROKEN:
                    self.build_and_push(repo, tag, build="original", healthy=tag in GOOD)
            for repo in SUPPORT:
                self.build_and_push(repo, "stable", build="original", healthy=True)
        finally:
            self.stop()
        self.stamp.write_text(stamp)
        return True

    def build_and_push(self, repo: str, tag: str, build: str, healthy: bool = True) -> None:
        """Build ``repo:tag`` serving ``tag`` on /version, ``build`` on /build and ``repo`` on /app, and push it."""
        ctx = self.dir / "ctx" / repo.replace("/", "_") / tag
        shutil.rmtree(ctx, ignore_errors=True)
        (ctx / "www").mkdir(parents=True)
        shutil.copy(shutil.which("busybox") or "/bin/busybox", ctx / "busybox")
        shutil.copy(FILES / "app-entrypoint", ctx / "app-entrypoint")
        shutil.copy(FILES / "wget", ctx / "wget")
        shutil.copy(FILES / "sh", ctx / "sh")
        shutil.copy(FILES / "Dockerfile", ctx / "Dockerfile")
        (ctx / "www" / "version").write_text(tag + "\n")
        (ctx / "www" / "build").write_text(build + "\n")
        (ctx / "www" / "app").write_text(repo + "\n")  # each app its own image (and digest), as in real life
        if healthy:
            (ctx / "www" / "health").write_text("ok\n")
        ref = f"{registry.SERVER}/{repo}:{tag}"
        self.docker("build", "-q", "-t", ref, str(ctx))
        self.docker("push", "-q", ref)

    def push_variant(self, reg: registry.Registry, repo: str, tag: str, build: str) -> None:
        """Push different content under an existing tag (a re-pushed tag, as happens on real registries).
        Tests put the original content back the same way (build="original") when they are done."""
        self.start()
        try:
            self.docker("login", registry.SERVER, "-u", registry.USERNAME, "--password-stdin", input=reg.token)
            self.build_and_push(repo, tag, build=build)
        finally:
            self.stop()

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        argv = ["dockerd", "--host", f"unix://{self.sock}", "--data-root", str(self.dir / "data"),
                "--exec-root", str(self.dir / "run"), "--pidfile", str(self.dir / "dockerd.pidfile"),
                "--bridge", "none", "--iptables=false", "--ip-masq=false"]
        proc.start(argv, self.pidfile, self.log)
        proc.wait_for("builder dockerd", lambda: self.docker("version", check=False).returncode == 0, 60, self.log)

    def stop(self) -> None:
        proc.stop(self.pidfile, timeout=20)

    def _inputs_digest(self) -> str:
        h = hashlib.sha256()
        for name in ("Dockerfile", "app-entrypoint", "wget", "sh"):
            h.update((FILES / name).read_bytes())
        h.update(Path(__file__).read_bytes())  # how the images are built is an input too
        h.update(repr((APPS, SUPPORT, GOOD, BROKEN, registry.SERVER)).encode())
        return h.hexdigest()
