"""Let's Encrypt's stand-in: Pebble (Let's Encrypt's ACME test server, Debian's package) on the sandbox's own
address, with pebble-challtestsrv as the DNS server Pebble asks, so that a Traefik on a sandbox host gets a real
certificate through a real HTTP-01 challenge: Pebble resolves the example's names (``point``) to the host and
fetches the challenge from its port 80.

Pebble's ACME endpoint uses the registry's certificate (made for the same address by the sandbox's CA): a
client trusts it with that CA (Traefik through ``LEGO_CA_CERTIFICATES``). What Pebble issues chains to a root
it makes anew at each start (``root_pem``). Certificates live ``VALIDITY`` seconds, short on purpose: fab
doctor's expiry warning is seen on a certificate just issued.
"""
from __future__ import annotations

import json
import ssl
import urllib.request

from . import proc, registry

ADDRESS = registry.ADDRESS
PORT = 14000            # the ACME directory: https://ADDRESS:PORT/dir
ADMIN_PORT = 15000      # Pebble's management: its roots
DNS_PORT = 8053         # challtestsrv's DNS, which Pebble asks
DNS_ADMIN_PORT = 8055   # challtestsrv's management: the names it answers
DIRECTORY = f"https://{ADDRESS}:{PORT}/dir"
VALIDITY = 10 * 86400   # under doctor's 14 days: a fresh certificate is already "expiring"


class Acme:
    """Pebble and its DNS server, kept under ``state/acme``; started by the sandbox with the registry."""

    def __init__(self, state, reg: registry.Registry):
        self.dir = state / "acme"
        self.registry = reg

    @property
    def ca_file(self):
        """The CA a client of Pebble's ACME endpoint trusts (the sandbox's own)."""
        return self.registry.ca_crt

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        proc.start(["pebble-challtestsrv", "-dns01", f"{ADDRESS}:{DNS_PORT}", "-management",
                    f"{ADDRESS}:{DNS_ADMIN_PORT}", "-http01", "", "-https01", "", "-tlsalpn01", "",
                    "-defaultIPv4", "", "-defaultIPv6", ""],
                   self.dir / "challtestsrv.pid", self.dir / "challtestsrv.log")
        config = self.dir / "pebble.json"
        config.write_text(json.dumps({"pebble": {
            "listenAddress": f"{ADDRESS}:{PORT}", "managementListenAddress": f"{ADDRESS}:{ADMIN_PORT}",
            "certificate": str(self.registry.dir / "server.crt"), "privateKey": str(self.registry.dir / "server.key"),
            "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": False,
            "certificateValidityPeriod": VALIDITY}}))
        proc.start(["env", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "pebble", "-config", str(config),
                    "-dnsserver", f"{ADDRESS}:{DNS_PORT}"], self.dir / "pebble.pid", self.dir / "pebble.log")
        for port, log in ((DNS_ADMIN_PORT, "challtestsrv.log"), (PORT, "pebble.log")):
            proc.wait_for(f"acme :{port}", lambda p=port: proc.port_open(ADDRESS, p), 20, self.dir / log)

    def stop(self) -> None:
        for name in ("pebble", "challtestsrv"):
            proc.stop(self.dir / f"{name}.pid")

    def point(self, name: str, address: str) -> None:
        """Answer ``name`` with ``address`` alone in the DNS Pebble asks (the example's public names, here)."""
        for path, body in (("clear-a", {"host": name}), ("add-a", {"host": name, "addresses": [address]})):
            urllib.request.urlopen(f"http://{ADDRESS}:{DNS_ADMIN_PORT}/{path}", json.dumps(body).encode(),
                                   timeout=5).read()   # (add-a adds to what the name had)

    def root_pem(self) -> str:
        """The root Pebble issues under since it started (to verify what it issued)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(f"https://{ADDRESS}:{ADMIN_PORT}/roots/0", timeout=5, context=ctx) as answer:
            return answer.read().decode()
