"""The seed systems as they really run, from examples/ (issue 9), end to end on a sandbox VPS with the real
PostgreSQL, Traefik and nginx images: each example deploys v1.4.2, moves to v1.4.3, has a broken v1.5.0 put
back by itself, rolls back, and keeps its data."""
from __future__ import annotations

import json

import pytest
import yaml

from sandbox import examples, registry, system
from sandbox.load import Load
from tasks.core import errors

from .conftest import Vps


def install(sandbox, tmp_path, name: str, sys_name: str, env: dict[str, dict[str, str]], host: str = "t1") -> Vps:
    """examples/<name> on a clean sandbox host (sandbox/examples.py), as a Vps."""
    return Vps(sandbox, *examples.install(sandbox, tmp_path, name, sys_name, env, host))


def psql(vps, container: str, user: str, db: str, sql: str) -> str:
    return vps.host.docker("exec", container, "psql", "-U", user, "-d", db, "-tAc", sql).stdout.strip()


# -- seeds 000/001: EMS + SMS behind Traefik, one shared PostgreSQL ------------------------------------------------
@pytest.fixture
def ems(sandbox, tmp_path) -> Vps:
    return Vps(sandbox, *examples.ems(sandbox, tmp_path))


HAND_STARTED = f"""
set -e
{system.LOGIN}
docker network create ems_net >/dev/null
cd /root/ems_system/repo/servers && docker compose -f containers/postgres/docker-compose.prod.yml up -d --wait >/dev/null 2>&1
# (its healthcheck asks the socket, which the first start's init-only server answers too: wait for TCP)
for i in $(seq 300); do docker exec postgres_shared_db pg_isready -q -h 127.0.0.1 && break; sleep 0.2; done
docker exec postgres_shared_db psql -U ems_user -d db_ems -qc \
  "CREATE TABLE pedidos (id int); INSERT INTO pedidos SELECT generate_series(1, 42)"
cd /root/ems_system/repo/servers/ems/container && IMAGE_TAG=v1.4.2 docker compose -f docker-compose.prod.yml up -d --wait >/dev/null 2>&1
"""


def test_ems_and_sms_taken_over_from_a_hand_run_vps_then_released_each_on_its_own(ems):
    """Seed 000's VPS as its team left it (PostgreSQL started by hand in its folder: project "postgres",
    db_ems holding data; EMS started by hand as project "container"), taken over without losing a row, then
    two apps on their own versions behind the real Traefik."""
    vps = ems
    vps.host.inside(HAND_STARTED)
    as_shipped = vps.inventory.read_text()
    inv = yaml.safe_load(as_shipped)
    del inv["systems"]["ems_system"]["stacks"]["postgres"]["project"]
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    res = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.2")
    assert res.returncode == errors.BAD_INPUT, res.stdout + res.stderr
    assert "stack postgres: container postgres_shared_db already runs as compose project postgres: adopt it with " \
           "'project: postgres'" in res.stderr
    assert "stack ems: /root/ems_system/repo/servers/ems/container already runs as compose project container" \
        in res.stderr
    assert psql(vps, "postgres_shared_db", "ems_user", "db_ems", "SELECT count(*) FROM pedidos") == "42"

    vps.inventory.write_text(as_shipped)   # the example as shipped adopts postgres; EMS's own copy is stopped
    vps.host.inside("cd /root/ems_system/repo/servers/ems/container && IMAGE_TAG=x docker compose -f "
                    "docker-compose.prod.yml down >/dev/null 2>&1")
    vps.ok("setup", "--host", "t1")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    assert vps.host.get(f"{examples.EMS_URL}/version") == "v1.4.2" and vps.host.get(f"{examples.SMS_URL}/version") == "v1.4.2"
    vps.ok("deploy", "--host", "t1", "--tag", "ems=v1.4.3")
    assert vps.host.get(f"{examples.EMS_URL}/version") == "v1.4.3" and vps.host.get(f"{examples.SMS_URL}/version") == "v1.4.2"
    res = vps.fab("deploy", "--host", "t1", "--tag", "sms=v1.5.0")
    assert res.returncode == errors.ROLLED_BACK, res.stdout + res.stderr
    assert vps.host.get(f"{examples.SMS_URL}/version") == "v1.4.2"
    vps.ok("rollback", "--host", "t1")
    assert vps.host.get(f"{examples.EMS_URL}/version") == "v1.4.2"
    assert psql(vps, "postgres_shared_db", "ems_user", "db_ems", "SELECT count(*) FROM pedidos") == "42"
    volumes = vps.host.docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert volumes == ["postgres_postgres_data"], "the hand-started database's own volume, and no other"


def test_ems_start_first_behind_the_real_traefik_fails_no_request_and_never_serves_a_broken_release(ems):
    """rollout: start-first with EMS behind Traefik, a poller inside the host asking /ems/version all along
    (issue 12): a good deploy, a release that fails its gate (v1.5.0: its health is broken, its /version
    works), a rollback, and a deploy over the doubled containers a killed rollout leaves fail no request, and
    no answer ever comes from v1.5.0."""
    vps = ems   # (the example ships rollout: start-first)
    vps.ok("setup", "--host", "t1")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    ems_ids = ("ps", "-q", "--filter", "label=com.docker.compose.service=ems")
    for step, args, code in (("good deploy", ("deploy", "--tag", "ems=v1.4.3"), 0),
                             ("failed gate", ("deploy", "--tag", "ems=v1.5.0"), errors.ROLLED_BACK),
                             ("rollback", ("rollback",), 0),
                             ("over doubled containers", ("deploy", "--tag", "ems=v1.4.3"), 0)):
        if step == "over doubled containers":   # what a rollout killed between its scale and its drain leaves
            vps.host.inside("cd /root/ems_system/repo/servers/ems/container && docker compose -p ems_system-ems "
                            "-f docker-compose.prod.yml up -d --no-deps --no-recreate --scale ems=2 ems")
            assert len(vps.host.docker(*ems_ids).stdout.split()) == 2
        with Load(vps.host, f"{examples.EMS_URL}/version", rate=60, workers=4) as load:
            res = vps.fab(*args, "--host", "t1")
        assert res.returncode == code, res.stdout + res.stderr
        assert load.failed == 0 and "v1.5.0" not in load.answers and len(load.results) > 20, f"{step}: {load.summary()}"
        if step == "rollback":
            assert vps.host.get(f"{examples.EMS_URL}/version") == "v1.4.2"
    assert vps.host.get(f"{examples.EMS_URL}/version") == "v1.4.3"
    assert len(vps.host.docker(*ems_ids).stdout.split()) == 1, "one replica again"


def test_ems_first_start_creates_the_apps_databases_once(ems):
    """A fresh VPS: setup makes ems_net and the folders; PostgreSQL's init_users.sh runs on the empty volume."""
    vps = ems
    vps.ok("setup", "--host", "t1")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    assert psql(vps, "postgres_shared_db", "sms_user", "db_sms", "SELECT current_user") == "sms_user"
    assert (vps.host.root / "ems_system/data/uploads/ems").is_dir() and (vps.host.root / "infra/letsencrypt").is_dir()
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")   # init scripts never run twice
    assert "init: running" not in vps.host.docker("logs", "postgres_shared_db").stdout.split("init: done")[-1]
    # backup: before_deploy took a dump of both apps' databases before the second deploy; a drill restores them
    drill = json.loads(vps.ok("restore", "--host", "t1", "--from", "latest", "--json").stdout)
    assert [d["database"] for d in drill["databases"]] == ["db_ems", "db_sms", "postgres_admin"]
    globals_sql = next((vps.host.root / "ems_system/data/backups").glob("postgres-*")) / "globals.sql"
    assert "CREATE ROLE ems_user" in globals_sql.read_text() and "CREATE ROLE sms_user" in globals_sql.read_text()
    # backup: paths: an uploaded file and Traefik's certificates in the same run as the dumps, drilled
    (vps.host.root / "ems_system/data/uploads/sms/recibo.pdf").write_bytes(b"%PDF sms " * 5000)
    made = json.loads(vps.ok("backup", "--host", "t1", "--json").stdout)["t1/ems_system"]["backups"]
    assert [b["stack"] for b in made] == ["postgres", "files"]
    assert made[1]["holds"] == "system/data/uploads host/root/infra/letsencrypt"
    drill = json.loads(vps.ok("restore", "--host", "t1", "--from", made[1]["name"], "--json").stdout)
    assert drill["parts"][0]["part"] == "system/data/uploads" and drill["parts"][0]["bytes"] >= 45000
    copy = vps.host.root / f"ems_system/data/backups/{made[1]['name']}/tree/system/data/uploads/sms/recibo.pdf"
    copy.write_bytes(b"%PDF SMS " * 5000)   # the same size: only the checksum finds it
    res = vps.fab("restore", "--host", "t1", "--from", made[1]["name"])
    assert res.returncode == errors.BACKUP_FAILED and "system/data/uploads came back damaged" in res.stderr, res.stderr
    res = vps.fab("restore", "--host", "t1", "--from", made[1]["name"], "--live", "--yes")
    assert res.returncode == errors.BACKUP_FAILED and "is damaged" in res.stderr, res.stderr
    # --live: the upload lost on the VPS comes back; the stacks that mount the folders stop and come back healthy
    upload = vps.host.root / "ems_system/data/uploads/sms/recibo.pdf"
    made = json.loads(vps.ok("backup", "--host", "t1", "--json").stdout)["t1/ems_system"]["backups"]
    upload.unlink()
    out = vps.ok("restore", "--host", "t1", "--from", made[1]["name"], "--live", "--yes").stdout
    assert upload.read_bytes() == b"%PDF sms " * 5000 and "files restored from" in out
    stopped = [line.split(": nothing writes")[0].split()[-1] for line in out.splitlines() if ": nothing writes" in line]
    assert stopped == ["sms", "ems", "infra"], out   # (their uploads, Traefik's certificates; not PostgreSQL)
    assert vps.host.get(f"{examples.SMS_URL}/version") == "v1.4.3"




# -- seed 002: EnlevoHub, one compose file, three backend replicas behind nginx -------------------------------------
def backend_tags(vps) -> list[str]:
    out = vps.host.docker("ps", "--filter", "label=com.docker.compose.service=backend", "--format", "{{.ID}}").stdout
    refs = [vps.host.docker("inspect", "-f", "{{.Config.Image}}", cid).stdout.strip() for cid in out.split()]
    return sorted(ref.split("enlevohub-backend:", 1)[1].split("@")[0] for ref in refs)


def test_enlevohub_three_replicas_behind_the_real_nginx_change_without_a_failed_request(sandbox, tmp_path):
    """Seed 002 as its example deploys it: rollout start-first behind nginx (the tool writes the backends'
    upstream block and reloads nginx). A poller inside the host asks /api/version through nginx all along a good
    deploy, a release that fails its gate (v1.5.0: broken health, working /version), a rollback and a deploy
    replacing the three backends one at a time (issue 12):
    no request fails, no answer ever comes from v1.5.0, every replica ends on one release, the data stays."""
    vps = install(sandbox, tmp_path, "enlevohub", "enlevohub", examples.ENLEVOHUB_ENV)
    vps.ok("setup", "--host", "t1")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    assert backend_tags(vps) == ["v1.4.2"] * 3
    assert vps.host.http(80, "/api/version") == "v1.4.2"
    assert "replicas app/backend: 3/3 healthy" in vps.ok("status", "--host", "t1").stdout
    psql(vps, "enlevohub-app-postgres-1", "enlevohub", "enlevohub",
         "CREATE TABLE obras (id int); INSERT INTO obras SELECT generate_series(1, 7)")

    for step, args, code, tags in (("good deploy", ("deploy", "--tag", "backend=v1.4.3"), 0, "v1.4.3"),
                                   ("failed gate", ("deploy", "--tag", "v1.5.0"), errors.ROLLED_BACK, "v1.4.3"),
                                   ("rollback", ("rollback", "--to", "v1.4.2"), 0, "v1.4.2"),
                                   ("rolling, one at a time", ("deploy", "--tag", "backend=v1.4.3"), 0, "v1.4.3")):
        if step == "rolling, one at a time":
            examples.enlevohub_for_rollout(vps.host, vps.inventory, batch=1)
        with Load(vps.host, "http://127.0.0.1/api/version", rate=60, workers=4) as load:
            res = vps.fab(*args, "--host", "t1")
        assert res.returncode == code, res.stdout + res.stderr
        assert load.failed == 0 and "v1.5.0" not in load.answers and len(load.results) > 20, f"{step}: {load.summary()}"
        assert backend_tags(vps) == [tags] * 3, f"{step}: every replica on {tags}"
    upstream = (vps.host.root / "enlevohub/repo/upstreams/backend.conf").read_text()
    assert upstream.count("server enlevohub-app-backend-") == 3, upstream
    assert psql(vps, "enlevohub-app-postgres-1", "enlevohub", "enlevohub", "SELECT count(*) FROM obras") == "7"
    # backup: volumes: what the backends wrote in their named volume, beside the dump, drilled
    vps.host.inside("echo planta > \"$(docker volume inspect -f '{{.Mountpoint}}' enlevohub-app_storage)/planta.txt\"")
    made = json.loads(vps.ok("backup", "--host", "t1", "--json").stdout)["t1/enlevohub"]["backups"]
    assert [(b["stack"], b["holds"]) for b in made] == [("app", "enlevohub"), ("files", "volume/storage volume/appdata")]
    drill = json.loads(vps.ok("restore", "--host", "t1", "--from", made[1]["name"], "--json").stdout)
    assert drill["parts"][0]["part"] == "volume/storage" and drill["parts"][0]["files"] >= 1


# -- seed 004: EVAonline, one runtime image for api, worker, beat and flower -----------------------------------------
RUNTIME = ("api", "celery-worker", "celery-beat", "flower")


def runtime_tags(vps) -> dict[str, str]:
    return {svc: vps.host.docker("inspect", "-f", "{{.Config.Image}}", f"evaonline-{svc}").stdout.strip()
            .split("evaonline-runtime:", 1)[1].split("@")[0] for svc in RUNTIME}


def without_healthchecks(vps, *services: str) -> None:
    """Drop the healthcheck of ``services`` from the compose file (as seed 004 shipped most of them)."""
    compose = vps.host.root / "evaonline/repo/docker-compose.yml"
    text = compose.read_text()
    for svc in services:
        head, rest = text.split(f"container_name: evaonline-{svc}\n", 1)
        block, tail = rest.split("      <<: *health\n", 1)
        text = head + f"container_name: evaonline-{svc}\n" + block.split("    healthcheck:\n")[0] + tail
    compose.write_text(text)


def test_evaonline_one_runtime_image_moves_all_four_services_and_its_worker_is_watched(sandbox, tmp_path):
    vps = install(sandbox, tmp_path, "evaonline", "evaonline", {".": {"DB_PASSWORD": "eva-pw",
                                                                      "REGISTRY": registry.SERVER}})
    vps.ok("setup", "--host", "t1")
    out = vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2").stdout
    assert out.count("evaonline-runtime:v1.4.2") == 1, "one image, pulled once for its four services"
    assert runtime_tags(vps) == dict.fromkeys(RUNTIME, "v1.4.2")
    psql(vps, "evaonline-postgres", "evaonline", "evaonline", "CREATE TABLE et0 (d date); INSERT INTO et0 VALUES (now())")
    out = vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3").stdout
    assert runtime_tags(vps) == dict.fromkeys(RUNTIME, "v1.4.3") and "no healthcheck" not in out
    assert vps.host.http(8000, "/version") == "v1.4.3"

    # only the worker checks itself: a release that breaks the runtime is caught by the worker alone
    without_healthchecks(vps, "api", "celery-beat", "flower")
    inv = yaml.safe_load(vps.inventory.read_text())
    del inv["systems"]["evaonline"]["stacks"]["app"]["health"]
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    res = vps.fab("deploy", "--host", "t1", "--tag", "v1.5.0")
    assert res.returncode == errors.ROLLED_BACK, res.stdout + res.stderr
    assert "evaonline-celery-worker is unhealthy" in res.stdout + res.stderr
    assert runtime_tags(vps) == dict.fromkeys(RUNTIME, "v1.4.3")

    # with no healthcheck left, the broken release passes the gate: the operator is told which services
    without_healthchecks(vps, "celery-worker")
    out = " ".join(vps.ok("deploy", "--host", "t1", "--tag", "v1.5.0").stdout.split())
    assert "no healthcheck on evaonline-app/api, evaonline-app/celery-beat, evaonline-app/celery-worker, " \
           "evaonline-app/flower:" in out
    vps.ok("rollback", "--host", "t1")
    assert runtime_tags(vps) == dict.fromkeys(RUNTIME, "v1.4.3")
    assert psql(vps, "evaonline-postgres", "evaonline", "evaonline", "SELECT count(*) FROM et0") == "1"
