"""A sandbox VPS whose PID 1 is a real systemd, for seed 003 (Escala de Plantão), whose Go binary runs as a
systemd unit beside its PostgreSQL in compose.

It is a sandbox host like the others (its own network namespace and address, its own folder on /root, its own
dockerd), but SSH lands in a container that ``systemd-nspawn`` boots from a Debian root filesystem built
offline by mmdebstrap (systemd, dbus, openssh-server, the tools `fab bootstrap` installs, the seed's ``opc``
user): ``systemctl`` there talks to that systemd, units start, stop, restart and fail for real. The container shares the host's network
namespace and /root folder, and reaches the host's dockerd through its socket (bound on /run/docker.sock, with
this machine's static docker CLI and Compose plugin), so compose paths mean the same on both sides. Its root
is a volatile overlay: what the tool writes outside /root (/opt, /etc/systemd/system) is gone when the
container restarts, which is how ``reset`` makes it new.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import proc
from .install import PLUGIN
from .vps import SandboxHost

PACKAGES = ["systemd", "systemd-sysv", "dbus", "openssh-server", "curl", "iproute2", "procps", "sudo",
            "ca-certificates", "git", "rsync", "restic"]   # (a prepared host: what `fab bootstrap` installs)
# The image of the VPS: the seed's user with the sudo an Oracle Linux cloud image gives it (no password), a user
# whose sudo asks for one, no console login, the tool's sshd settings read from the host's folder.
CUSTOMIZE = ('chroot "$1" useradd --create-home --shell /bin/bash opc; '
             'chroot "$1" useradd --create-home --shell /bin/bash asker; '
             'echo "opc ALL=(ALL) NOPASSWD:ALL" > "$1"/etc/sudoers.d/opc; '
             'echo "asker ALL=(ALL) ALL" > "$1"/etc/sudoers.d/asker; chmod 440 "$1"/etc/sudoers.d/*; '
             'chroot "$1" systemctl mask console-getty.service getty@tty1.service systemd-networkd-wait-online.service; '
             'rm -f "$1"/etc/machine-id "$1"/etc/ssh/ssh_host_*')
SSHD = """\
ListenAddress {address}:22
HostKey /etc/ssh/fab/ssh_host_ed25519_key
AuthorizedKeysFile /etc/ssh/fab/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
MaxStartups 50
"""


def ensure_rootfs(state: Path, log=print) -> Path:
    """The container's root filesystem, built once (about 30 s) and rebuilt only when its recipe changes."""
    return build_rootfs(state / "systemd-rootfs", "bookworm", PACKAGES, [CUSTOMIZE], log)


def build_rootfs(target: Path, suite: str, packages: list[str], hooks: list[str], log=print,
                 sources: tuple[str, ...] = (), then=lambda: None) -> Path:
    """A Debian ``suite`` root filesystem at ``target`` (mmdebstrap, minbase with ``packages``, ``hooks`` run on
    it, apt's ``sources`` lines if not mmdebstrap's), built only when its recipe changed; ``then()`` runs after a
    build, before the new one is put in place."""
    stamp = hashlib.sha256(repr((suite, packages, hooks, sources)).encode()).hexdigest()
    if (target / ".fab-stamp").exists() and (target / ".fab-stamp").read_text() == stamp:
        return target
    log(f"building the root filesystem {target.name} (mmdebstrap {suite}: {', '.join(packages)})")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        new = Path(tmp) / "rootfs"
        proc.sh("mmdebstrap", "--variant=minbase", f"--include={','.join(packages)}",
                *(f"--customize-hook={hook}" for hook in hooks), suite, str(new), *sources)
        then()
        (new / ".fab-stamp").write_text(stamp)
        if target.exists():
            shutil.rmtree(target)
        new.rename(target)
    return target


class SystemdHost(SandboxHost):
    """A sandbox VPS booted by systemd (see the module's docstring)."""

    kind = "systemd"
    sshd = SSHD

    def start(self) -> None:
        rootfs = ensure_rootfs(self.dir.parent.parent)
        self._base()
        self._wait_dockerd()   # its socket is bound into the container
        docker = Path(shutil.which("docker")).resolve()
        self._boot(rootfs, [f"--bind={self.sock}:/run/docker.sock", f"--bind-ro={docker}:/usr/bin/docker",
                            f"--bind-ro={PLUGIN.parent}"])

    def _boot(self, rootfs: Path, options: list[str], env: dict | None = None) -> None:
        """Boot the container from ``rootfs`` in the host's network namespace, with its /root folder, the
        tool's sshd settings and nspawn's ``options``; return once sshd answers and systemd has started everything."""
        key = self._ssh_keys()
        ssh = self.dir / "ssh"
        ssh.mkdir(exist_ok=True)
        ssh.chmod(0o755)   # (sshd reads a user's authorized keys as that user: opc's login reads them too)
        for name, source, mode in (("ssh_host_ed25519_key", key, 0o600),
                                   ("authorized_keys", self.dir / "authorized_keys", 0o644)):
            shutil.copy(source, ssh / name)
            (ssh / name).chmod(mode)
        (self.dir / "sshd.conf").write_text(self.sshd.format(address=self.address))
        proc.start(["systemd-nspawn", "--directory", str(rootfs), "--volatile=overlay", "--boot",
                    "--register=no", "--keep-unit", "--console=passive", f"--machine=fsb-{self.name}",
                    f"--network-namespace-path=/run/netns/{self.netns}", f"--bind={self.root}:/root",
                    f"--bind-ro={ssh}:/etc/ssh/fab", f"--bind-ro={self.dir / 'sshd.conf'}:/etc/ssh/sshd_config.d/fab.conf",
                    *options], self.dir / "nspawn.pid", self.dir / "nspawn.log", env=env)
        self._wait_sshd(self.dir / "nspawn.log")
        proc.wait_for(f"{self.name} systemd", lambda: self.systemctl("is-system-running").stdout.strip()
                      in ("running", "degraded"), 60, self.dir / "nspawn.log")

    def stop(self) -> None:
        proc.stop(self.dir / "nspawn.pid", timeout=30)
        super().stop()

    def reset(self) -> None:
        """As any host's reset, and a new container: what the tool wrote outside /root goes with the old one."""
        super().reset()
        proc.stop(self.dir / "nspawn.pid", timeout=30)
        self.start()

    def init_pid(self) -> int:
        """The PID (on this machine) of the container's systemd."""
        nspawn = proc.read_pid(self.dir / "nspawn.pid")
        if not nspawn:
            raise proc.SandboxError(f"sandbox host {self.name} is not running")
        children = Path(f"/proc/{nspawn}/task/{nspawn}/children").read_text().split()
        return int(children[0])

    def run(self, script: str, check: bool = True) -> subprocess.CompletedProcess:
        """A bash script inside the container, as its root (from this machine: nothing goes through SSH)."""
        return proc.sh("nsenter", f"--target={self.init_pid()}", "--mount", "--pid", "--uts", "--ipc", "--net", "bash", "-c",
                       script, check=check)

    def systemctl(self, *args: str) -> subprocess.CompletedProcess:
        """systemctl inside the container (from this machine, as an observer)."""
        try:
            pid = self.init_pid()
        except (proc.SandboxError, OSError, IndexError):
            return subprocess.CompletedProcess(args, 1, "", "not running")
        return proc.sh("nsenter", f"--target={pid}", "--mount", "--pid", "systemctl", *args, check=False)
