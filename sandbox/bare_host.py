"""A bare sandbox VPS for `fab bootstrap`: Debian 13 booted by systemd, with sshd and nothing else, as a cloud
provider hands one over (root logs in with a key; no Docker, no curl, no git).

Like the systemd host it is a ``systemd-nspawn`` container in the host's network namespace, but it has no
dockerd of this machine's: the Docker that `fab bootstrap` installs from the sandbox's package mirror
(mirror.py, the only archive it reaches) runs inside it, started by its own systemd unit, with its data on a
folder of the host's (/var/lib/docker on an overlay root would not take overlay2). What a provider's image would
bring is bound in: the registry's CA (as a VPS trusts ghcr.io's) and a daemon.json naming the Docker Hub
stand-in as registry mirror (no internet here). ``reset`` makes it bare again.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from . import mirror, proc, registry
from .systemd_host import SystemdHost, build_rootfs

PACKAGES = ["systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "procps"]
CUSTOMIZE = ('chroot "$1" systemctl mask console-getty.service getty@tty1.service systemd-networkd-wait-online.service; '
             'chroot "$1" systemctl mask ssh.socket; '   # (sshd itself listens on the host's address)
             'rm -f "$1"/etc/machine-id "$1"/etc/ssh/ssh_host_*')
# nspawn mounts the cgroup v1 controllers read-only; dockerd needs them writable to run a container (systemd's
# own hierarchies, which it mounts writable, stay as they are).
CGROUPS = ("for c in cpu cpuacct cpuset memory devices freezer blkio pids; do "
           "mount -o remount,bind,rw /sys/fs/cgroup/$c; done")

# As a cloud image's sshd: keys in each user's ~/.ssh/authorized_keys (a user bootstrap creates logs in with its
# own), the harness's key for root alone, from the host's folder.
SSHD = """\
ListenAddress {address}:22
HostKey /etc/ssh/fab/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 50
Match User root
    AuthorizedKeysFile /etc/ssh/fab/authorized_keys
"""


def ensure_rootfs(state: Path, log=print) -> Path:
    """The bare root filesystem and, from the same build, the package mirror (rebuilt together)."""
    collected = state / "mirror-collected"

    def arrange() -> None:
        served = mirror.Mirror(state)
        served.stop()
        shutil.rmtree(served.dir, ignore_errors=True)
        mirror.arrange(collected, served.dir)
        shutil.rmtree(collected)

    if not (state / "bare-rootfs" / ".fab-stamp").exists():
        shutil.rmtree(collected, ignore_errors=True)
    return build_rootfs(state / "bare-rootfs", mirror.SUITE, PACKAGES, [CUSTOMIZE, mirror.collect_hook(collected)],
                        log, sources=(mirror.ARCHIVE,), then=arrange)


class BareHost(SystemdHost):
    """A bare sandbox VPS (see the module's docstring)."""

    kind = "bare"
    sshd = SSHD

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sock = Path("/run/docker.sock")   # (its own dockerd's, inside it: what a compose file there names)

    def start(self) -> None:
        state = self.dir.parent.parent
        rootfs = ensure_rootfs(state)
        mirror.Mirror(state).start()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(mode=0o700, exist_ok=True)
        (self.dir / "var-lib-docker").mkdir(exist_ok=True)
        self._network()
        daemon = self.dir / "daemon.json"
        daemon.write_text(json.dumps({"registry-mirrors": [f"https://{registry.HUB}"]}))
        self._boot(rootfs, ["--capability=all", "--system-call-filter=@keyring bpf",   # (dockerd's iptables, runc)
                            f"--bind={self.dir / 'var-lib-docker'}:/var/lib/docker",
                            "--bind-ro=/etc/docker/certs.d", f"--bind-ro={daemon}:/etc/docker/daemon.json"],
                   env=dict(os.environ, SYSTEMD_NSPAWN_API_VFS_WRITABLE="1"))
        proc.sh("nsenter", f"--target={self.init_pid()}", "--mount", "sh", "-c", CGROUPS)

    def reset(self) -> None:
        """Bare again: the container restarted on its pristine root, without Docker's data or the /root tree."""
        proc.stop(self.dir / "nspawn.pid", timeout=30)
        for folder in (self.dir / "var-lib-docker", self.root):
            shutil.rmtree(folder, ignore_errors=True)
        self.forget_logs()
        self.start()

    def docker(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        """The docker CLI inside the host, against the dockerd bootstrap installed (as an observer)."""
        return proc.sh("nsenter", f"--target={self.init_pid()}", "--mount", "--pid", "docker", *args,
                       check=check, **kw)
