"""fab trust-host: the deliberate way to trust a host's SSH key. It shows the key's fingerprint and records it
only when the operator confirms it (interactively, or by passing the fingerprint they checked out of band)."""
from __future__ import annotations

import os
import sys

from .core import inventory
from .core.cli import command
from .core.errors import BAD_INPUT, UNREACHABLE, ToolError
from .core.ssh import known_hosts_files, offered_key
from .core.ui import console


@command({"fingerprint": "the SHA256:... fingerprint you checked (non-interactive use)"})
def trust_host(c, host=None, fingerprint=None):
    """Show a host's SSH key fingerprint and add it to known_hosts once you confirm it."""
    h = inventory.load().host(host)
    key = offered_key(h)
    shown = key.fingerprint  # OpenSSH's SHA256:... form, as ssh-keygen -lf shows it
    console.print(f"{h.name} ({h.address}:{h.port}) offers {key.get_name()} key [bold]{shown}[/]")
    if fingerprint is not None:
        if fingerprint != shown:
            raise ToolError(f"{h.name}: the host offers {shown}, not {fingerprint}: nothing was trusted", UNREACHABLE)
    elif not sys.stdin.isatty() or input("Trust this key? Type yes: ").strip() != "yes":
        raise ToolError("not trusted: pass --fingerprint SHA256:... after checking it, or answer yes", BAD_INPUT)
    path = known_hosts_files(h)[0]
    name = h.address if h.port == 22 else f"[{h.address}]:{h.port}"
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a") as f:
        f.write(f"{name} {key.get_name()} {key.get_base64()}\n")
    console.print(f"[green]✓ trusted[/]: added to {path}")

