"""Backups that survive the server, measured on the EMS example (seed 001) in the sandbox:

1. Backup and restore of a PostgreSQL database of >= 1 GiB (db_ems filled with incompressible rows) through the
   tool against the floor, in the same run, to two fresh repositories of the same REST server (`rclone serve
   restic` on another sandbox host):
   - backup: `fab backup` (pg_dump -Fc of every database, each dump read back whole, the files, one restic
     snapshot sent, `restic check`) against `pg_dump -Fc db_ems | restic backup --stdin` run on the host itself;
   - restore: `fab restore --from latest --offsite` (the backup fetched with `restic restore --verify`, its
     checksums checked, pg_restore into a scratch database, rows counted, dropped) against `restic dump |
     pg_restore` into a new database.
2. RTO of `fab recover` of the EMS example: onto a prepared host (Docker there, the host wiped: containers,
   volumes, release images, /root) and, with --bare, onto the bare sandbox host (Docker installed by the
   recovery from the package mirror).

    .venv/bin/python bench/recover_bench.py [--rows 8000000] [--bare] [--rto-only]

Prints seconds, MB/s and the ratios (target: <= 1.2x), and each RTO (targets: <= 120 s prepared, <= 300 s bare).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sandbox import Sandbox, examples, mirror, proc  # noqa: E402

FAB = str(Path(sys.executable).parent / "fab")
PORT = 8000
KEY = "/root/ems_system/.secrets/restic"
FILL = ("CREATE TABLE big AS SELECT g AS id, decode(md5(g::text) || md5((-g)::text) || md5((g * 3)::text) || "
        "md5((g * 7)::text) || md5((g + 11)::text) || md5((g * 13)::text), 'hex') AS pad "
        "FROM generate_series(1, {rows}) g")


def fab(inventory: Path, *args: str, env: dict | None = None) -> tuple[float, str]:
    """Run fab; its seconds and stdout (a failure stops the bench with its output)."""
    started = time.monotonic()
    res = subprocess.run([FAB, *args], cwd=REPO, capture_output=True, text=True, timeout=3600,
                         env=dict(os.environ, FAB_INVENTORY=str(inventory), COLUMNS="200", **(env or {})))
    if res.returncode != 0:
        sys.exit(f"fab {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return time.monotonic() - started, res.stdout


def on(host, script: str) -> float:
    """``script`` run on the sandbox host itself (the floor: no SSH, no checks); its seconds."""
    started = time.monotonic()
    host.inside(script)
    return time.monotonic() - started


def rest_server(vault) -> str:
    """`rclone serve restic` on the vault's address, its repositories in a fresh folder; the repository base."""
    proc.stop(vault.dir / "rclone.pid")
    shutil.rmtree(vault.dir / "bench-rest", ignore_errors=True)
    proc.start(["nsenter", f"--net=/run/netns/{vault.netns}", "rclone", "serve", "restic",
                str(vault.dir / "bench-rest"), "--addr", f"{vault.address}:{PORT}"],
               vault.dir / "rclone.pid", vault.dir / "rclone.log", env={"RCLONE_CONFIG": "/dev/null",
                                                                        "PATH": "/usr/bin:/bin"})
    proc.wait_for("rclone", lambda: proc.port_open(vault.address, PORT, vault.netns), 20, vault.dir / "rclone.log")
    return f"rest:http://{vault.address}:{PORT}"


def ems(sb, folder: Path, name: str, repo: str, bare: bool = False) -> tuple[object, Path]:
    """The EMS example deployed on sandbox host ``name`` (bootstrapped from the package mirror first when
    ``bare``) with ``repo`` as its copy off the VPS."""
    host, inventory = examples.ems(sb, folder, name)
    inv = yaml.safe_load(inventory.read_text())
    inv["systems"]["ems_system"]["backup"]["offsite"] = [repo]
    if bare:
        inv["hosts"][name]["bootstrap"] = {"mirror": mirror.URL}
    inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    if bare:
        fab(inventory, "bootstrap", "--host", name)
    fab(inventory, "setup", "--host", name)
    fab(inventory, "deploy", "--host", name, "--tag", "v1.4.3")
    return host, inventory


def throughput(sb, vault, base: str, rows: int, folder: Path) -> None:
    host, inventory = ems(sb, folder, "t1", f"{base}/tool")
    host.route_to_others()
    psql = "docker exec -i postgres_shared_db sh -c 'psql -X -q -At -v ON_ERROR_STOP=1 -U \"$POSTGRES_USER\" -d db_ems'"
    host.inside(f"{psql} <<'SQL'\n{FILL.format(rows=rows)};\nSQL")
    size = int(host.inside(f"{psql} <<'SQL'\nSELECT pg_database_size('db_ems');\nSQL").stdout.strip().splitlines()[-1])
    floor_repo = f"{base}/floor"
    restic = f"restic -r {floor_repo} --password-file {KEY} --no-cache -q"
    tool_backup, out = fab(inventory, "backup", "--host", "t1", "--json")
    made = json.loads(out)["t1/ems_system"]
    dump = next(b for b in made["backups"] if b["name"].startswith("postgres-"))
    on(host, f"{restic} init >/dev/null")
    floor_backup = on(host, "docker exec postgres_shared_db sh -c 'pg_dump -U \"$POSTGRES_USER\" -Fc db_ems' | "
                            f"{restic} backup --stdin --stdin-filename db_ems.dump >/dev/null")
    tool_restore, _ = fab(inventory, "restore", "--host", "t1", "--from", "latest", "--offsite", "--json")
    on(host, f"echo 'CREATE DATABASE fab_floor' | {psql}")
    floor_restore = on(host, f"{restic} dump latest db_ems.dump | "
                             "docker exec -i postgres_shared_db sh -c 'pg_restore -U \"$POSTGRES_USER\" -d fab_floor'")
    on(host, f"echo 'DROP DATABASE fab_floor' | {psql}")
    mb = size / 1e6
    print(f"database db_ems: {size / 2**30:.2f} GiB ({rows} rows); the tool's dump of all databases "
          f"{dump['bytes'] / 2**20:.0f} MiB")
    print(f"  the tool's backup: dumps read back as written {dump['seconds']} s, offsite copy (restic backup, "
          f"check, forget) {made['offsite'][0]['seconds']} s, the rest (SSH, files, retention) "
          f"{tool_backup - float(dump['seconds']) - float(made['offsite'][0]['seconds']):.1f} s")
    for what, tool, floor in (("backup", tool_backup, floor_backup), ("restore", tool_restore, floor_restore)):
        print(f"{what:8} tool {tool:6.1f} s ({mb / tool:5.1f} MB/s)   floor {floor:6.1f} s ({mb / floor:5.1f} MB/s)"
              f"   ratio {tool / floor:.2f}  (target <= 1.2)")


def rto(sb, vault, base: str, folder: Path, name: str, kind: str | None) -> None:
    """EMS deployed on ``name``, backed up off it, the host wiped (or made bare again), then recovered under
    another name in hosts.yml: the RTO fab recover prints, and the wall clock of the command."""
    if kind:
        sb.up([name], kind=kind)
    host, inventory = ems(sb, folder, name, f"{base}/rto-{name}", bare=bool(kind))
    host.route_to_others()
    fab(inventory, "backup-key", "--host", name, "--save", str(folder / f"{name}.restic-key"))
    fab(inventory, "backup", "--host", name)
    host.reset()
    host.route_to_others()
    shutil.copytree(examples.EXAMPLES / "ems/repo", host.root / "ems_system/repo", symlinks=True)
    inv = yaml.safe_load(inventory.read_text())
    inv["hosts"]["new"] = inv["hosts"][name]
    inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    seconds, out = fab(inventory, "recover", "--host", "new", "--from", name, "--key",
                       str(folder / f"{name}.restic-key"), "--token-env", "TOKEN", env={"TOKEN": sb.registry.token})
    said = next(line for line in out.splitlines() if "RTO" in line)
    where = "a bare host (Docker installed by the recovery)" if kind else "a prepared host"
    target = 300 if kind else 120
    print(f"RTO onto {where}: {seconds:.0f} s wall clock (target <= {target} s); fab says: {said.strip()}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=8_000_000, help="rows of the big table (8M: about 1 GiB on disk)")
    ap.add_argument("--bare", action="store_true", help="also the RTO onto the bare host (builds it if needed)")
    ap.add_argument("--rto-only", action="store_true", help="only the RTO figures (not the 1 GiB database)")
    args = ap.parse_args()
    sb = Sandbox()
    sb.up(["t1", "t2"])
    vault = sb.host("t2")
    base = rest_server(vault)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.rto_only:
            throughput(sb, vault, base, args.rows, Path(tmp))
        rto(sb, vault, base, Path(tmp), "t1", None)
        if args.bare:
            rto(sb, vault, base, Path(tmp), "bare1", "bare")
    proc.stop(vault.dir / "rclone.pid")


if __name__ == "__main__":
    main()
