"""fab exec's, fab prune's and deploy --refresh's input, checked on the operator's machine before any host is reached (unit tier: the inventory's
hosts do not exist): each hostile value exits 2 with its reason, and the words after -- belong to exec alone
(Fabric would run them on each -H address with a plain shell)."""
import os
import subprocess

import pytest

from tasks.core.errors import ToolError
from tasks.exec import command_words

from .test_logs import COMMAND, folder  # noqa: F401  (the EMS and Plantão examples on hosts that do not exist)


@pytest.mark.parametrize("args, said", [
    (("exec", "--host", "vps1", "--stack", "ems"), "give the command after --"),
    (("exec", "--host", "vps1", "--stack", "ems", "--"), "give the command after --"),
    (("exec", "--host", "vps1", "--", "psql"), "exec runs in one container of one host"),
    (("exec", "--host", "vps1,plantao1", "--stack", "ems", "--", "psql"), "exec runs in one container"),
    (("exec", "--stack", "ems", "--", "psql"), "exec runs in one container"),
    (("exec", "--host", "vps1", "--stack", "ems", "--service", "ems;reboot", "--", "sh"), "a compose service name"),
    (("exec", "--host", "vps1", "--stack", "ems", "--service", "-v", "--", "sh"), "a compose service name"),
    (("exec", "--host", "vps1", "--stack", "nope", "--", "sh"), "has no stack nope"),
    (("exec", "--host", "vps1", "--stack", "$(reboot)", "--", "sh"), "has no stack $(reboot)"),
    (("exec", "--host", "plantao1", "--stack", "escala", "--", "sh"), "escala is a binary under systemd"),
    (("status", "--host", "vps1", "--", "reboot"), "words after -- are the command of 'fab exec'"),
    (("-H", "vps1", "status", "--", "reboot"), "words after -- are the command of 'fab exec'"),
    (("prune", "--host", "vps1", "--keep", "1"), "--keep 1: a number of good releases from 2 to 1000"),
    (("prune", "--host", "vps1", "--keep", "all"), "--keep all: a number"),
    (("prune", "--host", "vps1", "--keep", "5;reboot"), "--keep 5;reboot: a number"),
    (("prune", "--host", "vps1", "--keep", "1001"), "--keep 1001"),
    (("deploy", "--host", "vps1", "--refresh", "all"), "--refresh 'all': only 'infra'"),
    (("deploy", "--host", "vps1", "--refresh", "infra;reboot"), "--refresh 'infra;reboot': only 'infra'"),
    (("deploy", "--host", "vps1", "--refresh", ""), "--refresh '': only 'infra'"),
    (("deploy", "--host", "vps1", "--refresh", "INFRA"), "--refresh 'INFRA': only 'infra'"),
])
def test_bad_input_exits_2_before_any_host_is_reached(folder, args, said):  # noqa: F811
    res = subprocess.run([str(COMMAND), *args], cwd=folder, capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL, env=os.environ)
    assert res.returncode == 2 and said in res.stderr, res.stdout + res.stderr
    assert res.stdout == ""


def test_the_words_are_those_after_the_first_double_dash_as_given():
    argv = ["fab", "exec", "--stack", "ems", "--", "psql", "-c", "select 'a b'; -- c", "--", ""]
    assert command_words(argv) == ["psql", "-c", "select 'a b'; -- c", "--", ""]
    with pytest.raises(ToolError, match="after --"):
        command_words(["fab", "exec", "--"])
