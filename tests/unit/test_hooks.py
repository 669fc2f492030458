"""hosts.yml's hooks (tasks/core/hooks.py) run for real by sh in a temp folder: what they are told, a failing
pre_deploy stopping the run before its body, on_failure told the exit code, post_deploy and on_failure never
changing the result, a hook that hangs stopped at its timeout with what it started, output redacted, hostile
values refused with their line; and notify: (tasks/core/notify.py) posting to a real HTTP receiver on
127.0.0.1: the payload, retries, a receiver that hangs bounded, the URL never shown. Fast tier (no host)."""
import time
from pathlib import Path

import pytest

from sandbox.webhook import Receiver
from tasks.core import hooks, inventory
from tasks.core.errors import BAD_INPUT, ROLLED_BACK, WARNING, ToolError

HEAD = ("registry: {server: ghcr.io, username: edumigsoft}\nsystems:\n  s: {stacks: {app: {compose: c.yml}}}\n"
        "hosts:\n  n1: {address: 10.0.0.1, systems: [s]}\n  n2: {address: 10.0.0.2, systems: [s]}\n")
ENV = "env | grep ^FAB_ | sort > {name}.env"
TOKEN = "ghp_" + "A1b2C3d4" * 4 + "zz12"


def load(tmp_path: Path, spec: str):
    path = tmp_path / "hosts.yml"
    path.write_text(HEAD + "hooks:\n" + spec)
    inv = inventory.load(path)
    return inv, [t for h in inv.hosts.values() for t in h.targets()]


def told(tmp_path: Path, name: str) -> dict[str, str]:
    lines = (tmp_path / f"{name}.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_each_hook_is_told_what_the_run_is_about_and_how_it_ended(tmp_path):
    inv, targets = load(tmp_path, f"  pre_deploy: {ENV.format(name='pre')}\n"
                                  f"  post_deploy: {ENV.format(name='post')}\n")
    ran = []
    with hooks.around(inv, "deploy", "20261206T040000Z-abcd", targets, "v1.4.3"):
        ran.append(told(tmp_path, "pre"))
    pre, post = ran[0], told(tmp_path, "post")
    assert pre == {"FAB_ACTION": "deploy", "FAB_RELEASE": "20261206T040000Z-abcd", "FAB_TAGS": "v1.4.3",
                   "FAB_HOSTS": "n1,n2", "FAB_SYSTEMS": "s", "FAB_HOOK": "pre_deploy",
                   "FAB_INVENTORY": str(tmp_path / "hosts.yml")}
    assert post == {**pre, "FAB_HOOK": "post_deploy", "FAB_RESULT": "ok", "FAB_EXIT": "0"}


def test_a_failing_pre_deploy_stops_the_run_before_its_body(tmp_path):
    inv, targets = load(tmp_path, "  pre_deploy: echo 'CI is red'; exit 3\n  on_failure: touch failure\n")
    ran = []
    with pytest.raises(ToolError) as e, hooks.around(inv, "deploy", "r", targets, ""):
        ran.append(1)
    assert e.value.code == BAD_INPUT and ran == [] and not (tmp_path / "failure").exists()
    assert str(e.value) == "hook pre_deploy failed (exit 3): the deploy did not start, nothing was changed"


def test_on_failure_is_told_the_exit_code_and_the_error_and_the_failure_stays_the_run_s(tmp_path):
    inv, targets = load(tmp_path, f"  on_failure: {ENV.format(name='fail')}; exit 1\n  post_deploy: touch post\n")
    with pytest.raises(ToolError) as e, hooks.around(inv, "rollback", "r", targets, ""):
        raise ToolError(f"n1/s: v1.5.0 failed its health gate\n(token {TOKEN})", ROLLED_BACK)
    assert e.value.code == ROLLED_BACK
    fail = told(tmp_path, "fail")
    assert (fail["FAB_RESULT"], fail["FAB_EXIT"], fail["FAB_ERROR"]) == ("failed", "5",
                                                                         "n1/s: v1.5.0 failed its health gate")
    assert not (tmp_path / "post").exists()


def test_a_warning_is_a_run_that_succeeded(tmp_path):
    inv, targets = load(tmp_path, f"  post_deploy: {ENV.format(name='post')}\n  on_failure: touch failure\n")
    with pytest.raises(ToolError), hooks.around(inv, "deploy", "r", targets, ""):
        raise ToolError("the token expires in 5 days", WARNING)
    assert told(tmp_path, "post")["FAB_EXIT"] == "8" and not (tmp_path / "failure").exists()


def test_a_failing_post_deploy_is_said_and_the_run_stays_good(tmp_path, capsys):
    inv, targets = load(tmp_path, f"  post_deploy: echo {TOKEN}; exit 9\n")
    with hooks.around(inv, "backup", "", targets, ""):
        pass
    err = capsys.readouterr().err
    assert "warning: hook post_deploy failed (exit 9) (the backup's result stands)" in err
    assert TOKEN not in err and "post_deploy>" in err   # (its output shown, redacted)


def test_a_hook_that_hangs_is_stopped_at_its_timeout_with_what_it_started(tmp_path):
    inv, targets = load(tmp_path, "  pre_deploy: sleep 60 & echo $! > child; wait\n  timeout: 1\n")
    started = time.monotonic()
    with pytest.raises(ToolError) as e, hooks.around(inv, "deploy", "r", targets, ""):
        pass
    assert time.monotonic() - started < 10 and "hook pre_deploy timed out after 1 s" in str(e.value)
    child = (tmp_path / "child").read_text().strip()
    time.sleep(0.2)
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]


def test_a_dry_run_runs_no_hook(tmp_path):
    inv, targets = load(tmp_path, "  pre_deploy: touch pre\n  post_deploy: touch post\n")
    with hooks.around(inv, "deploy", "r", targets, "", skip=True):
        pass
    assert not (tmp_path / "pre").exists() and not (tmp_path / "post").exists()


@pytest.mark.parametrize("spec, message", [
    ("  pre_deploy: \"a\\nb\"\n", "hooks.pre_deploy"),
    ("  pre_deploy: ''\n", "hooks.pre_deploy"),
    ("  pre_deploy: [echo, hi]\n", "hooks.pre_deploy"),
    ("  timeout: 0\n", "must be a whole number from 1 to 3600"),
    ("  timeout: '60'\n", "must be a whole number from 1 to 3600"),
    ("  pre-deploy: echo\n", "pre-deploy"),
])
def test_hostile_hooks_are_refused_with_their_line(tmp_path, spec, message):
    error = refusal(tmp_path, "hooks:\n" + spec)
    assert "hosts.yml:8" in error and message in error, error


def refusal(tmp_path: Path, tail: str) -> str:
    """The error hosts.yml ending in ``tail`` is refused with (exit 2)."""
    path = tmp_path / "hosts.yml"
    path.write_text(HEAD + tail)
    with pytest.raises(ToolError) as e:
        inventory.load(path)
    assert e.value.code == BAD_INPUT
    return str(e.value)


@pytest.fixture
def receiver():
    made = []
    yield lambda **kw: made.append(Receiver(**kw)) or made[-1]
    for r in made:
        r.close()


def test_a_failure_is_posted_with_its_facts_and_no_secret(tmp_path, receiver):
    r = receiver()
    inv, targets = load(tmp_path, "  timeout: 5\n" + f"notify: {{webhook: '{r.url}'}}\n")
    with pytest.raises(ToolError), hooks.around(inv, "deploy", "20261206T040000Z-abcd", targets, "v1.5.0"):
        raise ToolError(f"n1/s: v1.5.0 failed its health gate ({TOKEN})\nlast lines: DB_PASSWORD=hunter2", ROLLED_BACK)
    (sent,) = r.got
    assert sent == {"text": "fab deploy of v1.5.0 on n1,n2 (s) failed (exit 5): n1/s: v1.5.0 failed its health gate "
                            "(***)", "action": "deploy", "release": "20261206T040000Z-abcd", "hosts": ["n1", "n2"],
                    "systems": ["s"], "tags": "v1.5.0", "result": "failed", "exit": 5,
                    "error": "n1/s: v1.5.0 failed its health gate (***)"}


def test_a_success_is_posted_only_when_on_asks_and_a_refused_run_is_a_failure(tmp_path, receiver):
    quiet, loud = receiver(), receiver()
    inv, targets = load(tmp_path, f"  pre_deploy: 'true'\nnotify: {{webhook: '{quiet.url}'}}\n")
    with hooks.around(inv, "deploy", "r", targets, ""):
        pass
    assert quiet.got == []
    inv, targets = load(tmp_path, f"  pre_deploy: exit 4\nnotify: {{webhook: '{loud.url}', on: [failure, success]}}\n")
    with pytest.raises(ToolError), hooks.around(inv, "deploy", "r", targets, ""):
        pass
    assert [(g["result"], g["exit"]) for g in loud.got] == [("failed", 2)]


def test_a_receiver_that_fails_then_answers_is_tried_again(tmp_path, receiver):
    r = receiver(codes=[500])
    inv, targets = load(tmp_path, f"  timeout: 5\nnotify: {{webhook: '{r.url}', on: [success], retries: 1}}\n")
    with hooks.around(inv, "backup", "", targets, ""):
        pass
    assert len(r.got) == 2 and r.got[1]["result"] == "ok"


def test_a_receiver_that_hangs_costs_its_timeout_and_retries_at_most_and_is_said(tmp_path, receiver, capsys):
    r = receiver(hang=True)
    inv, targets = load(tmp_path, f"  timeout: 5\nnotify: {{webhook: '{r.url}', timeout: 1, retries: 1}}\n")
    started = time.monotonic()
    with pytest.raises(ToolError) as e, hooks.around(inv, "deploy", "r", targets, ""):
        raise ToolError("failed", ROLLED_BACK)
    assert e.value.code == ROLLED_BACK and time.monotonic() - started < 1 * 2 + 1 + 1.5
    err = capsys.readouterr().err
    assert "notify: the webhook did not take the notification: timed out (2 tries;" in err
    assert "T0K3N" not in err   # (the URL, a credential for Slack, is never shown)


def test_a_webhook_read_from_the_environment_and_one_that_is_not_set(tmp_path, receiver, monkeypatch, capsys):
    r = receiver()
    inv, targets = load(tmp_path, "  timeout: 5\nnotify: {webhook_env: TEAM_WEBHOOK}\n")
    with pytest.raises(ToolError), hooks.around(inv, "rollback", "r", targets, ""):
        raise ToolError("failed", 6)
    assert "TEAM_WEBHOOK is not set: no notification sent" in capsys.readouterr().err
    monkeypatch.setenv("TEAM_WEBHOOK", r.url)
    with pytest.raises(ToolError), hooks.around(inv, "rollback", "r", targets, ""):
        raise ToolError("failed", 6)
    assert [g["action"] for g in r.got] == ["rollback"]


@pytest.mark.parametrize("spec, message", [
    ("{webhook: 'http://hooks.example/x'}", "must be an https:// URL"),
    ("{webhook: 'https://h.example/x', webhook_env: HOOK}", "needs one of webhook: URL and webhook_env: VARIABLE"),
    ("{}", "needs one of webhook: URL and webhook_env: VARIABLE"),
    ("{webhook_env: 'lower'}", "must be an UPPER_CASE variable name"),
    ("{webhook: 'https://h.example/x', on: [maybe]}", "notify.on"),
    ("{webhook: 'https://h.example/x', on: []}", "on: lists failure, warning and/or success"),
    ("{webhook: 'https://h.example/x', timeout: 61}", "must be a whole number from 1 to 60"),
    ("{webhook: 'https://h.example/x', retries: -1}", "must be a whole number from 0 to 5"),
])
def test_hostile_notify_values_are_refused_with_their_line(tmp_path, spec, message):
    error = refusal(tmp_path, f"notify: {spec}\n")
    assert "hosts.yml:7" in error and message in error, error


def test_a_drill_or_a_token_check_notifies_and_runs_no_hook(tmp_path, receiver):
    r = receiver()
    inv, targets = load(tmp_path, f"  pre_deploy: touch pre\n  on_failure: touch fail\nnotify: {{webhook: '{r.url}'}}\n")
    with pytest.raises(ToolError), hooks.around(inv, "restore", "", targets, "latest", hooked=False):
        raise ToolError("the drill of postgres-20261206T020000Z failed: pg_restore: error", 10)
    assert [(g["action"], g["exit"], g["tags"]) for g in r.got] == [("restore", 10, "latest")]
    assert not (tmp_path / "pre").exists() and not (tmp_path / "fail").exists()


def test_a_warning_is_notified_by_default_with_its_line_and_a_success_is_not(tmp_path, receiver):
    r = receiver()
    inv, targets = load(tmp_path, f"  timeout: 5\nnotify: {{webhook: '{r.url}'}}\n")
    with hooks.around(inv, "token-status", "", targets, "", hooked=False):
        pass
    with pytest.raises(ToolError), hooks.around(inv, "token-status", "", targets, "", hooked=False):
        raise ToolError(f"1 of 2 failed or warned: n1/s (the token expires in 5 days; {TOKEN})", WARNING)
    (sent,) = r.got
    assert sent["text"] == ("fab token-status on n1,n2 (s) succeeded with a warning (exit 8): 1 of 2 failed or "
                            "warned: n1/s (the token expires in 5 days; ***)"), sent
    assert (sent["result"], sent["exit"]) == ("ok", 8)
    quiet = receiver()
    inv, targets = load(tmp_path, f"  timeout: 5\nnotify: {{webhook: '{quiet.url}', on: [failure]}}\n")
    with pytest.raises(ToolError), hooks.around(inv, "token-status", "", targets, "", hooked=False):
        raise ToolError("the token expires in 5 days", WARNING)
    assert quiet.got == []
