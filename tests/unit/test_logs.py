"""fab logs' input, checked on the operator's machine before any host is reached (unit tier: the inventory's
hosts do not exist): each hostile value exits 2 with its reason and nothing is run."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tasks.core.programs.logs import log_line

REPO = Path(__file__).resolve().parents[2]
COMMAND = Path(sys.executable).parent / "fab-vps"


@pytest.fixture
def folder(tmp_path):
    """The EMS and Plantão examples on hosts that do not exist."""
    inv = yaml.safe_load((REPO / "examples/ems/hosts.yml").read_text())
    plantao = yaml.safe_load((REPO / "examples/plantao/hosts.yml").read_text())
    inv["systems"].update(plantao["systems"])
    inv["hosts"].update(plantao["hosts"])
    inv["registry"] = {"server": "ghcr.io", "username": "edumigsoft"}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inv, sort_keys=False))
    return tmp_path


@pytest.mark.parametrize("args, said", [
    (("--tail", "-1"), "--tail -1: a number of lines from 0 to 100000"),
    (("--tail", "many"), "--tail many"),
    (("--tail", "100001"), "--tail 100001"),
    (("--since", "10m;reboot"), "--since '10m;reboot': an age"),
    (("--since", "yesterday"), "--since 'yesterday'"),
    (("--since", "$(reboot)"), "an age (10m, 2h, 1d)"),
    (("--since", "2026-13-45"), "or a date"),
    (("--service", "ems"), "with --stack"),
    (("--stack", "ems", "--service", "ems;reboot"), "--service NAME: a compose service name"),
    (("--stack", "ems", "--service", "-v"), "--service NAME"),
    (("--stack", "nope"), "has no stack nope"),
])
def test_bad_input_exits_2_before_any_host_is_reached(folder, args, said):
    res = subprocess.run([str(COMMAND), "logs", "--host", "vps1", *args], cwd=folder, capture_output=True, text=True,
                         timeout=30, stdin=subprocess.DEVNULL, env=os.environ)
    assert res.returncode == 2 and said in res.stderr, res.stdout + res.stderr
    assert res.stdout == ""


def test_a_binary_has_no_services(folder):
    res = subprocess.run([str(COMMAND), "logs", "--host", "plantao1", "--stack", "escala", "--service", "x"],
                         cwd=folder, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert res.returncode == 2 and "escala is a binary under systemd" in res.stderr, res.stderr


@pytest.mark.parametrize("line, where", [
    ("ems\tems-1  | GET /", ("ems/ems-1", "GET /")),
    ("ems\tems_server_app  | up", ("ems/ems_server_app", "up")),
    ("ems\tno prefix here", ("ems", "no prefix here")),
    ("escala\t2026-12-05T14:31:00+0000 vps x[1]: a | b", ("escala", "2026-12-05T14:31:00+0000 vps x[1]: a | b")),
    ("a line without a stack", ("", "a line without a stack")),
])
def test_a_line_says_where_it_comes_from(line, where):
    assert log_line(line, {"escala"}) == where
