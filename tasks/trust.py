"""fab trust-host: the deliberate way to trust a host's SSH key. It shows the key's fingerprint and records it
only when the operator confirms it (interactively, or by passing the fingerprint they checked out of band)."""
from __future__ import annotations

import sys

from .core import inventory
from .core.cli import command
from .core.errors import BAD_INPUT, UNREACHABLE, ToolError
from .core.hostkeys import record
from .core.ssh import connection, key_name, known_hosts_files, offered_key
from .core.ui import console, safe


@command({"fingerprint": "the SHA256:... fingerprint you checked (non-interactive use)"})
def trust_host(c, host=None, fingerprint=None):
    """Show a host's SSH key fingerprint and record it in known_hosts once you confirm it (replacing a stale one)."""
    h = inventory.load().host(host)
    key = offered_key(h)
    shown = key.fingerprint  # OpenSSH's SHA256:... form, as ssh-keygen -lf shows it
    console.print(f"{safe(h.name)} ({safe(h.address)}:{h.port}) offers {key.get_name()} key [bold]{shown}[/]")
    if fingerprint is not None:
        if fingerprint != shown:
            raise ToolError(f"{h.name}: the host offers {shown}, not {fingerprint}: nothing was trusted", UNREACHABLE)
    elif not sys.stdin.isatty() or input("Trust this key? Type yes: ").strip() != "yes":
        raise ToolError("not trusted: pass --fingerprint SHA256:... after checking it, or answer yes", BAD_INPUT)
    conn = connection(h)
    path = known_hosts_files(h, conn)[0]  # the file the lookup reads first (ssh_config's, if it names one)
    removed = record(path, key_name(conn), key)   # (under ssh_config's HostKeyAlias when it gives one)
    console.print(f"[green]✓ trusted[/]: recorded in {safe(path)}" + (f" (replacing {removed} stale entry)" if removed else ""))
