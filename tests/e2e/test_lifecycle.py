"""End-to-end (real tier): the release lifecycle around a deploy (issue 25), on the sandbox VPS: hosts.yml's
hooks run on this machine around real deploys and a rollback, told what each is about; a failing
pre_deploy stops the deploy before anything on the host changed; on_failure hears a failed release's exit 5; a
failing post_deploy leaves a good deploy good; notify: posts each end to a receiver the test runs (payload
checked, no secret in it), and one that hangs costs the deploy its timeout, no more."""
from __future__ import annotations

import json
import time

import pytest
import yaml

from sandbox.webhook import Receiver
from tasks.core import errors

pytestmark = pytest.mark.e2e

RECORD = "env | grep ^FAB_ | sort > {name}-$FAB_ACTION-$FAB_RESULT.env"


def with_hooks(vps, notify: dict | None = None, **hooks) -> None:
    inv = yaml.safe_load(vps.inventory.read_text())
    inv["hooks"] = hooks
    inv.pop("notify", None)
    inv.update({"notify": notify} if notify else {})
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))


def told(folder, name: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (folder / f"{name}.env").read_text().splitlines())


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.close()


def test_hooks_around_deploys_and_a_rollback_and_a_failing_pre_deploy_changes_nothing(vps, tmp_path, receiver):
    with_hooks(vps, pre_deploy=RECORD.format(name="pre").replace("$FAB_RESULT", "start"),
               post_deploy=RECORD.format(name="post"), on_failure=RECORD.format(name="fail"),
               notify={"webhook": receiver.url, "on": ["failure", "success"]})
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    pre, post = told(tmp_path, "pre-deploy-start"), told(tmp_path, "post-deploy-ok")
    release = vps.running()["release"]
    assert (pre["FAB_HOSTS"], pre["FAB_SYSTEMS"], pre["FAB_TAGS"], pre["FAB_RELEASE"]) == (
        "t1", "ems_system", "v1.4.2", release)
    assert post == {**pre, "FAB_HOOK": "post_deploy", "FAB_RESULT": "ok", "FAB_EXIT": "0"}

    bad = vps.fab("deploy", "--host", "t1", "--tag", "v1.5.0")
    assert bad.returncode == errors.ROLLED_BACK, bad.stdout + bad.stderr
    fail = told(tmp_path, "fail-deploy-failed")
    assert fail["FAB_EXIT"] == "5" and "v1.5.0 failed its health gate" in fail["FAB_ERROR"], fail

    vps.ok("rollback", "--host", "t1", "--to", "v1.4.2")
    assert told(tmp_path, "post-rollback-ok")["FAB_TAGS"] == "v1.4.2"
    assert [(n["action"], n["result"], n["exit"]) for n in receiver.got] == [
        ("deploy", "ok", 0), ("deploy", "failed", 5), ("rollback", "ok", 0)], receiver.got
    assert receiver.got[1]["text"].startswith("fab deploy of v1.5.0 on t1 (ems_system) failed (exit 5): ")
    assert vps.token not in json.dumps(receiver.got)

    with_hooks(vps, pre_deploy="echo 'the CI run of this tag is red' >&2; exit 3",
               on_failure=RECORD.format(name="fail"))
    before = vps.snapshot()
    refused = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3")
    assert refused.returncode == errors.BAD_INPUT and "the CI run of this tag is red" in refused.stderr
    assert "hook pre_deploy failed (exit 3): the deploy did not start, nothing was changed" in refused.stderr
    assert vps.snapshot() == before and vps.version() == "v1.4.2"

    hangs = Receiver(hang=True)
    try:
        with_hooks(vps, post_deploy="exit 9", notify={"webhook": hangs.url, "on": ["success"], "timeout": 2,
                                                      "retries": 0})
        started = time.monotonic()
        good = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3")
        took = time.monotonic() - started
    finally:
        hangs.close()
    assert good.returncode == 0 and "hook post_deploy failed (exit 9)" in good.stderr, good.stdout + good.stderr
    assert "notify: the webhook did not take the notification: timed out (1 try;" in good.stderr
    assert len(hangs.got) == 1 and took < 60 and vps.version() == "v1.4.3"
