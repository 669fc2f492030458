"""The sandbox's stand-ins for ghcr.io (Debian's docker-registry with TLS from a CA made here and htpasswd auth)
and for Docker Hub (the same registry without auth, on HUB_PORT, which every sandbox dockerd uses as its
registry mirror: `image: postgres:15` in a compose file is pulled from it, unchanged, and never from the
internet).

It listens on an address of its own (put on the loopback device of this machine's network namespace), not on
127.0.0.1: dockerd hard-codes 127.0.0.0/8 registries as insecure and skips their certificate checks, so only an
address like this one makes the sandbox hosts see ghcr.io-like errors (unknown authority, no basic auth).
"""
from __future__ import annotations

import secrets
from pathlib import Path

from . import proc

ADDRESS = "10.200.0.1"
PORT = 5000
SERVER = f"{ADDRESS}:{PORT}"
USERNAME = "edumigsoft"
HUB_PORT = 5050   # (5001 is taken by the fault suite's slow registry: PORT + 1)
HUB = f"{ADDRESS}:{HUB_PORT}"
# The trust store of the sandbox hosts (under the sandbox's state): the system's CA bundle and the registry's CA.
# Their sshd gives it to every session as CURL_CA_BUNDLE, so curl on a sandbox VPS trusts what that CA signs as
# a real VPS trusts api.github.com, and nothing else on this machine does.
TRUST = "trust.pem"
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


class Registry:
    """CA, server certificate, users and the registry process, all kept under ``state/<name>``; ``auth`` False
    for the public one (the Docker Hub stand-in)."""

    def __init__(self, state: Path, name: str = "registry", port: int = PORT, auth: bool = True):
        self.dir = state / name
        self.port, self.auth = port, auth
        self.server = f"{ADDRESS}:{port}"
        self.ca_crt = self.dir / "ca.crt"
        self.htpasswd = self.dir / "htpasswd"
        self.token_file = self.dir / "token"
        self.pidfile = self.dir / "registry.pid"
        self.log = self.dir / "registry.log"

    @property
    def token(self) -> str:
        """The read token of USERNAME (the sandbox's GITHUB_TOKEN), made once and kept private."""
        if not self.token_file.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            self.token_file.touch(mode=0o600)
            self.token_file.write_text("ghp_" + secrets.token_hex(18))
        return self.token_file.read_text().strip()

    def start(self) -> None:
        """Make what is missing (address, CA, cert, htpasswd, config) and start the registry if it is not running."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if ADDRESS not in proc.sh("ip", "-4", "addr", "show", "dev", "lo").stdout:
            proc.sh("ip", "addr", "add", f"{ADDRESS}/32", "dev", "lo")
        self._make_certificates()
        if self.auth and not self.htpasswd.exists():
            self.set_password(USERNAME, self.token, restart=False)
        config = self.dir / "config.yml"
        auth = f"auth: {{htpasswd: {{realm: sandbox-registry, path: {self.htpasswd}}}}}\n" if self.auth else ""
        config.write_text(
            "version: 0.1\nlog: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.dir / 'storage'}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: '{self.server}', tls: {{certificate: {self.dir / 'server.crt'}, key: {self.dir / 'server.key'}}}}}\n"
            + auth)
        proc.start(["docker-registry", "serve", str(config)], self.pidfile, self.log)
        proc.wait_for(self.dir.name, lambda: proc.port_open(ADDRESS, self.port), 20, self.log)

    def stop(self) -> None:
        proc.stop(self.pidfile)

    def restore_token(self) -> None:
        """Give the token user the sandbox's token again if a run killed mid-way through the token tests left
        it another password (they put the token back only when they end; every later login would be refused).
        Called when a run starts, never while one may have changed it on purpose."""
        if not self.auth or not self.htpasswd.exists():
            return
        if proc.sh("htpasswd", "-v", "-i", str(self.htpasswd), USERNAME, input=self.token,
                   check=False).returncode != 0:
            self.set_password(USERNAME, self.token, restart=False)
            self.stop()   # the registry reads its users when it starts

    def set_password(self, user: str, password: str, restart: bool = True) -> None:
        """Set ``user``'s password (bcrypt, given on stdin so it is in no argv); the registry reads it at start."""
        self.htpasswd.touch(mode=0o600)
        proc.sh("htpasswd", "-B", "-i", str(self.htpasswd), user, input=password)
        if restart:
            self.stop()
            self.start()

    def _make_certificates(self) -> None:
        """A CA and a server certificate for ADDRESS, trusted by every dockerd here through certs.d and by the
        sandbox hosts' curl through TRUST."""
        d = self.dir
        if not (d / "server.crt").exists():
            proc.sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                    "-subj", "/CN=fab sandbox CA", "-keyout", str(d / "ca.key"), "-out", str(self.ca_crt))
            self.issue(ADDRESS, d / "server")
        certs_d = Path("/etc/docker/certs.d") / self.server
        certs_d.mkdir(parents=True, exist_ok=True)
        (certs_d / "ca.crt").write_bytes(self.ca_crt.read_bytes())
        if self.auth:
            trust = self.dir.parent / TRUST
            system = Path(SYSTEM_BUNDLE).read_bytes() if Path(SYSTEM_BUNDLE).exists() else b""
            trust.write_bytes(system + self.ca_crt.read_bytes())

    def issue(self, ip: str, stem: Path) -> None:
        """``stem``.crt and ``stem``.key: a server certificate for ``ip`` signed by this registry's CA (the
        GitHub API stand-in's, which a sandbox host then trusts as a VPS trusts api.github.com)."""
        proc.sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={ip}",
                "-keyout", f"{stem}.key", "-out", f"{stem}.csr")
        Path(f"{stem}.ext").write_text(f"subjectAltName=IP:{ip}\n")
        proc.sh("openssl", "x509", "-req", "-in", f"{stem}.csr", "-CA", str(self.ca_crt), "-CAkey",
                str(self.dir / "ca.key"), "-CAcreateserial", "-days", "3650", "-extfile", f"{stem}.ext",
                "-out", f"{stem}.crt")
