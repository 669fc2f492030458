"""Copies off the VPS, end to end: the EMS example (seed 001: PostgreSQL with both apps' databases, uploads and
Traefik's certificates) on t1 sends its backups with restic to two repositories on another sandbox host, t2:
an SFTP repository through t2's real sshd (the VPS's own SSH key, authorised there as an operator would) and
a REST repository served by `rclone serve restic` in t2's network namespace, and an S3 repository served by
moto's S3 server (an in-memory S3 implementation; it accepts any credentials, so this proves the credentials of
restic.env reach restic, not that a wrong one is refused). A lost server brought back by fab recover: the EMS
example and EnlevoHub (its named volumes)."""
from __future__ import annotations

import json
import os
import re
import shutil

import pytest
import yaml

from sandbox import examples, proc, registry
from tasks.core import errors

from .conftest import FIGURES, REST_PORT, S3_PORT, Vps, fresh_rest, serve_rest


def trust(vps_host, vault) -> None:
    """What an operator does once for an SFTP repository: the VPS's root gets an SSH key, the vault authorises
    it, and the VPS knows the vault's host key."""
    ssh = vps_host.root / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    if not (ssh / "id_ed25519").exists():
        proc.sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vps", "-f", str(ssh / "id_ed25519"))
    (ssh / "known_hosts").write_text(vault.known_hosts.read_text())
    keys = vault.dir / "authorized_keys"
    pub = (ssh / "id_ed25519.pub").read_text()
    if pub not in keys.read_text():
        keys.write_text(keys.read_text() + pub)


@pytest.fixture
def ems(sandbox, vault, tmp_path) -> Vps:
    """The EMS example deployed on t1, rows and an upload written, both repositories empty and up."""
    vps = Vps(sandbox, *examples.ems(sandbox, tmp_path))
    vps.host.route_to_others()
    trust(vps.host, vault)
    shutil.rmtree(vault.root / "offsite", ignore_errors=True)
    fresh_rest(vault)
    proc.sh("nsenter", f"--net=/run/netns/{vault.netns}", "curl", "-fsS", "-X", "POST",
            f"http://{vault.address}:{S3_PORT}/moto-api/reset")   # moto's buckets are in memory: emptied
    inv = yaml.safe_load(vps.inventory.read_text())
    inv["systems"]["ems_system"]["backup"]["offsite"] = [sftp(vault), rest(vault), s3(vault)]
    secrets = vps.host.root / "ems_system/.secrets"
    secrets.mkdir(mode=0o700, exist_ok=True)
    (secrets / "restic.env").write_text(f"AWS_ACCESS_KEY_ID=fabtest\nAWS_SECRET_ACCESS_KEY={S3_SECRET}\n")
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    vps.ok("setup", "--host", "t1")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    examples.ems_certificates(vps.host)   # (Traefik's acme.json, backed up, changes no more)
    vps.host.docker("exec", "postgres_shared_db", "psql", "-U", "ems_user", "-d", "db_ems", "-qc",
                    "CREATE TABLE pedidos (id int); INSERT INTO pedidos SELECT generate_series(1, 42)")
    (vps.host.root / "ems_system/data/uploads/ems/nota.pdf").write_bytes(b"%PDF nota " * 4000)
    return vps


def sftp(vault) -> str:
    return f"sftp:root@{vault.address}:/root/offsite/ems"


def rest(vault) -> str:
    return f"rest:http://{vault.address}:{REST_PORT}/ems"


def s3(vault) -> str:
    return f"s3:http://{vault.address}:{S3_PORT}/fab-backups/ems"


S3_SECRET = "s3-secret-$(reboot)-'q'"


def restic(vps, repo: str, *args: str) -> str:
    """restic on the VPS with the system's key, as an operator reading a repository would."""
    key = "/root/ems_system/.secrets/restic"
    return vps.host.inside(f"AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x restic -r '{repo}' --password-file {key} "
                           f"--no-cache {' '.join(args)}").stdout


def backup(vps) -> dict:
    return json.loads(vps.ok("backup", "--host", "t1", "--json").stdout)["t1/ems_system"]


def test_a_backup_reaches_both_repositories_encrypted_with_the_history(ems, vault):
    vps = ems
    made = backup(vps)
    assert [o["result"] for o in made["offsite"]] == ["ok", "ok", "ok"], made["offsite"]
    key = (vps.host.root / "ems_system/.secrets/restic")
    assert oct(key.stat().st_mode & 0o777) == "0o600" and len(key.read_text().strip()) == 44
    for sent in made["offsite"]:
        (snap,) = json.loads(restic(vps, sent["repo"], "snapshots", "--json"))
        assert snap["id"].startswith(sent["snapshot"]) and snap["hostname"] == "ems_system"
        assert sorted(snap["tags"]) == ["fab", "system=ems_system"]
        files = {json.loads(line).get("path", "") for line in restic(vps, sent["repo"], "ls", "--json", "latest").splitlines()}
        names = [b["name"] for b in made["backups"]]
        assert all(f"/root/ems_system/data/backups/{n}" in files for n in names), names
        state = sorted(f for f in files if f.startswith("/root/ems_system/state/"))
        assert "/root/ems_system/state/releases.jsonl" in state and "/root/ems_system/state/lock" not in state, state
        assert any(f.endswith("/uploads/ems/nota.pdf") for f in files)
        assert {f for f in files if f.endswith("/.env")} >= {"/root/ems_system/repo/servers/ems/container/.env"}, \
            "the .env files a lost server's stacks need come back with the data"
    stored = [p for p in (vault.root / "offsite/ems").rglob("*") if p.is_file()]
    assert stored and not any(b"%PDF nota" in p.read_bytes() or key.read_bytes().strip() in p.read_bytes()
                              for p in stored), "the repository holds only encrypted data"
    seen = vps.host.commands_log.read_text() + json.dumps(made)
    assert key.read_text().strip() not in seen and S3_SECRET not in seen
    listed = json.loads(vps.ok("backups", "--host", "t1", "--json").stdout)["t1/ems_system"]
    for repo, sent in zip(listed["offsite"], made["offsite"], strict=True):
        (copy,) = repo["snapshots"]
        assert copy["id"].startswith(sent["snapshot"]) and copy["verified"] and copy["files"] == sent["files"], repo
    checked = json.loads(vps.ok("backup-check", "--host", "t1", "--read-data", "100%", "--json").stdout)
    assert [r["result"] for r in checked["t1/ems_system"]] == ["ok", "ok", "ok"], checked
    local = json.loads(vps.ok("restore", "--host", "t1", "--from", "latest", "--json").stdout)
    offsite = json.loads(vps.ok("restore", "--host", "t1", "--from", "latest", "--offsite", "--json").stdout)
    assert offsite["backup"] == local["backup"] and [
        (d["database"], d["tables"], d["rows"]) for d in offsite["databases"]] == [
        (d["database"], d["tables"], d["rows"]) for d in local["databases"]], (offsite, local)
    assert not (vps.host.root / "ems_system/data/backups/.offsite-drill").exists()
    again = backup(vps)   # the same files again: deduplicated
    assert all(o["added"] < s["added"] // 2
               for o, s in zip(again["offsite"], made["offsite"], strict=True)), (again["offsite"], made["offsite"])


def test_a_repository_down_exits_10_naming_it_the_other_gets_its_copy_and_the_local_backup_stays(ems, vault):
    vps = ems
    proc.stop(vault.dir / "rclone.pid")
    res = vps.fab("backup", "--host", "t1")
    assert res.returncode == errors.BACKUP_FAILED, res.stdout + res.stderr
    assert f"the offsite copy failed: {rest(vault)}" in res.stderr and "the local backups are kept" in res.stderr
    assert len(json.loads(restic(vps, sftp(vault), "snapshots", "--json"))) == 1, "the SFTP repository got its copy"
    res = vps.fab("backups", "--host", "t1", "--json")   # the REST server is down: a problem, exit 8
    listed = json.loads(res.stdout)["t1/ems_system"]
    assert res.returncode == errors.WARNING and f"{rest(vault)} cannot be read" in res.stderr, res.stderr
    assert {b["stack"] for b in listed["backups"] if b["verified"]} == {"postgres", "files"}, listed
    serve_rest(vault)
    made = backup(vps)   # back up: it gets the next run's copy
    assert [o["result"] for o in made["offsite"]] == ["ok", "ok", "ok"]


def test_a_full_disk_during_the_copy_exits_10_and_keeps_the_local_backup(ems, vault):
    """restic writes its pack files in /tmp before sending them: a 1 MB /tmp in t1's mount namespace fills."""
    vps = ems
    (vps.host.root / "ems_system/data/uploads/ems/scan.tif").write_bytes(os.urandom(8 << 20))   # packs > 1 MB
    vps.host.inside("mount -t tmpfs -o size=1m tmpfs /tmp")
    try:
        res = vps.fab("backup", "--host", "t1")
    finally:
        vps.host.inside("umount /tmp")
    assert res.returncode == errors.BACKUP_FAILED and "no space left on device" in res.stderr, res.stdout + res.stderr
    assert "the local backups are kept" in res.stderr
    listed = json.loads(vps.ok("backups", "--host", "t1", "--json").stdout)["t1/ems_system"]
    assert {b["stack"] for b in listed["backups"] if b["verified"]} == {"postgres", "files"}, listed
    assert all(not r["snapshots"] for r in listed["offsite"]), "no half snapshot in a repository"
    made = backup(vps)   # room again: the next run sends its copy
    assert [o["result"] for o in made["offsite"]] == ["ok", "ok", "ok"], made["offsite"]


def test_a_lost_server_comes_back_on_a_new_host_by_digest_with_its_rows_and_files(ems, vault, tmp_path):
    """The VPS destroyed (t1 wiped: containers, volumes, release images, the whole /root), a new host at another
    name in hosts.yml (the same sandbox machine, reinstalled): fab recover with the key the operator saved and
    a registry token; OLD is never contacted."""
    vps, host = ems, ems.host
    key = tmp_path / "ems_system.restic-key"
    vps.ok("backup-key", "--host", "t1", "--save", str(key))
    made = backup(vps)
    was = json.loads(vps.ok("releases", "--host", "t1", "--json").stdout)["ems_system"]
    running = next(r for r in was if r["running"])
    upload = (host.root / "ems_system/data/uploads/ems/nota.pdf").read_bytes()

    inv = yaml.safe_load(vps.inventory.read_text())
    inv["hosts"]["vps-new"] = inv["hosts"]["t1"]   # (the system listed on the new host too)
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    token = {"NEW_TOKEN": vps.token}
    busy = vps.fab("recover", "--host", "vps-new", "--from", "t1", "--key", str(key), "--drill")
    assert busy.returncode == errors.BAD_INPUT and "this host has containers" in busy.stderr, busy.stdout + busy.stderr
    assert upload == (host.root / "ems_system/data/uploads/ems/nota.pdf").read_bytes(), "nothing changed"

    host.reset()   # the server is gone: what comes back comes from the copies
    shutil.copytree(examples.EXAMPLES / "ems/repo", host.root / "ems_system/repo", symlinks=True)   # (git clone)
    drill = vps.fab("recover", "--host", "vps-new", "--from", "t1", "--key", str(key), "--drill", "--token-env",
                    "NEW_TOKEN", env=token, timeout=600)
    assert drill.returncode == 0 and "recovered (drill), running v1.4.3" in drill.stdout, drill.stdout + drill.stderr
    assert f"{sftp(vault)} could not give the copy" in drill.stdout, "the SFTP server does not know this host yet: " \
        "the REST repository gave it"
    assert host.docker("ps", "-aq").stdout == "" and host.docker("volume", "ls", "-q").stdout == ""
    left = sorted(str(p.relative_to(host.root)) for p in host.root.rglob("*") if p.is_file())
    assert [p for p in left if not p.startswith(("ems_system/repo/", ".ssh/", ".docker/"))] == [], left
    assert not [p for p in left if p.endswith("/.env")], "the .env files (secrets) taken away"
    assert registry.SERVER not in (host.root / ".docker/config.json").read_text(), "logged out"
    trust(host, vault)   # (the new VPS's SSH key authorised on the SFTP repository's server, as for the old one)
    stopped = vps.fab("recover", "--host", "vps-new", "--from", "t1", "--key", str(key))   # (no registry token)
    assert stopped.returncode == errors.BAD_INPUT, stopped.stdout + stopped.stderr
    assert "/root/ems_system/.secrets/github missing" in stopped.stderr and "goes on from there" in stopped.stderr
    res = vps.fab("recover", "--host", "vps-new", "--from", "t1", "--key", str(key), "--token-env", "NEW_TOKEN",
                  env=token, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "going on from there" in res.stdout
    FIGURES.append("fab recover --drill of the EMS example onto a prepared host: "
                   f"{re.search(r'RTO [0-9]+s', drill.stdout).group(0)}")
    assert "recovered, running v1.4.3 by its recorded digests" in res.stdout and "RTO" in res.stdout, res.stdout
    assert "ems_system runs on vps-new now: take it off t1's" in res.stdout

    now = json.loads(vps.ok("releases", "--host", "vps-new", "--json").stdout)["ems_system"]
    back = next(r for r in now if r["running"])
    assert back["action"] == "recover" and back["images"] == running["images"], (back, running)
    assert {r["release"] for r in was} < {r["release"] for r in now}, "the history came back"
    rows = host.docker("exec", "postgres_shared_db", "psql", "-U", "ems_user", "-d", "db_ems", "-Atc",
                       "SELECT count(*) FROM pedidos").stdout.strip()
    assert rows == "42"
    assert (host.root / "ems_system/data/uploads/ems/nota.pdf").read_bytes() == upload
    assert host.get(f"{examples.EMS_URL}/version") == "v1.4.3"
    assert not (host.root / "ems_system/state/recovering").exists()
    seen = host.commands_log.read_text() + res.stdout + res.stderr
    assert key.read_text().strip() not in seen and vps.token not in res.stdout + res.stderr
    assert made["backups"], "a snapshot of that run's backups"
    again = vps.fab("recover", "--host", "vps-new", "--from", "t1", "--key", str(key))
    assert again.returncode == errors.BAD_INPUT and "has a release history of ems_system already" in again.stderr


def test_enlevohub_comes_back_with_its_named_volumes_made_for_compose_to_adopt(sandbox, vault, tmp_path):
    """Seed 002: PostgreSQL, three backends and nginx in one compose file, the backends' files in named volumes.
    After the host is wiped, recover starts the database service alone (its clients wait), restores the rows,
    makes the volumes as compose makes them (its labels: compose adopts them, no 'not created by Docker
    Compose' warning) with the files in them, then the release by digest, all three replicas."""
    vps = Vps(sandbox, *examples.install(sandbox, tmp_path, "enlevohub", "enlevohub", examples.ENLEVOHUB_ENV))
    vps.host.route_to_others()
    fresh_rest(vault)
    inv = yaml.safe_load(vps.inventory.read_text())
    inv["systems"]["enlevohub"]["backup"]["offsite"] = [f"rest:http://{vault.address}:{REST_PORT}/enlevohub"]
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    vps.ok("setup", "--host", "t1")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    vps.host.docker("exec", "enlevohub-app-postgres-1", "psql", "-U", "enlevohub", "-d", "enlevohub", "-qc",
                    "CREATE TABLE obras (id int); INSERT INTO obras SELECT generate_series(1, 7)")
    vps.host.inside("echo planta > \"$(docker volume inspect -f '{{.Mountpoint}}' enlevohub-app_storage)/planta.txt\"")
    vps.ok("backup", "--host", "t1")
    key = tmp_path / "enlevohub.restic-key"
    vps.ok("backup-key", "--host", "t1", "--save", str(key))
    was = json.loads(vps.ok("releases", "--host", "t1", "--json").stdout)["enlevohub"]
    inv["hosts"]["vps-new"] = inv["hosts"]["t1"]
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))

    vps.host.reset()
    shutil.copytree(examples.EXAMPLES / "enlevohub/repo", vps.host.root / "enlevohub/repo", symlinks=True)
    res = vps.fab("recover", "--host", "vps-new", "--from", "t1", "--key", str(key), "--token-env", "NEW_TOKEN",
                  env={"NEW_TOKEN": vps.token}, timeout=600)
    assert res.returncode == 0 and "recovered, running v1.4.2 by its recorded digests" in res.stdout, \
        res.stdout + res.stderr
    assert "not created by Docker Compose" not in res.stdout + res.stderr
    labels = vps.host.docker("volume", "inspect", "-f", "{{json .Labels}}", "enlevohub-app_storage").stdout
    assert json.loads(labels)["com.docker.compose.project"] == "enlevohub-app"
    planta = vps.host.inside("cat \"$(docker volume inspect -f '{{.Mountpoint}}' enlevohub-app_storage)/planta.txt\"")
    assert planta.stdout.strip() == "planta"
    mounts = vps.host.docker("inspect", "-f", "{{range .Mounts}}{{.Name}} {{end}}", "enlevohub-app-backend-3").stdout
    assert "enlevohub-app_storage" in mounts.split(), "the backends use the volume recover made"
    assert vps.host.docker("exec", "enlevohub-app-postgres-1", "psql", "-U", "enlevohub", "-d", "enlevohub", "-tAc",
                           "SELECT count(*) FROM obras").stdout.strip() == "7"
    back = next(r for r in json.loads(vps.ok("releases", "--host", "vps-new", "--json").stdout)["enlevohub"]
                if r["running"])
    assert back["images"] == next(r for r in was if r["running"])["images"]
    assert vps.host.http(80, "/api/version") == "v1.4.2"
