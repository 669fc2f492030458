"""Day two, end to end on the EMS example (seeds 000/001): fab logs of a stack, a service, followed until
Ctrl-C (the host's readers ended with it) and redacted like everything the tool prints; fab exec with its
words exact, stdin piped through, a terminal when fab has one and the command's exit code fab's own."""
from __future__ import annotations

import os
import pty
import signal
import subprocess
import time

import pytest

from sandbox import examples, proc

from .conftest import FAB, REPO, Vps

FAKE_TOKEN = "ghp_" + "L" * 36


@pytest.fixture(scope="module")
def ems(sandbox, tmp_path_factory) -> Vps:
    """The EMS example deployed once for this file's tests (each leaves it as it found it)."""
    vps = Vps(sandbox, *examples.ems(sandbox, tmp_path_factory.mktemp("ems")))
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


def test_exec_runs_a_command_in_a_container_exactly_as_typed(ems):
    vps, psql = ems, ("exec", "--host", "t1", "--stack", "postgres", "--")
    words = vps.fab(*psql, "printf", "%s|", "a b", "c;d", "$HOME", '"q"', "it's", "")
    assert words.returncode == 0 and words.stdout == 'a b|c;d|$HOME|"q"|it\'s||', words.stdout + words.stderr
    code = vps.fab(*psql, "sh", "-c", "echo to stderr >&2; exit 7")
    assert code.returncode == 7 and code.stderr == "to stderr\n", code.stderr
    piped = vps.fab(*psql, "psql", "-U", "ems_user", "-d", "db_ems", "-tA", input="SELECT 41 + 1;\n")
    assert piped.returncode == 0 and piped.stdout.strip() == "42", piped.stdout + piped.stderr
    assert vps.fab(*psql, "tty").stdout.strip() == "not a tty"


def test_exec_gives_the_command_a_terminal_when_fab_has_one(ems):
    out, code = on_a_terminal(ems, "exec", "--host", "t1", "--stack", "postgres", "--", "sh", "-c", "tty; exit 3")
    assert code == 3 and "/dev/pts/" in out, out


def on_a_terminal(vps: Vps, *args: str) -> tuple[str, int]:
    """fab run with a pseudo-terminal as its stdin, stdout and stderr: what it wrote there, and its exit code."""
    main, side = pty.openpty()
    run = subprocess.Popen([FAB, *args], cwd=REPO, env=vps.env(), stdin=side, stdout=side, stderr=side)
    os.close(side)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:   # (EIO: every end of the terminal closed)
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    return out.decode(errors="replace"), run.wait(timeout=60)
