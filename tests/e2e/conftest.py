"""End-to-end fixtures: the real `fab` CLI against a sandbox VPS (sshd + dockerd in their own namespaces, a TLS
registry with password auth), started here if it is not running and stopped afterwards only if we started it."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from sandbox import Sandbox, proc, registry, system

REPO = Path(__file__).resolve().parents[2]
FAB = str(Path(sys.executable).parent / "fab")
HOSTS = ("t1",)
FIGURES: list[str] = []   # what a test measured, printed after the run (the note's figures come from here)


@pytest.fixture(scope="session")
def sandbox():
    sb = Sandbox()
    was_running = {name: bool(proc.read_pid(sb.host(name).dir / "sshd.pid")) for name in HOSTS}
    registry_running = bool(proc.read_pid(sb.registry.pidfile))
    sb.up(HOSTS)
    yield sb
    for name, running in was_running.items():
        if not running:
            sb.host(name).stop()
    if not registry_running:
        sb.registry.stop()


@dataclass
class Vps:
    """One clean sandbox host plus an inventory that reaches it, and helpers to drive and observe it."""
    sb: Sandbox
    host: object
    inventory: Path

    @property
    def token(self) -> str:
        return self.sb.registry.token

    @property
    def state(self) -> Path:
        return self.host.root / system.SYSTEM / "state"

    @property
    def secrets(self) -> Path:
        return self.host.root / system.SYSTEM / ".secrets" / "github"

    def env(self, extra: dict | None = None) -> dict:
        return dict(os.environ, FAB_INVENTORY=str(self.inventory), COLUMNS="200", **(extra or {}))

    def fab(self, *args: str, env: dict | None = None, input: str | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
        """Run the real fab CLI (no stdin unless ``input`` is given) against this host's inventory."""
        stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
        return subprocess.run([FAB, *args], cwd=REPO, env=self.env(env), capture_output=True, text=True,
                              timeout=timeout, **stdin)

    def spawn(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        """fab in the background (output merged, read it with communicate()), with Ctrl-C's SIGINT handled as
        at a terminal: a suite started in the background by a non-interactive shell (`bash .ci/run > log &`)
        inherits SIGINT ignored, and fab (any program) keeps ignoring it."""
        return subprocess.Popen([FAB, *args], cwd=REPO, env=self.env(env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def ok(self, *args: str) -> subprocess.CompletedProcess:
        res = self.fab(*args)
        assert res.returncode == 0, f"fab {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
        return res

    def version(self) -> str | None:
        return self.host.http(8080, "/version")

    def releases(self) -> list[dict]:
        return json.loads(self.ok("releases", "--host", self.host.name, "--json").stdout)[system.SYSTEM]

    def running(self) -> dict:
        return next(r for r in self.releases() if r["running"])

    def containers(self) -> list[str]:
        """id, image and state of every container: a restart or a recreate changes this."""
        out = self.host.docker("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Image}} {{.State}}").stdout
        return sorted(out.splitlines())

    def tree(self) -> dict:
        """Every path under the host's /root with its mode and content hash: byte-for-byte comparisons."""
        out = {}
        for path in sorted(self.host.root.rglob("*")):
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else ""
            out[str(path.relative_to(self.host.root))] = (oct(st.st_mode), digest)
        return out

    def snapshot(self) -> tuple:
        return self.tree(), self.containers()


def clean_vps(sandbox, name: str, path: Path) -> Vps:
    host = sandbox.host(name)
    host.reset()
    system.seed(host.root, sandbox.registry.token)
    inv = yaml.safe_load((REPO / "hosts.yml").read_text())
    inv["hosts"] = {host.name: sandbox.inventory_entry(host)}
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return Vps(sandbox, host, path)


@pytest.fixture
def vps(sandbox, tmp_path) -> Vps:
    return clean_vps(sandbox, HOSTS[0], tmp_path / "hosts.yml")


@pytest.fixture
def old_vps(sandbox, tmp_path) -> Vps:
    """A host still on the old layout (seed 001 before section 3), its stacks running from the old paths."""
    host = sandbox.host("t1")
    host.reset()
    system.seed_legacy(host.root, sandbox.registry.token)
    host.inside(system.START_LEGACY)
    inv = yaml.safe_load((REPO / "hosts.yml").read_text())
    entry = sandbox.inventory_entry(host)
    entry["legacy"] = {system.SYSTEM: system.LEGACY}
    inv["hosts"] = {host.name: entry}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return Vps(sandbox, host, path)


def booted_host(sandbox, name: str, kind: str):
    """A fixture's body: the sandbox host ``name`` of ``kind`` ("systemd", "bare") started, and
    stopped afterwards only if it was not running before."""
    host = sandbox.host(name, kind=kind)
    running = bool(proc.read_pid(host.dir / "nspawn.pid"))
    sandbox.up([name], kind=kind)
    yield name
    if not running:
        sandbox.host(name).stop()


@pytest.fixture(scope="session")
def second_host(sandbox):
    """A second sandbox VPS (its own namespaces, dockerd and sshd), for tests over several hosts."""
    running = bool(proc.read_pid(sandbox.host("t2").dir / "sshd.pid"))
    sandbox.up(["t2"])
    yield "t2"
    if not running:
        sandbox.host("t2").stop()


@pytest.fixture
def registry_password(sandbox):
    """Set the registry's password for the token user (as issuing a new token on GitHub would); the
    original is put back afterwards so later tests log in with the seeded token."""
    yield lambda token: sandbox.registry.set_password(registry.USERNAME, token)
    sandbox.registry.set_password(registry.USERNAME, sandbox.registry.token)


def pytest_terminal_summary(terminalreporter):
    """After the run: the figures tests measured, and, after the fault suite, its table (every row must be
    all-yes)."""
    from . import test_faults
    if FIGURES:
        terminalreporter.section("figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
    if test_faults.RESULTS:
        terminalreporter.section("faults: every promise after every fault")
        for line in test_faults.summary_table():
            terminalreporter.write_line(line)


REST_PORT, S3_PORT = 8000, 9000
MOTO = Path(sys.executable).parent / "moto_server"


@pytest.fixture(scope="module")
def vault(sandbox, second_host):
    """t2 as the backup server: SFTP through its sshd, REST through rclone on :8000 (stopped afterwards)."""
    host = sandbox.host(second_host)
    host.route_to_others()
    proc.start(["nsenter", f"--net=/run/netns/{host.netns}", str(MOTO), "-H", host.address, "-p", str(S3_PORT)],
               host.dir / "moto.pid", host.dir / "moto.log")
    proc.wait_for("moto_server", lambda: proc.port_open(host.address, S3_PORT, host.netns), 30, host.dir / "moto.log")
    yield host
    proc.stop(host.dir / "rclone.pid")
    proc.stop(host.dir / "moto.pid")


def fresh_rest(host) -> None:
    """The vault's REST repositories emptied (rclone stopped first: a running one keeps what it knew of a
    removed folder) and served again."""
    proc.stop(host.dir / "rclone.pid")
    shutil.rmtree(host.dir / "rest", ignore_errors=True)
    serve_rest(host)


def serve_rest(host) -> None:
    """`rclone serve restic` on the vault's address, its repositories under the vault's folder."""
    proc.start(["nsenter", f"--net=/run/netns/{host.netns}", "rclone", "serve", "restic", str(host.dir / "rest"),
                "--addr", f"{host.address}:{REST_PORT}"], host.dir / "rclone.pid", host.dir / "rclone.log",
               env={"RCLONE_CONFIG": "/dev/null", "PATH": "/usr/bin:/bin"})
    proc.wait_for("rclone serve restic", lambda: proc.port_open(host.address, REST_PORT, host.netns), 20,
                  host.dir / "rclone.log")
