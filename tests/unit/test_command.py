"""The installed console command (`fab-vps`, from pyproject's scripts): Fabric's program with the tasks built
in, run from an operator's own folder that holds only a hosts.yml."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMMAND = Path(sys.executable).parent / "fab-vps"


@pytest.fixture
def deploy_repo(tmp_path):
    shutil.copy(REPO / "hosts.yml", tmp_path / "hosts.yml")
    return tmp_path


def run(folder, *args):
    assert COMMAND.exists(), "scripts/bootstrap installs the project into .venv (pip install -e '.[test]')"
    return subprocess.run([str(COMMAND), *args], cwd=folder, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_version_names_the_tool_fabric_paramiko_and_invoke(deploy_repo):
    out = run(deploy_repo, "--version").stdout
    for name in ("fab-vps", "Fabric", "Paramiko", "Invoke"):
        assert name in out


def test_it_runs_the_tasks_from_a_folder_with_only_a_hosts_yml(deploy_repo):
    listing = run(deploy_repo, "--list").stdout
    for task in ("deploy", "rollback", "migrate-layout", "rotate-token", "token-status", "trust-host"):
        assert task in listing
    res = run(deploy_repo, "deploy", "--host", "vps1", "--tag", "v1.4.3", "--dry-run", "--offline")  # vps1: not ours
    assert res.returncode == 0, res.stderr
    assert "run add_image ems ghcr.io/edumigsoft/ems_server v1.4.3 ''" in res.stdout


def test_bad_input_exits_2_as_fab_does(deploy_repo):
    res = run(deploy_repo, "deploy", "--host", "vps9", "--tag", "v1")
    assert res.returncode == 2 and "unknown host 'vps9'" in res.stderr
    assert run(deploy_repo.parent, "status", "--host", "vps1").returncode == 2  # no hosts.yml there


@pytest.mark.parametrize("args, said", [
    (("token-status", "--host", "vps1", "--warn-days", "abc"), "--warn-days must be a whole number"),
    (("token-status", "--host", "vps1", "--warn-days", "\u00b2"), "--warn-days must be a whole number"),
    (("rotate-token", "--host", "vps1", "--token-env", "T", "--warn-days", "9999"), "--warn-days must be a whole number"),
    (("deploy", "--host", "vps1", "--warn-days", "-3"), "--warn-days must be a whole number"),
    (("deploy", "-t", "v1"), "an option that takes a number was given something else"),
    (("deploy", "--host", "vps1", "--batch", "\u00b2"), "--batch must be a number of hosts"),
    (("deploy", "--host", "vps1", "--parallel", "\u00b2"), "--parallel must be a number of hosts"),
    (("deploy", "--hots", "vps1"), "No idea what '--hots' is"),
    (("deploy", "--host"), "needed value"),
    (("deploy-now",), "No idea what 'deploy-now' is"),
    (("deploy", "--host", "vps1", "--tag", "v1", "--plan", "--dry-run"), "--plan or --dry-run, not both"),
    (("rollback", "--host", "vps1", "--plan", "--dry-run"), "--plan or --dry-run, not both"),
    (("restore", "--host", "vps1", "--from", "latest", "--snapshot", "abcdef12"), "goes with --offsite"),
    (("restore", "--host", "vps1", "--from", "latest", "--offsite", "--snapshot", "latest;reboot"), "--snapshot ID"),
    (("restore", "--host", "vps1", "--from", "latest", "--offsite", "--snapshot", "ABCDEF12"), "--snapshot ID"),
    (("restore", "--host", "vps1", "--from", "latest", "--offsite", "--live"), "fab recover"),
    (("backup-check", "--host", "vps1", "--read-data", "0%"), "--read-data '0%': a percentage"),
    (("backup-check", "--host", "vps1", "--read-data", "101%"), "a percentage from 0.1% to 100%"),
    (("backup-check", "--host", "vps1", "--read-data", "8/7"), "or n/m"),
    (("backup-check", "--host", "vps1", "--read-data", "5%; reboot"), "a percentage"),
])
def test_bad_arguments_exit_2_with_a_clear_line_never_a_traceback(deploy_repo, args, said):
    """Issue 20 item 12: Invoke's parse errors exited 1, and a word where a number belongs a traceback."""
    res = run(deploy_repo, *args)
    assert res.returncode == 2 and said in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert "usage: fab-vps TASK" in res.stderr or "error: --" in res.stderr


def dry_run_with_ems_rollout(deploy_repo, rollout: str) -> str:
    """`fab deploy --dry-run` with ``rollout: ...`` on the ems stack: what it prints."""
    inv = deploy_repo / "hosts.yml"
    inv.write_text(inv.read_text().replace("        health: http://127.0.0.1:8080/health",
                                           f"        rollout: {rollout}\n        health: http://127.0.0.1:8080/health"))
    res = run(deploy_repo, "deploy", "--host", "vps1", "--tag", "v1.4.3", "--dry-run", "--offline")
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_the_dry_run_says_how_each_stack_changes(deploy_repo):
    out = dry_run_with_ems_rollout(deploy_repo, "{drain: 4, batch: 1}")
    assert "stack ems: start-first (new containers beside the old, healthy before they get traffic; old ones " \
           "drained 4 s, 1 at a time)" in out
    assert "stack sms: stop-first (the old containers stop, then the new ones start)" in out
    assert "\nrun start_first ems 4 1\n" in out


def test_the_dry_run_says_which_services_roll_behind_nginx_and_where_their_upstreams_go(deploy_repo):
    out = dry_run_with_ems_rollout(deploy_repo, "{nginx: {service: web, upstreams: {ems: 8080}}}")
    assert "stack ems: start-first for ems behind nginx (service web; upstream blocks written to upstreams/ and " \
           "nginx reloaded) (new containers beside the old" in out
    assert "\nrun nginx_pool ems web /root/ems_system/repo/servers/ems/container/upstreams ems=8080\n" in out


def test_fab_list_shows_a_whole_sentence_for_every_task():
    """Invoke's --list shows a docstring's first line: backup, restore and rollback used to be cut mid-sentence."""
    from tasks.main import namespace
    for name in namespace.task_names:
        first = namespace[name].__doc__.strip().splitlines()[0]
        assert first.endswith((".", ")")) and len(first) <= 110, f"{name}: {first!r}"
