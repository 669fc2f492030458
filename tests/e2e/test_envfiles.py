"""End-to-end (real tier): fab env-set and fab env-check on the sandbox VPS: a value with quotes, $, # and a line
break set from stdin and from a command reaches compose exactly (Compose v2 reads the .env back), is in no
process's arguments on the host and in no output, and the operator's mode of the .env stays; env-check names a
placeholder and a must_match that differs without showing a value."""
from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tasks.core import errors

from .conftest import FAB, REPO

pytestmark = pytest.mark.e2e

VALUE = "it's \"quoted\" $HOME #not-a-comment\nsecond line \\ end"
ENV = "ems_system/repo/servers/ems/container/.env"


def read_back(vps, key: str) -> str:
    """What compose itself reads from the ems stack's .env for ``key``."""
    probe = vps.host.root / "probe.yml"
    probe.write_text(f"services:\n  x:\n    image: busybox\n    environment:\n      V: ${{{key}}}\n")
    out = vps.host.inside(f"docker compose --env-file /root/{ENV} -f /root/probe.yml config --format json").stdout
    return json.loads(out)["services"]["x"]["environment"]["V"].replace("$$", "$")


def test_env_set_writes_a_value_compose_reads_back_exactly_and_shows_it_nowhere(vps):
    env = vps.host.root / ENV
    env.chmod(0o640)
    res = subprocess.run([FAB, "env-set", "--host", "t1", "--stack", "ems", "API_SECRET"], cwd=REPO, env=vps.env(),
                         input=VALUE + "\n", capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "API_SECRET added in" in res.stdout, res.stdout + res.stderr
    assert read_back(vps, "API_SECRET") == VALUE
    assert oct(env.stat().st_mode & 0o777) == "0o640"
    other = vps.fab("env-set", "--host", "t1", "--stack", "ems", "API_SECRET", "--from-command", "printf 'n3w-v4lue'")
    assert other.returncode == 0 and "API_SECRET replaced in" in other.stdout and read_back(vps, "API_SECRET") == "n3w-v4lue"
    logged = vps.host.commands_log.read_text()
    for secret in ("not-a-comment", "n3w-v4lue"):
        assert secret not in logged and secret not in res.stdout + res.stderr + other.stdout + other.stderr
    before = env.read_bytes()
    refused = vps.fab("env-set", "--host", "t1", "--stack", "ems", "IMAGE_TAG", "--from-command", "echo v9")
    assert refused.returncode == errors.BAD_INPUT and "the tool's own line" in refused.stderr and env.read_bytes() == before


def test_env_check_names_a_placeholder_and_a_must_match_that_differs_without_a_value(vps):
    inv = yaml.safe_load(vps.inventory.read_text())
    inv["systems"]["ems_system"]["must_match"] = [["ems:JWT_KEY", "sms:JWT_KEY"]]
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    assert vps.fab("env-check", "--host", "t1").returncode == 11
    sms = vps.host.root / "ems_system/repo/servers/sms/container/.env"
    sms.write_text(sms.read_text().replace("JWT_KEY=sandbox-sms", "JWT_KEY=change-me"))
    res = vps.fab("env-check", "--host", "t1", "--json")
    found = [(f["level"], f["text"]) for f in json.loads(res.stdout)["t1/ems_system"]]
    assert res.returncode == errors.FOUND_BROKEN and found == [
        ("fail", "stack sms: JWT_KEY still holds its template's placeholder"),
        ("fail", "must_match ems:JWT_KEY sms:JWT_KEY: sms:JWT_KEY differs from ems:JWT_KEY")], found
    assert "sandbox-ems" not in res.stdout + res.stderr and "change-me" not in res.stdout
    sms.write_text(sms.read_text().replace("JWT_KEY=change-me", "JWT_KEY=sandbox-ems"))
    assert vps.ok("env-check", "--host", "t1").stdout.strip().endswith("OK")
