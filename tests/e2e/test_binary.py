"""Seed 003's Go binary under a real systemd: the sandbox's systemd host (PID 1 systemd in a container booted
by systemd-nspawn, its own dockerd for the PostgreSQL stack) with examples/plantao. The binary placed by hand
is kept, releases v1 and v2 go live, a broken v3 fails to start (203/EXEC) and v2 is back, a rollback
switches to v1 by its sha256; old releases are pruned; the database beside it is backed up and drilled; the
lost server comes back from its copy off the VPS (the REST repository of test_offsite's vault on t2)."""
from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess

import pytest
import yaml

from sandbox import examples, proc
from tasks.core import errors

from .conftest import REPO, REST_PORT, Vps, booted_host, fresh_rest
from .test_examples import install, psql

HOST = "sd1"
SOURCE = REPO / "sandbox/files/plantao/escala-plantao.c"
ODD = "it's \"quoted\" $HOME `tick` #not-a-comment \\ end"


@pytest.fixture(scope="module")   # (stopped after this file, if it was not running: it loads the others)
def systemd_host(sandbox):
    yield from booted_host(sandbox, HOST, "systemd")


@pytest.fixture(scope="session")
def builds(tmp_path_factory) -> dict:
    """v0 (the seed's binary, placed by hand), v1 and v2 built from the C stand-in; v3 cannot even start."""
    out = tmp_path_factory.mktemp("builds")
    files = {}
    for version in ("v0", "v1", "v2"):
        files[version] = out / f"escala-plantao-{version}"
        subprocess.run(["gcc", "-O2", "-static", f'-DVERSION="{version}"', "-o", str(files[version]), str(SOURCE)],
                       check=True)
    files["v3"] = out / "escala-plantao-v3"
    files["v3"].write_text("#!/nonexistent/interpreter\n")   # what a wrong architecture or a bad copy does
    files["v3"].chmod(0o755)
    return files


@pytest.fixture
def plantao(sandbox, tmp_path, systemd_host) -> Vps:
    vps = install(sandbox, tmp_path, "plantao", "plantao", {".": {"DB_PASS": "plantao-sandbox-pw"}}, host=HOST)
    inv = yaml.safe_load(vps.inventory.read_text())
    inv["systems"]["plantao"]["stacks"]["escala"]["binary"]["keep"] = 2
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    return vps


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_binary_under_systemd_deployed_broken_put_back_and_rolled_back(plantao, builds):
    vps, host = plantao, plantao.host
    res = vps.ok("setup", "--host", HOST)
    assert "+ /etc/systemd/system/plantao.service" in res.stdout and "fill in /etc/plantao/plantao.env" in res.stdout
    assert host.run("stat -c '%a %U' /etc/plantao/plantao.env").stdout.split() == ["600", "root"]
    doctor = vps.fab("doctor", "--host", HOST, "--json")   # (seed 003's unit with its environment not filled in)
    unit_env = [(f["level"], f["text"]) for f in json.loads(doctor.stdout)[f"{HOST}/plantao"] if f["check"] == "unit env"]
    assert doctor.returncode == 11 and unit_env == [
        ("fail", "plantao.service reads /etc/plantao/plantao.env, which sets nothing")], doctor.stdout
    # must_match: the database's password (repo/.env) is the one the unit's environment gives the binary, which
    # env-set writes there without a shell on the VPS
    for value, found in (("", "escala:DB_PASS not set"), ("wrong-pw", "escala:DB_PASS differs from postgres:DB_PASS"),
                         ("plantao-sandbox-pw", None)):
        if value:
            res = vps.fab("env-set", "--host", HOST, "--stack", "escala", "DB_PASS", input=value)
            how = "added" if value == "wrong-pw" else "replaced"
            assert res.returncode == 0 and f"DB_PASS {how} in /etc/plantao/plantao.env" in res.stdout, res.stdout
        checked = vps.fab("env-check", "--host", HOST, "--json")
        said = [f["text"] for f in json.loads(checked.stdout)[f"{HOST}/plantao"]]
        assert said == ([f"must_match postgres:DB_PASS escala:DB_PASS: {found}"] if found else []), said
        assert checked.returncode == (11 if found else 0) and "pw" not in checked.stdout + checked.stderr
    assert host.run("stat -c '%a %U' /etc/plantao/plantao.env").stdout.split() == ["600", "root"], "its mode kept"
    # what systemd itself reads back from the file env-set wrote (quotes, $, # and a backslash)
    res = vps.ok("env-set", "--host", HOST, "--stack", "escala", "API_KEY", "--from-command",
                 f"printf %s {shlex.quote(ODD)}")
    assert "not-a-comment" not in res.stdout + res.stderr
    read = host.run("systemd-run --quiet --wait --pipe -p EnvironmentFile=/etc/plantao/plantao.env printenv API_KEY")
    assert read.stdout == ODD + "\n", read.stdout + read.stderr
    spans = vps.fab("env-set", "--host", HOST, "--stack", "escala", "API_KEY", input="two\nlines\n")
    assert spans.returncode == errors.BAD_INPUT and "give it on one line" in spans.stderr
    host.run(": > /etc/plantao/plantao.env")
    # the seed's way: the binary copied by hand to /opt/plantao, the unit started by hand
    (host.root / "v0").write_bytes(builds["v0"].read_bytes())
    host.run("install -D -m 755 /root/v0 /opt/plantao/escala-plantao && systemctl start plantao")
    proc.wait_for("v0", lambda: host.http(8080, "/version") == "v0", 10)

    res = vps.ok("deploy", "--host", HOST, "--tag", "v1", "--artifact", str(builds["v1"]))
    assert "uploaded" in res.stdout and host.http(8080, "/version") == "v1"
    adopted = f"/opt/plantao/releases/adopted-{sha(builds['v0'])[:12]}/escala-plantao"
    assert host.run(f"sha256sum < {adopted}").stdout.split()[0] == sha(builds["v0"]), "the hand-placed binary is kept"
    assert host.run("readlink /opt/plantao/escala-plantao").stdout.strip() == "/opt/plantao/releases/v1/escala-plantao"
    assert host.run("stat -c '%U:%G %a' /opt/plantao/releases/v1/escala-plantao").stdout.strip() == "opc:opc 755"
    assert host.run("ps -o user= -C escala-plantao").stdout.split() == ["opc"], "run by the unit, as its User="

    vps.ok("deploy", "--host", HOST, "--tag", "v2", "--artifact", str(builds["v2"]))
    assert host.http(8080, "/version") == "v2"
    status = vps.ok("status", "--host", HOST).stdout
    assert "unit plantao.service (escala): active (running)" in status and "releases/v2/escala-plantao" in status
    logs = vps.ok("logs", "--host", HOST, "--stack", "escala", "--tail", "20", "--since", "1h").stdout
    assert "sd1/plantao/escala " in logs and "Started plantao.service" in logs, logs   # (its journal)

    res = vps.fab("deploy", "--host", HOST, "--tag", "v3", "--artifact", str(builds["v3"]))
    assert res.returncode == errors.ROLLED_BACK, res.stdout + res.stderr
    assert "plantao.service is activating (auto-restart" in res.stdout and "v2 is back and healthy" in res.stderr
    assert host.http(8080, "/version") == "v2" and host.systemctl("is-active", "plantao").stdout.strip() == "active"

    vps.ok("rollback", "--host", HOST, "--to", "v1")
    assert host.http(8080, "/version") == "v1"
    releases = json.loads(vps.ok("releases", "--host", HOST, "--json").stdout)["plantao"]
    assert releases[0]["images"]["escala"] == f"v1@sha256:{sha(builds['v1'])}" and releases[0]["running"]
    kept = sorted(host.run("ls /opt/plantao/releases").stdout.split())
    assert kept == ["v1", "v2"], "keep: 2 good ones first (v3 never passed its gate; the adopted is not a release)"

    res = vps.ok("deploy", "--host", HOST, "--tag", "v2", "--artifact", str(builds["v2"]))
    assert "already on the host, not sent again" in res.stdout and host.http(8080, "/version") == "v2"
    vps.ok("deploy", "--host", HOST)   # keeps the binary: pruning must still keep v1, a good rollback target
    vps.ok("rollback", "--host", HOST, "--to", "v1")
    assert host.http(8080, "/version") == "v1"


def test_the_database_beside_the_binary_is_backed_up_drilled_and_restored_with_the_unit_stopped(plantao, builds):
    vps = plantao
    vps.ok("setup", "--host", HOST)
    vps.ok("deploy", "--host", HOST, "--tag", "v1", "--artifact", str(builds["v1"]))
    psql(vps, "openlabs_postgres", "admin", "escala_db",
         "CREATE TABLE plantoes (id int); INSERT INTO plantoes SELECT generate_series(1, 30)")
    vps.ok("backup", "--host", HOST)
    drill = json.loads(vps.ok("restore", "--host", HOST, "--from", "latest", "--json").stdout)
    assert drill["databases"][0]["rows"] == 30 and drill["databases"][0]["database"] == "escala_db"
    psql(vps, "openlabs_postgres", "admin", "escala_db", "DELETE FROM plantoes")
    started = vps.host.systemctl("show", "-p", "ActiveEnterTimestampMonotonic", "--value", "plantao").stdout
    vps.ok("restore", "--host", HOST, "--from", drill["backup"], "--live", "--yes")
    assert psql(vps, "openlabs_postgres", "admin", "escala_db", "SELECT count(*) FROM plantoes") == "30"
    assert vps.host.systemctl("show", "-p", "ActiveEnterTimestampMonotonic", "--value", "plantao").stdout != started, \
        "the unit (the database's client) was stopped for the restore and started again"
    assert vps.host.http(8080, "/version") == "v1"


def test_a_binary_stack_needs_its_unit_and_a_tag_for_its_artifact(plantao, builds):
    vps = plantao
    res = vps.fab("deploy", "--host", HOST, "--artifact", str(builds["v1"]))
    assert res.returncode == errors.BAD_INPUT and "needs the tag of this build" in res.stderr
    res = vps.fab("deploy", "--host", HOST, "--tag", "v1", "--artifact", "/nonexistent/escala")
    assert res.returncode == errors.BAD_INPUT and "no such file" in res.stderr
    res = vps.fab("deploy", "--host", HOST, "--tag", "v1", "--artifact", str(builds["v1"]))   # no setup: no unit
    assert res.returncode == errors.BAD_INPUT, res.stdout + res.stderr
    assert "systemd unit plantao.service is not installed: 'fab setup' installs it" in res.stderr
    assert vps.host.run("test -e /opt/plantao", check=False).returncode != 0, "nothing was installed"


def as_user(vps, user: str) -> None:
    """The host reached as ``user`` with ``sudo: true`` (root's login is not used)."""
    inv = yaml.safe_load(vps.inventory.read_text())
    inv["hosts"][HOST].update(user=user, sudo=True)
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))


def test_seed_003_as_its_operators_run_it_logged_in_as_opc_with_sudo(plantao, builds):
    """Issue 21: Oracle Linux's opc, every command through sudo: setup, deploys with the binary uploaded
    through root's sftp-server, a rollback and a backup, each file owned and moded as when root logs in."""
    vps, host = plantao, plantao.host
    as_user(vps, "opc")
    vps.ok("setup", "--host", HOST)
    assert host.run("stat -c '%a %U' /etc/plantao/plantao.env").stdout.split() == ["600", "root"]
    vps.ok("deploy", "--host", HOST, "--tag", "v1", "--artifact", str(builds["v1"]))
    vps.ok("deploy", "--host", HOST, "--tag", "v2", "--artifact", str(builds["v2"]))
    assert host.http(8080, "/version") == "v2"
    assert host.run("stat -c '%U:%G %a' /opt/plantao/releases/v2/escala-plantao").stdout.strip() == "opc:opc 755"
    artifacts = "/root/plantao/state/artifacts"
    assert host.run(f"stat -c '%U %a' {artifacts} {artifacts}/{sha(builds['v2'])}").stdout.split() == \
        ["root", "700", "root", "644"], "uploaded as root (sftp-server's umask, as when root logs in), not as opc"
    vps.ok("rollback", "--host", HOST, "--to", "v1")
    assert host.http(8080, "/version") == "v1"
    vps.ok("backup", "--host", HOST)
    logins = host.run("journalctl -q --no-pager -t sudo | grep -c 'USER=root ; COMMAND='", check=False).stdout
    assert int(logins.strip() or 0) >= 5, "every program ran through sudo"


def test_a_sudo_that_asks_for_a_password_is_refused_before_anything_changes(plantao, builds):
    vps, host = plantao, plantao.host
    as_user(vps, "asker")
    for args in (("setup",), ("deploy", "--tag", "v1", "--artifact", str(builds["v1"]))):
        res = vps.fab(*args, "--host", HOST)
        assert res.returncode == errors.BAD_INPUT, res.stdout + res.stderr
        assert "add the line 'asker ALL=(root) NOPASSWD: ALL' to /etc/sudoers.d/fab" in res.stderr
    assert host.run("test -e /opt/plantao || test -e /etc/plantao", check=False).returncode != 0, "nothing changed"


def test_seed_003_lost_comes_back_on_a_new_host_with_its_binaries_environment_and_rows(plantao, builds, vault,
                                                                                         tmp_path):
    """Issue 22, seed 003: Plantão on sd1 copied to a REST repository on t2 (v1 running, v2 kept, the unit's
    environment written on the VPS, 30 rows); sd1 destroyed (a new container: /opt and /etc gone with /root);
    a drill onto it under a new name leaves nothing of the system; the recovery brings the unit back running
    v1 by its sha256, its environment file as it was (root's only), the rows, and v2 for a rollback."""
    vps, host = plantao, plantao.host
    host.route_to_others()
    fresh_rest(vault)
    inv = yaml.safe_load(vps.inventory.read_text())
    inv["systems"]["plantao"]["backup"]["offsite"] = [f"rest:http://{vault.address}:{REST_PORT}/plantao"]
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    vps.ok("setup", "--host", HOST)
    environment = "DB_PASS=plantao-sandbox-pw\nTZ=America/Sao_Paulo\n"
    host.run(f"printf '{environment}' > /etc/plantao/plantao.env")
    vps.ok("deploy", "--host", HOST, "--tag", "v2", "--artifact", str(builds["v2"]))
    vps.ok("deploy", "--host", HOST, "--tag", "v1", "--artifact", str(builds["v1"]))
    psql(vps, "openlabs_postgres", "admin", "escala_db",
         "CREATE TABLE plantoes (id int); INSERT INTO plantoes SELECT generate_series(1, 30)")
    vps.ok("backup", "--host", HOST)
    key = tmp_path / "plantao.restic-key"
    vps.ok("backup-key", "--host", HOST, "--save", str(key))
    inv["hosts"]["sd-new"] = inv["hosts"][HOST]
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))

    host.reset()   # the server is gone
    shutil.copytree(examples.EXAMPLES / "plantao/repo", host.root / "plantao/repo", symlinks=True)   # (git clone)
    gone = "ls -A /opt/plantao /etc/plantao /etc/systemd/system/plantao.service 2>/dev/null; true"
    drill = vps.fab("recover", "--host", "sd-new", "--from", HOST, "--key", str(key), "--drill", timeout=600)
    assert drill.returncode == 0 and "recovered (drill), running v1" in drill.stdout, drill.stdout + drill.stderr
    assert host.run(gone).stdout.strip() == "" and host.docker("ps", "-aq").stdout == ""
    assert host.systemctl("is-enabled", "plantao").stdout.strip() != "enabled"
    res = vps.fab("recover", "--host", "sd-new", "--from", HOST, "--key", str(key), timeout=600)
    assert res.returncode == 0 and "recovered, running v1 by its recorded digests" in res.stdout, res.stdout + res.stderr
    assert host.http(8080, "/version") == "v1"
    assert host.run("readlink /opt/plantao/escala-plantao").stdout.strip() == "/opt/plantao/releases/v1/escala-plantao"
    assert host.run("cat /etc/plantao/plantao.env").stdout == environment
    assert host.run("stat -c '%a %U' /etc/plantao/plantao.env").stdout.split() == ["600", "root"]
    assert psql(vps, "openlabs_postgres", "admin", "escala_db", "SELECT count(*) FROM plantoes") == "30"
    assert key.read_text().strip() not in host.commands_log.read_text() + res.stdout + res.stderr
    vps.ok("rollback", "--host", "sd-new", "--to", "v2")   # the kept release came back too
    assert host.http(8080, "/version") == "v2"
