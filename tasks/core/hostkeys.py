"""known_hosts, read and written as OpenSSH does, because Fabric does not: Fabric 3.2 accepts any key
(AutoAddPolicy, also for a ProxyJump bastion) and paramiko cannot read marker lines (``@revoked``,
``@cert-authority``). Unknown, changed and revoked keys are refused; ``fab trust-host`` replaces a host's
stale entry in the file the lookup uses."""
from __future__ import annotations

import os

import paramiko
from paramiko.hostkeys import HostKeyEntry

from .errors import BAD_INPUT, UNREACHABLE, ToolError
from .localfiles import replace_file


class KnownHosts:
    """The keys of some known_hosts files: plain entries (revoked keys left out), revoked keys, and the host
    patterns that have a certificate authority (which this tool does not support)."""

    def __init__(self, paths: list[str], keys: paramiko.HostKeys | None = None, alias: tuple[str, str] | None = None):
        """``alias``: (ssh_config's HostKeyAlias, the name the connection looks the key up by): as OpenSSH does,
        the host's key is the alias's entry, and entries for its own name are not read."""
        self.keys = paramiko.HostKeys() if keys is None else keys
        self.revoked: set[tuple[str, str]] = set()      # (key type, base64)
        self.ca_patterns: list[str] = []
        entries = []
        for path in paths:
            if os.path.exists(path):
                entries += self._read(path)
        for entry in entries:
            if (entry.key.get_name(), entry.key.get_base64()) not in self.revoked:
                for name in entry.hostnames:
                    if alias and _names_host(name, alias[0]):
                        self.keys.add(alias[1], entry.key.get_name(), entry.key)
                    elif not (alias and _names_host(name, alias[1])):
                        self.keys.add(name, entry.key.get_name(), entry.key)

    def _read(self, path: str) -> list[HostKeyEntry]:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.readlines()
        except (OSError, UnicodeDecodeError) as e:   # a folder, UTF-16: say which file, never a traceback
            why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            raise ToolError(f"cannot read known_hosts file {path}: {why}", BAD_INPUT) from None
        return self._entries(lines)

    def _entries(self, lines: list[str]) -> list[HostKeyEntry]:
        out = []
        for line in lines:
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if fields[0] == "@revoked" and len(fields) >= 4:
                self.revoked.add((fields[2], fields[3]))
            elif fields[0] == "@cert-authority":
                self.ca_patterns += fields[1].split(",") if len(fields) > 1 else []
            elif not fields[0].startswith("@"):
                try:
                    entry = HostKeyEntry.from_line(line)
                except (paramiko.SSHException, ValueError):
                    entry = None  # a line OpenSSH would skip too (unknown key type, damaged)
                if entry is not None:
                    out.append(entry)
        return out

    def is_revoked(self, key: paramiko.PKey) -> bool:
        return (key.get_name(), key.get_base64()) in self.revoked


class Refuse(paramiko.MissingHostKeyPolicy):
    """A key not in known_hosts is refused, and a revoked one says so."""

    def __init__(self, known: KnownHosts, label: str):
        self.known, self.label = known, label

    def missing_host_key(self, client, hostname, key):
        if self.known.is_revoked(key):
            raise ToolError(f"{self.label}: the host key of {hostname} ({key.get_name()} {key.fingerprint}) is "
                            "marked @revoked in known_hosts: refusing to connect", UNREACHABLE)
        if self.known.ca_patterns:
            raise ToolError(f"{self.label}: the host key of {hostname} is unknown and known_hosts trusts it through "
                            "@cert-authority, which this tool does not support: add the host's own key with "
                            "'fab trust-host'", UNREACHABLE)
        raise UnknownKey(hostname)


class UnknownKey(paramiko.SSHException):
    """A key no known_hosts entry names, for ``hostname`` (the host, or a ProxyJump bastion on the way)."""

    def __init__(self, hostname: str):
        super().__init__(f"Server {hostname!r} not found in known_hosts")
        self.hostname = hostname


def entry_name(address: str, port: int) -> str:
    """How known_hosts names a host: ``address``, or ``[address]:port`` off port 22."""
    return address if port == 22 else f"[{address}]:{port}"


def _names_host(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):
        return paramiko.HostKeys.hash_host(name, pattern) == pattern
    return pattern == name


def record(path: str, name: str, key: paramiko.PKey) -> int:
    """Make ``key`` the one entry for ``name`` in ``path``: stale entries for ``name`` go (others stay as they
    are, comments and markers included), the new one is appended; the file is replaced atomically, mode kept.
    How many stale entries were removed."""
    lines, removed = [], 0
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                fields = line.split()
                if fields and not fields[0].startswith(("#", "@")):
                    patterns = fields[0].split(",")
                    kept = [p for p in patterns if not _names_host(p, name)]
                    if len(kept) < len(patterns):
                        removed += 1
                        if not kept:
                            continue
                        line = " ".join([",".join(kept), *fields[1:]]) + "\n"
                lines.append(line if line.endswith("\n") else line + "\n")
    lines.append(f"{name} {key.get_name()} {key.get_base64()}\n")
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    replace_file(path, "".join(lines).encode(), os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644)
    return removed
