"""fab doctor's facts (sh/doctor.sh) under bash with stub docker and df: docker's and compose's versions, both
filesystems, the networks, each stack's configuration or compose's error, placeholders, the clock; nothing is
written or locked. Fast tier."""
import pytest

from tasks.core import inventory
from tasks.core.programs.doctor import doctor_program

from .conftest import HERE, TOKEN, Lab, finished


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    (lab.bin / "df").symlink_to(HERE / "stub")
    lab.answer("df", "-B1 --output=size,avail /", "1B-blocks Avail\n100000000000 4000000000\n")
    lab.answer("df", "--output=itotal,iavail /", "Inodes IFree\n6000000 5000000\n")
    lab.answer("df", f"-B1 --output=size,avail {lab.root}", "1B-blocks Avail\n50000000000 2000000000\n")
    lab.answer("df", f"--output=itotal,iavail {lab.root}", "Inodes IFree\n3000000 20000\n")
    lab.answer("df", f"-B1 --output=avail {lab.root}", "Avail\n2000000000\n")
    lab.answer("docker", "version --format {{.Server.Version}}", "27.5.1\n")
    lab.answer("docker", "compose version --short", "2.32.4\n")
    lab.answer("docker", "info --format {{.DockerRootDir}}", f"{lab.root}\n")
    lab.answer("docker", "network ls --format {{.Name}}", "bridge\nhost\nnone\n")
    lab.answer("docker", "compose -p * config --format json", '{"name": "x", "services": {}}\n')
    lab.answer("docker", "ps -q --filter label=com.docker.compose.project=*", "")
    yield lab
    finished(lab)


def test_the_facts_of_a_host_are_read_and_nothing_changes(lab):
    lab.answer("docker", "compose -p ems_system-sms -f * config --format json", "service sms: bad port\n", code=15)
    (lab.root / "ems_system/repo/ems/.env_example").write_text("DB_PASSWORD=change-me\nDB_USER=ems\n")
    (lab.root / "ems_system/repo/ems/.env").write_text("DB_PASSWORD=change-me\nDB_USER=ems\n")
    before = sorted(p for p in lab.root.rglob("*"))
    run = lab.run(doctor_program(lab.target))
    assert run.code == 0, run.stdout
    r = run.result
    assert r.one("versions") == {"engine": "27.5.1", "compose": "2.32.4"}
    assert [d["path"] for d in r.all("fs")] == ["/", str(lab.root)]
    assert r.all("fs")[1] == {"path": str(lab.root), "size": "50000000000", "avail": "2000000000",
                              "files": "3000000", "ffree": "20000"}
    assert r.one("networks") == {"names": "bridge host none"}
    assert [d["stack"] for d in r.all("compose")] == ["infra", "ems"]
    assert r.all("stack_error") == [{"stack": "sms", "text": "service sms: bad port"}]
    assert r.all("placeholder") == [{"path": str(lab.root / "ems_system/repo/ems/.env"), "key": "DB_PASSWORD"}]
    assert r.one("clock")["epoch"].isdigit()
    assert sorted(p for p in lab.root.rglob("*")) == before, "read-only"


def test_a_host_without_docker_still_reports_the_rest(lab):
    lab.answer("docker", "version --format {{.Server.Version}}", "Cannot connect to the Docker daemon\n", code=1)
    lab.answer("docker", "info --format {{.DockerRootDir}}", code=1)
    run = lab.run(doctor_program(lab.target))
    assert run.code == 0, run.stdout
    assert run.result.one("versions")["engine"] == "" and run.result.one("networks") is None
    assert [d["path"] for d in run.result.all("fs")] == ["/"]


@pytest.mark.parametrize("content, result, keys", [
    (None, "missing", []), ("", "empty", []), ("# DB_PASS=\n\n", "empty", []),
    ("DB_USER=plantao\nDB_PASS=change-me\n", "set", ["DB_PASS"]), ("DB_PASS=s3cret\n", "set", []),
])
def test_a_units_environment_file_missing_empty_or_left_with_placeholders(lab, content, result, keys):
    env = lab.root / "etc/plantao/plantao.env"
    (lab.root / "hosts.yml").write_text(
        "registry: {server: r.example, username: u}\nsystems:\n  plantao:\n    stacks:\n"
        f"      escala: {{binary: {{path: '{lab.root}/opt/plantao/escala-plantao', unit: plantao}}}}\n"
        f"hosts:\n  lab: {{address: 127.0.0.1, root: '{lab.root}', systems: [plantao]}}\n")
    target = inventory.load(lab.root / "hosts.yml").host("lab").targets()[0]
    (lab.bin / "systemctl").symlink_to(HERE / "stub")
    lab.answer("systemctl", "show -p EnvironmentFiles --value plantao.service",
               f"{env} (ignore_errors=no)\n{lab.root}/etc/plantao/optional.env (ignore_errors=yes)\n")
    if content is not None:
        env.parent.mkdir(parents=True)
        env.write_text(content)
    run = lab.run(doctor_program(target))
    assert run.code == 0, run.stdout
    assert run.result.all("unitenv") == [{"unit": "plantao.service", "path": str(env), "result": result}]
    assert [d["key"] for d in run.result.all("placeholder")] == keys
    assert "s3cret" not in run.stdout, "values never leave the host"


def db_system(lab: Lab, ems_env: str = "DB_USER=ems_user\nDB_PASSWORD='s3cret pw'\nDB_NAME=db_ems\n"):
    """A system whose stack postgres is the database of ems (a login) and sms (none): its target."""
    (lab.root / "hosts.yml").write_text(
        f"registry: {{server: r.example, username: u}}\nsystems:\n  s:\n    stacks:\n"
        "      postgres: {compose: repo/pg/docker-compose.yml, database: {service: postgres}}\n"
        "      ems: {compose: repo/ems/docker-compose.yml}\n"
        "      sms: {compose: repo/sms/docker-compose.yml}\n"
        f"hosts:\n  lab: {{address: 127.0.0.1, root: '{lab.root}', systems: [s]}}\n")
    for stack, env in (("pg", "POSTGRES_PASSWORD=x\n"), ("ems", ems_env), ("sms", "DB_NAME=db_sms\n")):
        (lab.root / f"s/repo/{stack}").mkdir(parents=True)
        (lab.root / f"s/repo/{stack}/docker-compose.yml").write_text("services: {}\n")
        (lab.root / f"s/repo/{stack}/.env").write_text(env)
    return inventory.load(lab.root / "hosts.yml").host("lab").targets()[0]


PG = "--filter label=com.docker.compose.project=s-postgres --filter label=com.docker.compose.service=postgres"


def test_each_clients_login_is_tried_against_its_postgresql_with_the_password_on_stdin(lab):
    target = db_system(lab)
    lab.answer("docker", f"ps -q {PG} --filter status=running", "c0ffee\n")
    lab.answer("docker", f"ps -aq {PG}", "")
    lab.answer("docker", "inspect --format {{range .NetworkSettings.Networks}}* c0ffee", "172.18.0.2 \n")
    lab.answer("docker", "exec -i c0ffee sh -c * sh 172.18.0.2 ems_user db_ems",
               'psql: error: connection to server at "172.18.0.2", port 5432 failed: FATAL:  password '
               'authentication failed for user "ems_user"\n', code=2)
    run = lab.run(doctor_program(target))
    assert run.code == 0, run.stdout
    assert run.result.all("dblogin") == [{
        "stack": "postgres", "client": "ems", "path": str(lab.root / "s/repo/ems/.env"), "user": "ems_user",
        "database": "db_ems", "result": "refused",
        "text": 'psql: error: connection to server at "172.18.0.2", port 5432 failed: FATAL:  password '
                'authentication failed for user "ems_user"'}], "sms names no login: not tried"
    assert "s3cret" not in run.stdout and not [c for c in lab.commands("docker") if "s3cret" in c]
    assert [c.stdin for c in lab.calls("docker") if c.argv[1:3] == ["exec", "-i"]] == ["s3cret pw"]


@pytest.mark.parametrize("env, mounts, said", [
    ("PG_MAJOR=15\nPGDATA=/var/lib/postgresql/data\n", "/var/lib/postgresql/data {vol}\n",
     {"state": "restarting", "image": "15", "volume": "14"}),
    ("PG_MAJOR=16\nPGDATA=/var/lib/postgresql/data/pgdata\n",
     "/tmp /x\n/var/lib/postgresql {decoy}\n/var/lib/postgresql/data {vol}/..\n",
     {"state": "restarting", "image": "16", "volume": "16"}),
    ("PATH=/bin\n", "/srv/other {vol}\n", {"state": "restarting", "image": "", "volume": ""}),
    ("PG_MAJOR=15\n", "", {"state": "restarting", "image": "15", "volume": ""}),
])
def test_the_database_images_major_and_its_data_folders_are_read_from_the_container_in_any_state(
        lab, env, mounts, said):
    """The PG_VERSION read is the one under PGDATA through the mount holding it (the longest), even with the
    server down; a volume not made yet or an image that does not say its major reads empty."""
    target = db_system(lab, ems_env="")
    vol, decoy = lab.root / "volumes/pg/_data", lab.root / "volumes/decoy/_data"
    for folder, version in ((vol, "14"), (vol / "../pgdata", "16"), (decoy / "data/pgdata", "9.6")):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "PG_VERSION").write_text(version + "\n")
    lab.answer("docker", f"ps -q {PG} --filter status=running", "")
    lab.answer("docker", f"ps -aq {PG}", "dead00\n")
    lab.answer("docker", "inspect --format {{.State.Status}}{{println}}* dead00", f"restarting\n{env}")
    lab.answer("docker", "inspect --format {{range .Mounts}}* dead00", mounts.format(vol=vol, decoy=decoy))
    run = lab.run(doctor_program(target))
    assert run.code == 0, run.stdout
    assert run.result.all("dbversion") == [{"stack": "postgres", **said}]
    assert run.result.all("dblogin") == [{"stack": "postgres", "result": "down"}]


CERT = "-----BEGIN CERTIFICATE-----\nMIIB{n}\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIkey\n-----END EC PRIVATE KEY-----\n"
LABELS = """com.docker.compose.project=ems_system-ems
traefik.enable=true
traefik.http.routers.ems.rule=Host(`api.ems.example`) || Host(`ems.example`)
traefik.http.routers.ems.entrypoints=websecure
traefik.http.routers.ems.tls.certresolver=le
traefik.http.routers.plain.rule=Host(`plain.example`)
traefik.http.routers..rule=Host(`broken.example`)
traefik.http.routers.other.tls=true
traefik.http.routers.other.rule=PathPrefix(`/x`) && Host(`*.glob`)
"""


def test_the_certificate_served_for_each_tls_routers_name_and_each_certs_file_and_never_a_key(lab):
    """Names come from the TLS routers' Host() rules of the system's running containers (a router without TLS
    labels is not asked); each is asked of :443 with its name; a certs folder's files give their first
    certificate only."""
    certs = lab.root / "opt/plantao/certs"
    certs.mkdir(parents=True)
    (certs / "plantao.example").write_text(KEY + CERT.format(n="leaf") + CERT.format(n="chain"))
    (certs / "acme_account+key").write_text(KEY)
    (lab.root / "hosts.yml").write_text(
        "registry: {server: r.example, username: u}\nsystems:\n  s:\n    stacks:\n"
        "      ems: {compose: repo/ems/docker-compose.yml}\n"
        f"      escala: {{binary: {{path: '{lab.root}/opt/plantao/escala-plantao', unit: plantao, certs: '{certs}'}}}}\n"
        f"hosts:\n  lab: {{address: 127.0.0.1, root: '{lab.root}', systems: [s]}}\n")
    target = inventory.load(lab.root / "hosts.yml").host("lab").targets()[0]
    (lab.root / "s/repo/ems").mkdir(parents=True)
    (lab.root / "s/repo/ems/docker-compose.yml").write_text("services: {}\n")
    for tool in ("openssl", "systemctl"):
        (lab.bin / tool).symlink_to(HERE / "stub")
    lab.answer("systemctl", "show -p EnvironmentFiles --value plantao.service", "")
    lab.answer("docker", "ps -q --filter label=com.docker.compose.project=s-ems", "e1\n")
    lab.answer("docker", "inspect --format {{range $k, $v := .Config.Labels}}* e1", LABELS)
    lab.answer("openssl", "s_client -connect 127.0.0.1:443 -servername *",
               "CONNECTED(00000003)\n---\nServer certificate\n" + CERT.format(n="served") + "subject=CN = x\n")
    lab.answer("openssl", "s_client -connect 127.0.0.1:443 -servername ems.example", "connect: refused\n", code=1)
    run = lab.run(doctor_program(target))
    assert run.code == 0, run.stdout
    assert run.result.all("cert") == [
        {"source": "traefik", "name": "*.glob", "pem": CERT.format(n="served").strip()},
        {"source": "traefik", "name": "api.ems.example", "pem": CERT.format(n="served").strip()},
        {"source": "traefik", "name": "ems.example", "pem": ""},
        {"source": str(certs), "name": "acme_account+key", "pem": ""},
        {"source": str(certs), "name": "plantao.example", "pem": CERT.format(n="leaf").strip()}]
    assert [c.split()[-1] for c in lab.commands("openssl")] == ["*.glob", "api.ems.example", "ems.example"]
    assert "PRIVATE KEY" not in run.stdout and "MHcCAQEEIkey" not in run.stdout


def test_github_is_asked_about_the_token_from_the_host_with_the_token_on_stdin_only(lab):
    """doctor's token expiry: the token file's token goes to GitHub's API in a header curl reads from stdin;
    its expiry and scopes come back as token-status reads them."""
    lab.answer("curl", "--globoff -sS -m 10 -o /dev/null -D - -H @- https://api.github.test/user",
               "HTTP/2 200 \r\nx-oauth-scopes: read:packages\r\n"
               "github-authentication-token-expiration: 2027-02-01 00:00:00 UTC\r\n\r\n")
    run = lab.run(doctor_program(lab.target, "https://api.github.test"))
    assert run.code == 0, run.stdout
    assert run.result.one("api") == {"status": "200", "expiry": "2027-02-01 00:00:00 UTC", "scopes": "read:packages",
                                     "has_scopes": "1"}
    (call,) = [c for c in lab.calls("curl") if "api.github.test" in " ".join(c.argv)]
    token = TOKEN
    assert token not in " ".join(call.argv) and call.stdin == f"Authorization: token {token}\n"
