"""Day two, end to end on the EMS example (seeds 000/001): fab logs of a stack, a service, followed until
Ctrl-C (the host's readers ended with it) and redacted like everything the tool prints."""
from __future__ import annotations

import signal
import subprocess
import time

import pytest

from sandbox import examples, proc

from .conftest import Vps

FAKE_TOKEN = "ghp_" + "L" * 36


@pytest.fixture
def ems(sandbox, tmp_path) -> Vps:
    vps = Vps(sandbox, *examples.ems(sandbox, tmp_path))
    vps.ok("setup", "--host", "t1")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    return vps


def sql_error(vps, table: str) -> None:
    """A statement PostgreSQL logs as an ERROR naming ``table``."""
    vps.host.docker("exec", "postgres_shared_db", "psql", "-U", "ems_user", "-d", "db_ems", "-qc",
                    f'SELECT * FROM "{table}"', check=False)


def readers_left() -> str:
    return subprocess.run(["pgrep", "-af", "compose -p postgres .*logs"], capture_output=True, text=True).stdout


def test_logs_of_a_stack_and_a_service_followed_until_ctrl_c_and_redacted(ems):
    vps = ems
    sql_error(vps, FAKE_TOKEN)
    out = vps.ok("logs", "--host", "t1", "--stack", "postgres", "--tail", "50").stdout
    assert "t1/ems_system/postgres/" in out and "database system is ready to accept connections" in out, out
    assert FAKE_TOKEN not in out and 'relation "***" does not exist' in out, "redacted like all output"
    one = vps.ok("logs", "--host", "t1", "--stack", "postgres", "--service", "postgres", "--tail", "3").stdout
    assert 0 < len(one.splitlines()) <= 3, one
    recent = vps.ok("logs", "--host", "t1", "--stack", "postgres", "--since", "1d").stdout
    assert "ready to accept connections" in recent

    follower = vps.spawn("logs", "--host", "t1", "--stack", "postgres", "-f", "--tail", "0")
    time.sleep(4)
    sql_error(vps, "followed_table")
    proc.wait_for("the followed line", lambda: readers_left() != "", 10)
    time.sleep(3)
    follower.send_signal(signal.SIGINT)
    out, _ = follower.communicate(timeout=30)
    assert follower.returncode == 0 and 'relation "followed_table" does not exist' in out, out
    proc.wait_for("the host's readers to end", lambda: readers_left() == "", 10)
