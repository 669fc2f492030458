"""The sandbox's package mirror: a partial copy of Debian's archive for the bare sandbox host (bare_host.py),
served over HTTP on the registry's address, as a VPS that reaches only a local mirror sees one.

Nothing in it is made here: the index is Debian's own (its InRelease, signed by Debian and checked by the
host's debian-archive-keyring; the Packages file whose hash it names) and the packages are Debian's, at their
pool paths. It holds only what a Debian 13 host lacks for `fab bootstrap` (Docker Engine, the docker CLI, the
Compose v2 plugin, curl, git, ca-certificates, rsync, restic, sudo and their dependencies), downloaded once while the bare host's
root filesystem is built (bare_host.py asks apt in that build which files they are) and kept in the cache.
"""
from __future__ import annotations

import hashlib
import shutil
import urllib.parse
from pathlib import Path

from . import proc
from .registry import ADDRESS

PORT = 8088
URL = f"http://{ADDRESS}:{PORT}/debian"
SUITE = "trixie"
ARCHIVE = f"deb http://deb.debian.org/debian {SUITE} main"   # (the bare host's sources: what the mirror copies)
# What `fab bootstrap` installs on a bare Debian 13 host (sh/bootstrap.sh: DOCKER_PACKAGES and its tools).
INDEX = ("InRelease", "main/binary-amd64/Packages", "main/i18n/Translation-en")
HASHES = {"MD5Sum": "md5", "SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}
WANTED = ["docker.io", "docker-cli", "docker-compose", "curl", "git", "ca-certificates", "rsync", "restic", "sudo"]  # (sudo: --create-user)


def collect_hook(out: Path) -> str:
    """An mmdebstrap customize hook that leaves in ``out`` what the mirror is made of: apt's answer to "which
    files would installing WANTED fetch" (uris), those files (debs/) and the index they were chosen from."""
    wanted = " ".join(WANTED)
    index = " ".join(f'"$1"/var/lib/apt/lists/{kept_as(name)}' for name in INDEX)
    return (f'mkdir -p {out}/debs && '
            f'chroot "$1" apt-get update -qq -o Acquire::Languages=en && '   # (mmdebstrap's apt skips translations)
            f'chroot "$1" apt-get install -qq --print-uris --no-install-recommends {wanted} > {out}/uris && '
            f'chroot "$1" apt-get install -qq --download-only --no-install-recommends {wanted} >/dev/null && '
            f'mv "$1"/var/cache/apt/archives/*.deb {out}/debs/ && '
            f'cp {index} {out}/')


def kept_as(name: str) -> str:
    """The name apt keeps the index file ``name`` (under dists/<suite>/) by in /var/lib/apt/lists."""
    return f"deb.debian.org_debian_dists_{SUITE}_{name.replace('/', '_')}"


def arrange(collected: Path, mirror: Path) -> None:
    """The archive's layout made from what collect_hook left: dists/<suite>/ with Debian's own index (also
    under by-hash, where apt asks first) and every package at the pool path Debian gives it."""
    dists = mirror / "debian" / "dists" / SUITE
    for name in INDEX:
        target = dists / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(collected / kept_as(name), target)
        if name != "InRelease":
            by_hash = target.parent / "by-hash" / "SHA256" / hashlib.sha256(target.read_bytes()).hexdigest()
            by_hash.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(target, by_hash)
    for line in (collected / "uris").read_text().splitlines():
        uri, name, _size, checksum = line.split()
        path = urllib.parse.unquote(urllib.parse.urlsplit(uri.strip("'")).path)   # /debian/pool/main/...
        deb = collected / "debs" / name
        algorithm, digest = checksum.split(":")   # (apt names MD5Sum here, whatever else it checked)
        if hashlib.new(HASHES[algorithm], deb.read_bytes()).hexdigest() != digest:
            raise proc.SandboxError(f"{name}: its {algorithm} is not the one apt gave")
        target = mirror / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        deb.rename(target)


class Mirror:
    """The mirror's files under ``state/mirror`` (made by bare_host.ensure_rootfs) and the HTTP server."""

    def __init__(self, state: Path):
        self.dir = state / "mirror"
        self.pidfile, self.log = self.dir.parent / "mirror.pid", self.dir.parent / "mirror.log"

    def start(self) -> None:
        """Serve the mirror (busybox httpd) unless it already is."""
        proc.start(["busybox", "httpd", "-f", "-p", f"{ADDRESS}:{PORT}", "-h", str(self.dir)], self.pidfile, self.log)
        proc.wait_for("package mirror", lambda: proc.port_open(ADDRESS, PORT), 10, self.log)

    def stop(self) -> None:
        proc.stop(self.pidfile)
