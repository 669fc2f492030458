"""Taking over a VPS whose stacks were started by hand, and preflight: what would break a deploy is found
before anything that runs is stopped (issue 9, problems 2 and 4), end to end on the sandbox VPS."""
import yaml

from sandbox import system
from tasks.core import errors

from .test_safety import assert_unchanged

POSTGRES = "ems_system/repo/servers/containers/postgres"
HAND_START = f"""
set -e
{system.LOGIN}
cd /root/{POSTGRES}
docker compose -f docker-compose.prod.yml up -d --wait >/dev/null 2>&1
docker compose -f docker-compose.prod.yml exec -T postgres /bin/busybox sh -c \
  'echo "rows: 42" > /var/lib/postgresql/data/table.dat'
"""


def test_a_hand_started_database_is_refused_then_adopted_with_its_data(vps):
    """Seed 001's PostgreSQL was started by hand (`cd …/postgres && docker compose up -d`: project "postgres",
    volume postgres_pgdata). The tool's own project would give it a new, empty volume: refused, with the line
    that adopts it; with `project: postgres` the deploy keeps the container's volume and its data."""
    compose = vps.host.root / POSTGRES / "docker-compose.prod.yml"
    compose.write_text(compose.read_text().replace("    name: ems_pgdata\n", "")   # the seed's own file, which
                       .replace("    restart: unless-stopped\n", "    restart: unless-stopped\n    env_file: .env\n"))
    (compose.parent / ".env").write_text("POSTGRES_USER=admin\n")               # gives its .env to the container
    vps.host.inside(HAND_START)
    started = vps.host.docker("compose", "-p", "postgres", "ps", "-q").stdout
    before = vps.snapshot()
    res = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3")
    assert_unchanged(vps, before, res, errors.BAD_INPUT, f"/root/{POSTGRES} already runs as compose project postgres",
                     "adopt it with 'project: postgres' for this stack in hosts.yml", "nothing was changed")

    inv = yaml.safe_load(vps.inventory.read_text())
    inv["systems"]["ems_system"]["stacks"]["postgres"]["project"] = "postgres"
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    assert vps.version() == "v1.4.3"
    assert vps.host.docker("compose", "-p", "postgres", "ps", "-q").stdout == started, \
        "adopting changes nothing that runs: the database container is the one started by hand (issue 18 item 8)"
    assert (compose.parent / ".env").read_text() == "POSTGRES_USER=admin\n"
    data = vps.host.docker("compose", "-p", "postgres", "exec", "-T", "postgres", "/bin/busybox", "cat",
                           "/var/lib/postgresql/data/table.dat").stdout
    assert data == "rows: 42\n"
    volumes = vps.host.docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert "postgres_pgdata" in volumes and "ems_system-postgres_pgdata" not in volumes


def test_a_stack_started_by_hand_under_another_project_with_data_is_never_given_an_empty_volume(vps):
    """The hand-started copy is gone (stopped by hand), its volume holds the data: starting the tool's own
    project would bring PostgreSQL up empty. Refused, volume named."""
    compose = vps.host.root / POSTGRES / "docker-compose.prod.yml"
    compose.write_text(compose.read_text().replace("    name: ems_pgdata\n", ""))
    vps.host.inside(HAND_START + f"docker compose -f /root/{POSTGRES}/docker-compose.prod.yml down >/dev/null 2>&1\n")
    before = vps.snapshot()
    look = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3", "--dry-run")
    assert look.returncode == errors.BAD_INPUT and "preflight would refuse this deploy" in look.stderr
    assert "stack postgres uses volume ems_system-postgres_pgdata (new: created empty)" in look.stdout
    res = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3")
    assert_unchanged(vps, before, res, errors.BAD_INPUT,
                     "stack postgres: it would start on a new, empty volume ems_system-postgres_pgdata while volume "
                     "postgres_pgdata of compose project postgres holds data")


def test_a_missing_external_network_refuses_before_anything_stops_and_setup_creates_it(vps):
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    compose = vps.host.root / "ems_system/repo/servers/sms/container/docker-compose.prod.yml"
    compose.write_text(compose.read_text().replace("    restart: unless-stopped\n",
                                                   "    restart: unless-stopped\n    networks: [ems_net]\n")
                       + "networks:\n  ems_net:\n    external: true\n")
    before = vps.snapshot()
    res = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3")
    assert_unchanged(vps, before, res, errors.BAD_INPUT,
                     "stack sms: external network ems_net does not exist (fab setup creates it)")
    vps.ok("setup", "--host", "t1")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    assert vps.version() == "v1.4.3"


def test_a_variable_the_compose_file_requires_refuses_before_anything_stops(vps):
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    compose = vps.host.root / "ems_system/repo/servers/ems/container/docker-compose.prod.yml"
    compose.write_text(compose.read_text().replace("    restart: unless-stopped\n", "    restart: unless-stopped\n"
                                                   "    environment:\n      SMTP: ${SMTP_HOST:?set SMTP_HOST}\n"))
    before = vps.snapshot()
    res = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3")
    assert_unchanged(vps, before, res, errors.BAD_INPUT, "stack ems: docker compose config fails:",
                     "required variable SMTP_HOST is missing a value")


def test_a_compose_failure_that_is_not_health_is_told_apart_from_a_failed_gate(vps):
    """A container outside compose took sms's port: compose cannot start sms, which is not a "failed health
    gate". The port is still taken when the previous release is put back, so the host needs a look (exit 6);
    ems is back on v1.4.2. (Exit 9, the previous release back, is proven in tests/shell/test_preflight.py.)"""
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    vps.host.inside("img=$(docker inspect -f '{{.Image}}' ems_system-sms-sms-1); docker rm -f ems_system-sms-sms-1"
                    " >/dev/null; docker run -d --name squatter -p 127.0.0.1:8081:8080 \"$img\" >/dev/null")
    res = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3")
    assert res.returncode == errors.NEEDS_ATTENTION, res.stdout + res.stderr
    assert "v1.4.3 could not be started (compose failed, not a health check: sms:" in res.stderr
    assert "port is already allocated" in res.stderr or "address already in use" in res.stderr
    assert vps.version() == "v1.4.2"
    assert vps.releases()[0]["state"] == "failed"
