"""Processes the sandbox starts and stops: each by the PID it recorded, never by name.

PID 1 on these machines reaps orphans late, so a stopped daemon can linger as a zombie for a few seconds and
``kill -0`` still succeeds; ``alive`` therefore reads the process state from /proc instead.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path


class SandboxError(RuntimeError):
    """A sandbox component could not be installed or started; the message says which and why."""


def sh(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run a local command, capturing output; on failure raise with the command's own error text."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise SandboxError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def alive(pid: int) -> bool:
    """True if ``pid`` names a running (not zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def read_pid(pidfile: Path) -> int | None:
    """The PID recorded in ``pidfile`` if that process still runs, else None."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def start(argv: list[str], pidfile: Path, log: Path, env: dict | None = None) -> int:
    """Start ``argv`` detached (own session, output to ``log``) and record its PID; reuse it if already running."""
    pid = read_pid(pidfile)
    if pid:
        return pid
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
    pidfile.write_text(str(proc.pid))
    return proc.pid


def stop(pidfile: Path, timeout: float = 15.0) -> None:
    """Stop the process recorded in ``pidfile`` (TERM, then KILL after ``timeout``) and forget it."""
    pid = read_pid(pidfile)
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)


def wait_for(what: str, ready, timeout: float, log: Path | None = None) -> None:
    """Poll ``ready()`` until it is true; on timeout raise naming ``what`` and the tail of its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.05)
    tail = ""
    if log and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    raise SandboxError(f"{what} did not become ready within {timeout:.0f}s{tail}")


def port_open(address: str, port: int, netns: str | None = None) -> bool:
    """True if something accepts TCP connections on address:port (inside ``netns`` when given)."""
    if netns:
        probe = f"exec 3<>/dev/tcp/{address}/{port}"
        return sh("nsenter", f"--net=/run/netns/{netns}", "bash", "-c", probe, check=False).returncode == 0
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False
