"""fab recover's input, checked on the operator's machine before any host is reached (unit tier: the hosts of
this inventory do not exist, so a check that came after connecting would time out or fail otherwise): each
hostile value exits 2 with its reason, and the key's value is never repeated."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMMAND = Path(sys.executable).parent / "fab-vps"
KEY = "c2VjcmV0IGtleSBvZiAzMiBieXRlcyBleGFjdGx5IQ=="


@pytest.fixture
def folder(tmp_path):
    """The EMS example with copies off the VPS, its lost server vps1 and a new host vps2 (neither reachable)."""
    inv = yaml.safe_load((REPO / "examples/ems/hosts.yml").read_text())
    inv["systems"]["ems_system"]["backup"]["offsite"] = ["sftp:backup@203.0.113.50:/srv/ems"]
    inv["registry"] = {"server": "ghcr.io", "username": "edumigsoft"}
    inv["systems"]["plain"] = {"stacks": {"web": {"compose": "repo/web.yml"}}}
    inv["hosts"]["vps2"] = {"address": "203.0.113.11", "systems": ["ems_system"]}
    inv["hosts"]["vps3"] = {"address": "203.0.113.12", "systems": ["plain"]}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inv, sort_keys=False))
    (tmp_path / "ems_system.restic-key").write_text(KEY + "\n")
    return tmp_path


def recover(folder: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(COMMAND), "recover", *args], cwd=folder, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, said", [
    ((), "--from OLD --host NEW"),
    (("--host", "vps2"), "--from OLD --host NEW"),
    (("--from", "vps1"), "--from OLD --host NEW"),
    (("--host", "vps2", "--from", "vps9"), "unknown host 'vps9'"),
    (("--host", "vps9", "--from", "vps1"), "unknown host 'vps9'"),
    (("--host", "vps1", "--from", "vps1"), "--from and --host both name vps1"),
    (("--host", "vps2", "--from", "vps3"), "no system it ran has backup: {offsite"),
    (("--host", "vps2", "--from", "vps1", "--system", "nope"), "runs no system 'nope'"),
    (("--host", "vps2", "--from", "vps1", "--snapshot", "latest;reboot"), "--snapshot ID"),
    (("--host", "vps2", "--from", "vps1", "--snapshot", "ABCDEF12"), "--snapshot ID"),
    (("--host", "vps2", "--from", "vps1", "--snapshot", "abc"), "--snapshot ID"),
    (("--host", "vps2", "--from", "vps1", "--key", "missing.key"), "--key missing.key: cannot read it"),
    (("--host", "vps2", "--from", "vps1", "--key", "."), "--key .: cannot read it"),
    (("--host", "vps2", "--from", "vps1", "--key", "hosts.yml"), "does not hold a restic key this tool made"),
    (("--host", "vps2", "--from", "vps1", "--token-env", "NO_SUCH_VAR"), "NO_SUCH_VAR is not set"),
    (("--host", "vps2", "--from", "vps1", "--token-command", "false"), "the command giving the new token failed"),
    (("--host", "vps2", "--from", "vps1", "--token-env", "T", "--token-stdin"), "give one source of the new token"),
])
def test_bad_input_exits_2_before_any_host_is_reached(folder, args, said):
    res = recover(folder, *args, env={"T": "ghp_" + "a" * 36})
    assert res.returncode == 2 and said in res.stderr, res.stdout + res.stderr
    assert res.stdout == "" and KEY not in res.stderr


@pytest.mark.parametrize("value", ["$(reboot)\n", KEY + "\n" + KEY + "\n", "\x00\xff" * 20, "", "key with spaces\n"])
def test_a_key_file_that_holds_no_key_is_refused_without_its_text(folder, value):
    (folder / "k").write_bytes(value.encode("latin-1"))
    res = recover(folder, "--host", "vps2", "--from", "vps1", "--key", "k")
    assert res.returncode == 2 and "--key k:" in res.stderr, res.stderr
    assert "reboot" not in res.stderr and "spaces" not in res.stderr


@pytest.mark.parametrize("token", ["zq9 has space", "zq9\nline", "zq9" * 100, "zq9quote'd"])
def test_a_token_that_is_no_token_is_refused_without_its_text(folder, token):
    res = recover(folder, "--host", "vps2", "--from", "vps1", "--token-env", "T", env={"T": token})
    assert res.returncode == 2 and "the new token is not a token" in res.stderr, res.stderr
    assert "zq9" not in res.stderr
