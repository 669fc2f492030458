"""python -m sandbox up|down|demo|reset: run the sandbox VPS by hand (the README's demo uses `demo`)."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import yaml

from . import Sandbox, SandboxError, system

REPO = Path(__file__).resolve().parent.parent
ENTRY = REPO / "hosts.d" / "sandbox.yml"


def write_entry(sb: Sandbox, hosts) -> None:
    """hosts.d/sandbox.yml, so that `fab deploy --host sandbox` works with the committed hosts.yml."""
    ENTRY.parent.mkdir(exist_ok=True)
    entries = {h.name: sb.inventory_entry(h) for h in hosts}
    ENTRY.write_text("# yaml-language-server: $schema=../schema/hosts.d.schema.json\n"
                     "# Written by `python -m sandbox up`; not committed. Hosts of the local sandbox VPS.\n"
                     + yaml.safe_dump({"hosts": entries}, sort_keys=False))


def demo(sb: Sandbox) -> int:
    """The README demo: a clean sandbox host, three deploys (the last one fails and rolls back), a rollback."""
    host, = sb.up(["sandbox"])
    host.reset()
    system.seed(host.root, sb.registry.token)
    write_entry(sb, [host])
    fab = [str(Path(sys.executable).parent / "fab")]
    steps = [(["deploy", "--host", "sandbox", "--tag", "v1.4.2", "--yes"], 0),   # (--yes: at a terminal the
             (["deploy", "--host", "sandbox", "--tag", "v1.4.3", "--plan"], 0),   # plan is shown and asked about)
             (["deploy", "--host", "sandbox", "--tag", "v1.4.3", "--yes"], 0),
             (["deploy", "--host", "sandbox", "--tag", "v1.5.0", "--yes"], 5),    # fails its gate, goes back
             (["rollback", "--host", "sandbox", "--to", "v1.4.2", "--yes"], 0),
             (["releases", "--host", "sandbox"], 0),
             (["status", "--host", "sandbox"], 0)]
    for step, expected in steps:
        print(f"\n$ fab {' '.join(step)}", flush=True)
        code = subprocess.run(fab + step, cwd=REPO).returncode
        if code != expected:
            print(f"demo: unexpected exit code {code}", file=sys.stderr)
            return 1
        if step[0] in ("deploy", "rollback") and "--plan" not in step:
            print(f"  sandbox answers /version: {host.http(8080, '/version')}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    ap.add_argument("command", choices=["up", "down", "demo", "reset"])
    ap.add_argument("--hosts", default="sandbox", help="comma-separated host names (default: sandbox)")
    kinds = ap.add_mutually_exclusive_group()
    kinds.add_argument("--systemd", action="store_true", help="new hosts are booted by systemd (seed 003's kind)")
    kinds.add_argument("--bare", action="store_true", help="new hosts are bare Debian 13 (for fab bootstrap)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("the sandbox needs root (network and mount namespaces, dockerd)", file=sys.stderr)
        return 2
    sb = Sandbox()
    try:
        if args.command == "demo":
            return demo(sb)
        if args.command == "down":
            sb.down()
            ENTRY.unlink(missing_ok=True)
            return 0
        hosts = sb.up(args.hosts.split(","), kind="systemd" if args.systemd else "bare" if args.bare else None)
        if args.command == "reset":
            for h in hosts:
                h.reset()
                system.seed(h.root, sb.registry.token)
        write_entry(sb, hosts)
        for h in hosts:
            print(f"{h.name}: ssh root@{h.address} (key {sb.client_key}); try: fab status --host {h.name}")
        return 0
    except SandboxError as e:
        print(f"sandbox: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
