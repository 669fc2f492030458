"""Configuration as part of the release (issue 9, problems 8 and 9), end to end on the sandbox VPS: repo/ is a
git checkout of a bare origin on the host; --ref moves it, rollback brings back the commit a release ran with,
and a system of public images only (real PostgreSQL 15) deploys without a tag or token and rolls back."""
import json

import yaml

from tasks.core import errors

ORIGIN = "/root/origin.git"
EMS = "ems_system/repo/servers/ems/container"
GIT = "git -c user.name=ops -c user.email=ops@x -c init.defaultBranch=main"


def make_checkout(vps, repo: str) -> None:
    """repo/ (as seeded) committed and cloned from a bare origin, as an operator's `git clone` would leave it."""
    vps.host.inside(f"set -e; cd /root/{repo}; printf '.env\\n' > .gitignore; {GIT} init -q; {GIT} add -A; "
                    f"{GIT} commit -qm v1; {GIT} clone -q --bare . {ORIGIN}; {GIT} remote add origin {ORIGIN}; "
                    f"{GIT} fetch -q origin; {GIT} checkout -q --detach origin/main")


def push_change(vps, repo: str, path: str, old: str, new: str, message: str) -> str:
    """A commit on origin's main (made in a second clone, as a developer pushes): its id."""
    out = vps.host.inside(f"set -e; rm -rf /root/dev; {GIT} clone -q {ORIGIN} /root/dev; cd /root/dev; "
                          f"sed -i 's|{old}|{new}|' {path}; {GIT} commit -qam '{message}'; {GIT} push -q origin main; "
                          "git rev-parse HEAD").stdout.strip()
    return out.splitlines()[-1]


def ems_env(vps) -> list[str]:
    return json.loads(vps.host.docker("inspect", "-f", "{{json .Config.Env}}", "ems_system-ems-ems-1").stdout)


def test_ref_moves_the_config_and_rollback_brings_back_the_commit_a_release_ran_with(vps):
    make_checkout(vps, "ems_system/repo")
    v1 = vps.host.inside("git -C /root/ems_system/repo rev-parse HEAD").stdout.strip()
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    v2 = push_change(vps, "ems_system/repo", "servers/ems/container/docker-compose.prod.yml",
                     "    restart: unless-stopped", "    restart: unless-stopped\\n    environment: [GREETING=v2]",
                     "ems: greet")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3", "--ref", "main")
    assert "GREETING=v2" in ems_env(vps)
    assert vps.running()["config"]["commit"] == v2 and vps.releases()[1]["config"]["commit"] == v1
    assert "ems_system/repo" not in json.dumps(vps.running()["config"]["files"]), "paths are relative to the system"

    env = vps.host.root / EMS / ".env"
    env.write_text(env.read_text().replace("ENVIRONMENT=production", "ENVIRONMENT=staging"))
    res = vps.ok("rollback", "--host", "t1", "--to", "v1.4.2")
    assert vps.host.inside("git -C /root/ems_system/repo rev-parse HEAD").stdout.strip() == v1
    assert "GREETING=v2" not in ems_env(vps) and vps.version() == "v1.4.2"
    assert "configuration differs from what v1.4.2 ran with: repo/servers/ems/container/.env\n" in res.stdout


def test_a_failing_release_on_a_new_ref_puts_the_old_commit_back(vps):
    make_checkout(vps, "ems_system/repo")
    v1 = vps.host.inside("git -C /root/ems_system/repo rev-parse HEAD").stdout.strip()
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    push_change(vps, "ems_system/repo", "servers/ems/container/docker-compose.prod.yml",
                "http://127.0.0.1:8080/health", "http://127.0.0.1:8080/nope", "ems: a broken healthcheck")
    res = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3", "--ref", "main")
    assert res.returncode == errors.ROLLED_BACK, res.stdout + res.stderr
    assert vps.host.inside("git -C /root/ems_system/repo rev-parse HEAD").stdout.strip() == v1
    assert vps.version() == "v1.4.3"


def test_a_checkout_with_local_changes_is_refused_for_ref(vps):
    make_checkout(vps, "ems_system/repo")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    compose = vps.host.root / EMS / "docker-compose.prod.yml"
    compose.write_text(compose.read_text() + "# edited on the VPS\n")
    res = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3", "--ref", "main")
    assert res.returncode == errors.BAD_INPUT and "has local changes to tracked files" in res.stderr


PLANTAO = """services:
  postgres:
    image: postgres:15-alpine
    container_name: openlabs_postgres
    environment: {POSTGRES_USER: admin, POSTGRES_PASSWORD: "${DB_PASSWORD:?}", POSTGRES_DB: escala_db}
    volumes: [pgdata:/var/lib/postgresql/data]
    healthcheck: {test: ["CMD-SHELL", "pg_isready -U admin -d escala_db"], interval: 1s, retries: 30}
volumes: {pgdata: {}}
"""


def test_a_system_of_public_images_deploys_without_a_tag_and_rolls_back_by_commit(vps):
    """Escala de Plantão's PostgreSQL (seed 003): a real PostgreSQL 15 from the public registry, no token file,
    no --tag; its releases differ by the commit of repo/, and a rollback goes back to the previous one with
    the data kept."""
    base = vps.host.root / "plantao"
    (base / "repo/postgres").mkdir(parents=True)
    (base / "repo/postgres/docker-compose.yml").write_text(PLANTAO)
    (base / "repo/postgres/.env").write_text("DB_PASSWORD=pl4nt40\n")
    make_checkout(vps, "plantao/repo")
    inv = yaml.safe_load(vps.inventory.read_text())
    inv["systems"] = {"plantao": {"stacks": {"postgres": {"compose": "repo/postgres/docker-compose.yml"}}}}
    inv["hosts"]["t1"]["systems"] = ["plantao"]
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))

    setup = vps.ok("setup", "--host", "t1").stdout
    assert "token" not in setup and not (base / ".secrets").exists(), "no token for public images"
    assert "letsencrypt" not in setup and "uploads" not in setup, "nothing of EMS's layout"
    vps.ok("deploy", "--host", "t1")
    psql = ["exec", "openlabs_postgres", "psql", "-U", "admin", "-d", "escala_db", "-tAc"]
    vps.host.docker(*psql, "CREATE TABLE escala (dia date); INSERT INTO escala VALUES ('2026-11-26')")
    push_change(vps, "plantao/repo", "postgres/docker-compose.yml", "POSTGRES_DB: escala_db}",
                "POSTGRES_DB: escala_db}\\n    command: [postgres, -c, max_connections=42]", "fewer connections")
    vps.ok("deploy", "--host", "t1", "--ref", "main")
    assert vps.host.docker(*psql, "SHOW max_connections").stdout.strip() == "42"
    rels = json.loads(vps.ok("releases", "--host", "t1", "--json").stdout)["plantao"]
    assert [r["tag"] for r in rels] == ["config", "config"] and rels[0]["images"] == {}

    vps.ok("rollback", "--host", "t1")
    assert vps.host.docker(*psql, "SHOW max_connections").stdout.strip() == "100"
    assert vps.host.docker(*psql, "SELECT count(*) FROM escala").stdout.strip() == "1"
    res = vps.fab("deploy", "--host", "t1", "--tag", "v1")
    assert res.returncode == errors.BAD_INPUT and "pins no image" in res.stderr
