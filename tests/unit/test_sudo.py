"""A host reached as a user with sudo (seed 003's opc on Oracle Linux, where root cannot log in): every program
runs as root through `sudo -n bash -s` on the same single SSH command, and a sudo that would ask for a password,
or is missing, is an exit-2 error with what to do. Fast tier: the SSH connection is a recording stand-in."""
from types import SimpleNamespace

import pytest

from tasks.core import model, ssh
from tasks.core.errors import BAD_INPUT, ToolError

REGISTRY = model.Registry("ghcr.io", "u", False, None)


def session(sudo: bool, exited: int = 0, out: str = "", err: str = ""):
    """A Session whose connection records the command and answers with ``out``, ``err`` and ``exited``."""
    host = model.Host("p1", "10.0.0.1", (), REGISTRY, "opc" if sudo else "root", 22, "/root", None, None, (), sudo)
    ran = []

    def run(command, in_stream, out_stream, err_stream, **kw):
        ran.append((command, in_stream.read()))
        out_stream.write(out)
        err_stream.write(err)
        return SimpleNamespace(exited=exited)

    s = ssh.Session.__new__(ssh.Session)
    s.host, s.conn = host, SimpleNamespace(run=run)
    return s, ran


def test_a_sudo_host_runs_each_program_as_root_through_sudo_on_one_command():
    s, ran = session(True, out="@@ok\n")
    assert s.stream("echo hi\n", lambda line: None) == (0, [])
    assert ran == [("sudo -n bash -s", "echo hi\n")], "the program still travels on stdin, never an argument"
    s, ran = session(False, out="@@ok\n")
    s.stream("echo hi\n", lambda line: None)
    assert ran[0][0] == "bash -s"


@pytest.mark.parametrize("exited, err, said", [
    (1, "sudo: a password is required\n", "add the line 'opc ALL=(root) NOPASSWD: ALL' to /etc/sudoers.d/fab"),
    (127, "bash: line 1: sudo: command not found\n", "sudo is not installed on the host"),
])
def test_a_sudo_that_asks_for_a_password_or_is_missing_is_exit_2_with_what_to_do(exited, err, said):
    s, _ = session(True, exited=exited, err=err)
    with pytest.raises(ToolError, match="nothing was changed") as e:
        s.stream("run deploy\n", lambda line: None)
    assert e.value.code == BAD_INPUT and said in str(e.value)


def test_a_program_that_ran_and_failed_is_not_taken_for_sudos_refusal():
    """Output on stdout means the program ran: its own failure is reported as it is, whatever stderr says."""
    s, _ = session(True, exited=1, out="@@step lock taking the deploy lock\n", err="sudo: a password is required\n")
    assert s.stream("run deploy\n", lambda line: None)[0] == 1


def test_the_dry_run_says_the_program_runs_through_sudo(tmp_path, capsys):
    """--dry-run prints the exact program and the command that would read it: `sudo -n bash -s` for opc."""
    from tasks.core import inventory
    from tasks.core.cli import print_program
    from tasks.core.programs.state import unlock_program
    (tmp_path / "hosts.yml").write_text(
        "registry: {server: ghcr.io, username: u}\nsystems:\n  s:\n    stacks:\n      db: {compose: repo/c.yml}\n"
        "hosts:\n  p1: {address: 10.0.0.1, user: opc, sudo: true, systems: [s]}\n")
    target = inventory.load(tmp_path / "hosts.yml").host("p1").targets()[0]
    print_program(target, unlock_program(target))
    assert "(opc@10.0.0.1:22): this program would run as `sudo -n bash -s`" in capsys.readouterr().out
