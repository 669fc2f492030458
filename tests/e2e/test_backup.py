"""Backups and restores against the real PostgreSQL 15 of the sandbox (examples/plantao's database stack, plus
an app stack as its client): rows written, backed up, dropped, seen again by a drill, brought back by a live
restore; retention's preview is what a backup then prunes; a dump that fails halfway, a full disk and a
damaged backup each leave a clear message and nothing lost."""
from __future__ import annotations

import json
import shutil

import pytest
import yaml

from sandbox import registry, system
from tasks.core import errors

from .conftest import Vps
from .test_examples import install, psql

APP = f"""services:
  app:
    image: {registry.SERVER}/edumigsoft/ems_server:${{IMAGE_TAG:?set by fab deploy}}
    ports: ["127.0.0.1:8080:8080"]
{system.HEALTH}"""
DB = ("openlabs_postgres", "admin", "escala_db")


@pytest.fixture
def plantao(sandbox, tmp_path) -> Vps:
    """examples/plantao's PostgreSQL (backed up before each deploy) and an app stack after it (its client),
    on a plain sandbox host."""
    vps = install(sandbox, tmp_path, "plantao", "plantao", {".": {"DB_PASS": "plantao-sandbox-pw"}})
    app = vps.host.root / "plantao/repo/app/docker-compose.yml"
    app.parent.mkdir()
    app.write_text(APP)
    inv = yaml.safe_load(vps.inventory.read_text())
    del inv["systems"]["plantao"]["stacks"]["escala"]   # the binary runs on the systemd host (test_binary.py)
    del inv["systems"]["plantao"]["must_match"]         # ... and so does the password it shares with postgres
    inv["systems"]["plantao"]["stacks"]["app"] = {"compose": "repo/app/docker-compose.yml",
                                                  "image": "edumigsoft/ems_server",
                                                  "health": "http://127.0.0.1:8080/health"}
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    vps.ok("setup", "--host", "t1")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    psql(vps, *DB, "CREATE TABLE turnos (id int, nome text); "
                   "INSERT INTO turnos SELECT g, 'turno ' || g FROM generate_series(1, 120) g")
    return vps


def rows(vps) -> str:
    out = vps.host.docker("exec", DB[0], "psql", "-U", DB[1], "-d", DB[2], "-tAc", "SELECT count(*) FROM turnos",
                          check=False)
    return out.stdout.strip() if out.returncode == 0 else "no table"


def take(vps) -> dict:
    return json.loads(vps.ok("backup", "--host", "t1", "--json").stdout)["t1/plantao"]


def listed(vps) -> list[dict]:
    return json.loads(vps.ok("backups", "--host", "t1", "--json").stdout)["t1/plantao"]["backups"]


def backups_dir(vps):
    return vps.host.root / "plantao/data/backups"


def test_rows_backed_up_dropped_seen_by_a_drill_and_brought_back_live(plantao):
    vps = plantao
    (made,) = take(vps)["backups"]
    assert made["holds"] == "escala_db" and int(made["bytes"]) > 0
    (entry,) = listed(vps)
    assert entry["name"] == made["name"] and entry["taken"] == "backup" and entry["verified"]
    psql(vps, *DB, "DROP TABLE turnos")

    drill = json.loads(vps.ok("restore", "--host", "t1", "--from", "latest", "--json").stdout)
    assert drill["backup"] == made["name"]
    assert drill["databases"] == [{"database": "escala_db", "tables": 1, "rows": 120,
                                   "seconds": drill["databases"][0]["seconds"]}]
    assert rows(vps) == "no table", "a drill never touches the live database"
    scratch = psql(vps, DB[0], DB[1], "postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'fab%'")
    assert scratch == "0", "the drill's scratch database is dropped"

    refused = vps.fab("restore", "--host", "t1", "--from", made["name"], "--live")
    assert refused.returncode == errors.BAD_INPUT and "add --yes" in refused.stderr and rows(vps) == "no table"

    app_before = vps.host.docker("ps", "-q", "--filter", "name=app").stdout.split()
    vps.ok("restore", "--host", "t1", "--from", made["name"], "--live", "--yes")
    assert rows(vps) == "120"
    assert vps.version() == "v1.4.2", "the app stack was stopped for the restore and is back, healthy"
    assert vps.host.docker("ps", "-q", "--filter", "name=app").stdout.split() == app_before, "stopped, not recreated"
    before = [b for b in listed(vps) if b["taken"] == "restore"]
    assert len(before) == 1, "the live data was backed up before it was replaced"

    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    release = json.loads(vps.ok("releases", "--host", "t1", "--json").stdout)["plantao"][0]
    (snapshot,) = release["backups"]
    assert {"name": snapshot, "taken": "deploy", "release": release["release"]}.items() <= \
        next(b for b in listed(vps) if b["name"] == snapshot).items()
    audit = [json.loads(line) for line in (vps.host.root / "plantao/state/audit.jsonl").read_text().splitlines()]
    assert [(a["task"], a["result"]) for a in audit if a["task"] in ("backup", "restore")] == \
        [("backup", "ok"), ("restore", "ok")]


def test_the_retention_preview_is_what_the_backup_then_prunes(plantao):
    vps = plantao
    (first,) = take(vps)["backups"]
    for stamp in ("20261101T020000Z", "20261025T020000Z", "20261018T020000Z", "20261011T020000Z",
                  "20261004T020000Z", "20260927T020000Z", "20260815T020000Z", "20260715T020000Z",
                  "20260615T020000Z", "20260515T020000Z", "20260415T020000Z", "20260315T020000Z"):
        shutil.copytree(backups_dir(vps) / first["name"], backups_dir(vps) / f"postgres-{stamp}")
    preview = json.loads(vps.ok("backup", "--host", "t1", "--dry-run", "--json").stdout)["t1/plantao"]["retention"]
    would = sorted(r["name"] for r in preview if r["action"] == "prune")
    assert would, "six monthly and four weekly slots cannot hold thirteen backups"
    done = take(vps)
    pruned = sorted(r["name"] for r in done["retention"] if r["action"] == "prune")
    assert pruned == would
    kept = sorted(r["name"] for r in done["retention"] if r["action"] == "keep")
    assert sorted(p.name for p in backups_dir(vps).iterdir()) == kept


def test_a_dump_that_fails_halfway_and_a_full_disk_leave_no_backup(plantao):
    vps = plantao
    (good,) = take(vps)["backups"]
    inv = yaml.safe_load(vps.inventory.read_text())
    inv["systems"]["plantao"]["stacks"]["postgres"]["database"]["databases"] = ["escala_db", "missing_db"]
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    res = vps.fab("backup", "--host", "t1")
    assert res.returncode == errors.BACKUP_FAILED and "pg_dump of missing_db failed" in res.stderr
    assert [p.name for p in backups_dir(vps).iterdir()] == [good["name"]]

    psql(vps, *DB, "CREATE TABLE big AS SELECT g, md5(g::text) || md5((g * 7)::text) AS v "
                   "FROM generate_series(1, 100000) g")
    inv["systems"]["plantao"]["stacks"]["postgres"]["database"]["databases"] = ["escala_db"]
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    full = "/root/plantao/data/backups"
    vps.host.inside(f"mount -t tmpfs -o size=1m,mode=700 tmpfs {full}")
    try:
        res = vps.fab("backup", "--host", "t1")
        assert res.returncode == errors.BACKUP_FAILED, res.stdout + res.stderr
        assert "escala_db" in res.stderr and "no backup was written" in res.stderr
        assert vps.host.inside(f"ls -A {full}").stdout == "", "no partial file left on the full disk"
    finally:
        vps.host.inside(f"umount {full}")
    assert [p.name for p in backups_dir(vps).iterdir()] == [good["name"]]


def test_a_damaged_backup_is_refused_and_nothing_changes(plantao):
    vps = plantao
    (made,) = take(vps)["backups"]
    dump = backups_dir(vps) / made["name"] / "escala_db.dump"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    psql(vps, *DB, "DELETE FROM turnos WHERE id > 100")
    app_before = vps.containers()
    for live in ([], ["--live", "--yes"]):
        res = vps.fab("restore", "--host", "t1", "--from", made["name"], *live)
        assert res.returncode == errors.BACKUP_FAILED and f"backup {made['name']} is damaged" in res.stderr
    assert rows(vps) == "100" and vps.containers() == app_before
    assert len(listed(vps)) == 1, "refused before the fresh backup a live restore takes first"


def test_a_system_without_a_database_stack_has_nothing_to_back_up(vps):
    res = vps.fab("backup", "--host", "t1")
    assert res.returncode == errors.BAD_INPUT and "no stack has database: in hosts.yml" in res.stderr


def test_rollback_with_data_restores_the_snapshot_the_next_deploy_took_and_only_when_asked(plantao):
    vps = plantao
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")          # backs up the 120 rows first
    psql(vps, *DB, "DELETE FROM turnos WHERE id > 50")              # what v1.4.3 did to the data
    refused = vps.fab("rollback", "--host", "t1", "--with-data")
    assert refused.returncode == errors.BAD_INPUT and "add --yes" in refused.stderr
    assert rows(vps) == "50" and vps.version() == "v1.4.3"

    vps.ok("rollback", "--host", "t1", "--with-data", "--yes")
    assert rows(vps) == "120" and vps.version() == "v1.4.2"
    history = json.loads(vps.ok("releases", "--host", "t1", "--json").stdout)["plantao"]
    (before,) = history[0]["backups"]
    assert next(b for b in listed(vps) if b["name"] == before)["taken"] == "rollback", \
        "the data from before the rollback is kept, and recorded in the rollback's release"

    vps.ok("rollback", "--host", "t1")                              # back to v1.4.3: the default never touches data
    assert vps.version() == "v1.4.3" and rows(vps) == "120"
