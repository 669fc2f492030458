"""fab doctor's judgements (programs/doctor.py) of the facts a host reported: each check's OK, WARN or FAIL and
its fix, from captured docker answers. Unit tier."""
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tasks.core import inventory
from tasks.core.errors import ToolError
from tasks.core.programs.doctor import doctor_program, findings
from tasks.core.programs.finding import worst
from tasks.core.programs.protocol import Result

from .test_inventory import GOOD, write

NOW = 1_800_000_000
TRAEFIK = {"services": {"traefik": {"image": "traefik:v3.7", "ports": [
    {"mode": "ingress", "target": 80, "published": "80", "protocol": "tcp"},
    {"mode": "ingress", "host_ip": "0.0.0.0", "target": 443, "published": "443", "protocol": "tcp"}]}},
    "networks": {"ems_net": {"name": "ems_net", "external": True}}}
POSTGRES = {"services": {"postgres": {"image": "postgres:15-alpine", "ports": [
    {"target": 5432, "published": "5432"}, {"host_ip": "127.0.0.1", "target": 9187, "published": "9187"}]},
    "adminer": {"image": "adminer"}}}


@pytest.fixture
def target(tmp_path):
    return inventory.load(write(tmp_path, GOOD)).host("vps1").targets()[0]


def facts(**over) -> Result:
    data = {"versions": [{"engine": "27.5.1", "compose": "2.32.4"}],
            "fs": [{"path": "/", "size": str(100 << 30), "avail": str(40 << 30), "files": "1000", "ffree": "900"}],
            "networks": [{"names": "bridge ems_net"}],
            "compose": [{"stack": "infra", "config": json.dumps(TRAEFIK)}],
            "clock": [{"epoch": str(NOW)}]}
    data.update(over)
    return Result(data=data)


def levels(found, check):
    return [(f.level, f.text) for f in found if f.check == check]


def test_a_healthy_host_is_all_ok(target):
    found = findings(target, facts(), NOW)
    assert worst(found) == "ok", [f for f in found if f.level != "ok"]
    assert levels(found, "ports") == [("ok", "infra/traefik publishes 80 on every address (web)"),
                                      ("ok", "infra/traefik publishes 443 on every address (web)")]


def test_no_dockerd_and_no_compose_fail_with_the_fix(target):
    found = findings(target, facts(versions=[{"engine": "", "compose": ""}]), NOW)
    assert [(f.level, f.fix) for f in found if f.check in ("docker", "compose")] == [
        ("fail", "systemctl start docker (or fab bootstrap)"), ("fail", "fab bootstrap --host HOST")]


@pytest.mark.parametrize("avail, ffree, level", [(40, 900, "ok"), (10, 900, "warn"), (4, 900, "fail"),
                                                 (40, 100, "warn"), (40, 10, "fail")])
def test_disk_space_and_inodes(target, avail, ffree, level):
    fs = [{"path": "/var/lib/docker", "size": str(100 << 30), "avail": str(avail << 30), "files": "1000",
           "ffree": str(ffree)}]
    found = findings(target, facts(fs=fs), NOW)
    assert worst([f for f in found if f.check == "disk"]) == level
    if level != "ok":
        assert any(f.fix == "fab prune --host vps1" for f in found if f.check == "disk")


def test_a_missing_external_network_is_seed_000s_network_not_found(target):
    found = findings(target, facts(networks=[{"names": "bridge"}]), NOW)
    assert levels(found, "networks") == [("fail", "external network ems_net is missing (compose: network ems_net "
                                                  "declared as external, but could not be found)")]


def test_a_database_port_on_every_address_and_an_unpinned_image_are_warnings(target):
    found = findings(target, facts(compose=[{"stack": "postgres", "config": json.dumps(POSTGRES)}]), NOW)
    assert levels(found, "ports") == [("warn", "postgres/postgres publishes 5432 on every address")]
    assert levels(found, "images") == [("warn", "postgres/adminer runs adminer: pinned by nothing")]


def test_placeholders_a_stale_lock_a_compose_error_and_the_clock(target):
    found = findings(target, facts(placeholder=[{"path": "/root/s/repo/ems/.env", "key": "DB_PASSWORD"}],
                                   lock=[{"holder": "ana@laptop", "stale": "1", "gone": "its process is gone",
                                          "interrupted": ""}],
                                   stack_error=[{"stack": "sms", "text": "service sms: bad port"}],
                                   clock=[{"epoch": str(NOW + 90)}]), NOW)
    assert levels(found, ".env")[0][0] == "fail" and "DB_PASSWORD" in levels(found, ".env")[0][1]
    assert levels(found, "lock") == [("warn", "a stale deploy lock: ana@laptop (its process is gone)")]
    assert levels(found, "compose files")[0][0] == "fail"
    assert levels(found, "clock") == [("fail", "the host's clock is 90 s ahead")]
    assert worst(found) == "fail"


def test_a_report_the_tool_cannot_read_is_a_clear_error(target):
    with pytest.raises(ToolError, match="cannot read"):
        findings(target, facts(clock=[{"epoch": "soon"}]), NOW)


def test_the_token_file_missing_fails_and_a_wide_mode_warns(target):
    assert levels(findings(target, facts(token=[{"path": "/root/s/.secrets/github", "missing": "1"}]), NOW),
                  "token")[0][0] == "fail"
    assert levels(findings(target, facts(token=[{"path": "/root/s/.secrets/github", "mode": "644"}]), NOW),
                  "token") == [("warn", "the token file /root/s/.secrets/github has mode 644")]


def manifest(created: str, verified: str = "yes") -> dict:
    return {"name": f"infra-{created.replace('-', '').replace(':', '')}", "stack": "infra", "created": created,
            "taken": "backup", "release": "", "verified": verified, "databases": ["db"]}


@pytest.mark.parametrize("made, level, said", [
    ([], "warn", "newest verified backup of infra: none yet (limit 48 h)"),
    ([manifest("2027-01-15T06:00:00Z")], "ok", "newest verified backup of infra: 2 h old"),
    ([manifest("2027-01-12T08:00:00Z")], "warn", "newest verified backup of infra: 72 h old (limit 48 h)"),
    ([manifest("2027-01-15T07:00:00Z", verified=""), manifest("2027-01-12T08:00:00Z")], "warn", "72 h old"),
])
def test_the_newest_verified_backup_of_each_series_and_its_age(tmp_path, made, level, said):
    text = GOOD.replace("infra: {compose:", "infra: {database: {service: db}, compose:")
    target = inventory.load(write(tmp_path, text)).host("vps1").targets()[0]
    now = NOW   # 2027-01-15T08:00:00Z
    found = findings(target, facts(manifest=made, clock=[{"epoch": str(now)}]), now)
    assert [(f.level, f.text) for f in found if f.check == "backups"][0][0] == level
    assert said in [f.text for f in found if f.check == "backups"][0]


def test_a_units_environment_file_missing_or_setting_nothing_fails(target):
    found = findings(target, facts(unitenv=[
        {"unit": "plantao.service", "path": "/etc/plantao/plantao.env", "result": "empty"},
        {"unit": "plantao.service", "path": "/etc/plantao/more.env", "result": "missing"},
        {"unit": "plantao.service", "path": "/etc/plantao/ok.env", "result": "set"}]), NOW)
    assert levels(found, "unit env") == [
        ("fail", "plantao.service reads /etc/plantao/plantao.env, which sets nothing"),
        ("fail", "plantao.service reads /etc/plantao/more.env, which does not exist: it cannot start"),
        ("ok", "plantao.service reads /etc/plantao/ok.env")]


def test_a_client_refused_by_its_postgresql_is_named_with_the_old_volume_reason(target):
    refused = {"stack": "postgres", "client": "ems", "path": "/root/s/ems/.env", "user": "ems_user",
               "database": "db_ems", "result": "refused",
               "text": 'FATAL:  password authentication failed for user "ems_user"'}
    found = findings(target, facts(dblogin=[refused, {**refused, "client": "sms", "result": "ok", "text": ""},
                                            {"stack": "pg2", "result": "down"}]), NOW)
    logins = [f for f in found if f.check == "database"]
    assert logins[0].level == "fail" and "the volume was made with another password" in logins[0].text
    assert logins[0].fix.startswith("set the password the volume has in /root/s/ems/.env")
    assert (logins[1].level, logins[1].text) == ("ok", "sms logs in to postgres as ems_user (database db_ems)")
    assert (logins[2].level, logins[2].text) == ("fail", "stack pg2: PostgreSQL is not running")


def test_a_newer_postgresql_on_an_older_volume_fails_and_says_how_to_go_back(target):
    found = findings(target, facts(dbversion=[
        {"stack": "postgres", "state": "restarting", "image": "16", "volume": "15"},
        {"stack": "pg2", "state": "running", "image": "15", "volume": "15"},
        {"stack": "pg3", "state": "running", "image": "", "volume": "15"},
        {"stack": "pg4", "state": "created", "image": "15", "volume": ""}], dblogin=[
        {"stack": "postgres", "result": "down"},   # (restarting: the version says why; not said twice)
        {"stack": "pg2", "client": "ems", "path": "/root/s/ems/.env", "user": "ems", "database": "db", "result": "ok"}]),
        NOW)
    db = [f for f in found if f.check == "database"]
    assert [(f.level, f.text.split(":")[0]) for f in db] == [("fail", "stack postgres"), ("ok", "stack pg2"),
                                                             ("ok", "ems logs in to pg2 as ems (database db)")]
    assert "made by PostgreSQL 15 (the container is restarting): database files are incompatible" in db[0].text
    assert db[0].fix.startswith("name postgres:15 in its compose file again and deploy")
    assert db[1].text == "stack pg2: PostgreSQL 15 on data made by 15"


def certificate(names: list[str], days_left: float, issuer: str = "Pebble Intermediate CA 1a2b", cn: str = "") -> str:
    """A PEM certificate for ``names`` expiring ``days_left`` days after NOW (self-signed: only read here)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.fromtimestamp(NOW, timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(days=30)).not_valid_after(now + timedelta(days=days_left)))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode().strip()


@pytest.mark.parametrize("names, days, cn, level, said", [
    (["api.ems.example"], 80, "", "ok", "api.ems.example: valid for 80 more days"),
    (["*.ems.example"], 80, "", "ok", "api.ems.example: valid for 80 more days"),
    (["api.ems.example"], 9, "", "warn", "api.ems.example: the certificate expires in 9 days"),
    (["api.ems.example"], -2, "", "fail", "api.ems.example: the certificate expired on"),
    ([], 365, "TRAEFIK DEFAULT CERT", "fail", "covers TRAEFIK DEFAULT CERT, not api.ems.example: no certificate was "
                                              "issued for it (Traefik serves its default)"),
    (["*.example"], 80, "", "fail", "covers *.example, not api.ems.example"),
    (["ems.example"], 80, "", "fail", "covers ems.example, not api.ems.example"),
])
def test_the_certificate_traefik_serves_for_a_name(target, names, days, cn, level, said):
    found = levels(findings(target, facts(cert=[{"source": "traefik", "name": "api.ems.example",
                                                 "pem": certificate(names, days, cn=cn)}]), NOW), "tls")
    assert len(found) == 1 and found[0][0] == level and said in found[0][1], found


def test_a_certs_folders_files_are_judged_by_expiry_and_nothing_answering_on_443_fails(target):
    found = findings(target, facts(cert=[
        {"source": "/opt/plantao/certs", "name": "plantao.example", "pem": certificate(["plantao.example"], 5)},
        {"source": "/opt/plantao/certs", "name": "acme_account+key", "pem": ""},
        {"source": "traefik", "name": "sms.example", "pem": ""},
        {"source": "traefik", "name": "bad.example", "pem": "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----"}]),
        NOW)
    tls = [f for f in found if f.check == "tls"]
    assert [(f.level, f.text.split(":")[0]) for f in tls] == [
        ("warn", "/opt/plantao/certs/plantao.example"), ("fail", "sms.example"), ("fail", "bad.example")]
    assert "journalctl" in tls[0].fix and "nothing answers TLS" in tls[1].text


@pytest.mark.parametrize("api, level, said", [
    ({"status": "200", "expiry": "2027-02-01 00:00:00 UTC", "scopes": "read:packages", "has_scopes": "1"}, "ok",
     "GitHub: the token expires 2027-02-01"),
    ({"status": "200", "expiry": "", "scopes": "read:packages, repo", "has_scopes": "1"}, "ok", "no expiry"),
    ({"status": "200", "expiry": "2027-01-25 00:00:00 UTC", "scopes": "read:packages", "has_scopes": "1"}, "warn",
     "expires in 9 days"),
    ({"status": "200", "expiry": "2027-01-10 00:00:00 UTC", "scopes": "read:packages", "has_scopes": "1"}, "fail",
     "expired 6 days ago"),
    ({"status": "200", "expiry": "", "scopes": "repo", "has_scopes": "1"}, "fail", "lack read:packages"),
    ({"status": "401", "expiry": "", "scopes": "", "has_scopes": "0"}, "fail", "answered 401"),
    ({"unreachable": "1"}, "warn", "did not answer from the host"),
])
def test_the_tokens_expiry_as_github_says_it(target, api, level, said):
    jan16 = datetime(2027, 1, 16, tzinfo=timezone.utc).timestamp()
    found = findings(target, facts(token=[{"path": "/root/s/.secrets/github", "mode": "600"}], api=[api],
                                   clock=[{"epoch": str(int(jan16))}]), jan16)
    token = [(f.level, f.text, f.fix) for f in found if f.check == "token"]
    assert token[0][:2] == ("ok", "the token file is there, mode 600")
    assert len(token) == 2 and token[1][0] == level and said in token[1][1], token
    assert level == "ok" or token[1][2].startswith("fab ")


def test_a_swarm_system_s_database_and_its_backups_are_checked_on_the_node_that_runs_it():
    """On a manager that does not run it: its program holds no database check and no backup series (no false
    "PostgreSQL is not running" or "no backup"), and the finding says where it is checked."""
    target = inventory.load(Path(__file__).parents[2] / "examples/enlevohub/swarm.yml").host("sw1").targets()[0]
    program = doctor_program(target, "", [])
    assert "run add_database" not in program.text and "run backups_report" not in program.text
    found = findings(target, facts(), NOW, [], {"app": "sw3"})
    assert levels(found, "database") == [("ok", "stack app: its database runs on sw3 (a swarm task): checked "
                                                 "there, with its backups")]
    assert levels(found, "backups") == []
    here = doctor_program(target, "", target.system.databases).text
    assert "run add_database app enlevohub-app postgres '' '' swarm" in here and "run backups_report app" in here
