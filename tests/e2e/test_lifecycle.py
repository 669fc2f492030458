"""End-to-end (real tier): the release lifecycle around a deploy (issue 25), on the sandbox VPS: hosts.yml's
hooks run on this machine around real deploys and a rollback, told what each is about; a failing
pre_deploy stops the deploy before anything on the host changed; on_failure hears a failed release's exit 5; a
failing post_deploy leaves a good deploy good; notify: posts each end to a receiver the test runs (payload
checked, no secret in it), and one that hangs costs the deploy its timeout, no more."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
import yaml

from sandbox import examples
from sandbox.load import Load
from sandbox.webhook import Receiver
from tasks.core import errors

from .test_examples import backend_tags, install, psql

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


# -- run-once jobs: EnlevoHub's schema migration before its backends are replaced ---------------------------------
# The sandbox's backend image is busybox (its entrypoint serves whatever its arguments): its "migration" writes the release it runs (/www/version) into the
# backends' shared volume, and fails on the broken v1.5.0 build (no /www/health), as a migration that does not
# apply would; it prints DATABASE_URL, whose password must not reach the output. The after job is a real SQL
# write, run as the stack's PostgreSQL service (psql) once every backend is healthy (the sandbox's PostgreSQL
# image runs the server whatever its arguments: the job names its entrypoint).
MIGRATE = ('echo "migrating $DATABASE_URL"; read -r v < /www/version; test -f /www/health '
           '|| { echo "migration 0042 failed: column obras.area" >&2; exit 1; }; echo "$v" > /app/data/schema; '
           'echo "schema at $v"')
SEED = ('PGPASSWORD="$POSTGRES_PASSWORD" psql -h postgres -U enlevohub -d enlevohub -v ON_ERROR_STOP=1 -qc '
        '"CREATE TABLE IF NOT EXISTS seeded (id serial); INSERT INTO seeded DEFAULT VALUES"')


def with_jobs(vps, **jobs) -> None:
    inv = yaml.safe_load(vps.inventory.read_text())
    inv["systems"]["enlevohub"]["stacks"]["app"]["jobs"] = jobs
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))


def test_a_schema_migration_runs_once_before_the_backends_change_and_a_failing_one_switches_nothing(sandbox, tmp_path):
    vps = install(sandbox, tmp_path, "enlevohub", "enlevohub", examples.ENLEVOHUB_ENV)
    with_jobs(vps, migrate={"service": "backend", "entrypoint": ["/bin/sh", "-c"], "command": [MIGRATE]},
              seed={"service": "postgres", "entrypoint": "sh -c", "command": [SEED], "when": "after"})
    inv = yaml.safe_load(vps.inventory.read_text())
    inv["systems"]["enlevohub"]["backup"]["before_deploy"] = True   # the jobs run after that backup
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    vps.ok("setup", "--host", "t1")
    volume = "\"$(docker volume inspect -f '{{.Mountpoint}}' enlevohub-app_appdata)\""

    def schema() -> str:
        return vps.host.inside(f"cat {volume}/schema").stdout.strip()

    def seeded() -> str:
        return psql(vps, "enlevohub-app-postgres-1", "enlevohub", "enlevohub", "SELECT count(*) FROM seeded")

    def one_offs() -> str:
        return vps.host.docker("ps", "-aq", "--filter", "label=com.docker.compose.oneoff=True").stdout.strip()

    first = vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")   # nothing runs yet: compose starts PostgreSQL for it
    assert "schema at v1.4.2" in first.stdout and schema() == "v1.4.2" and seeded() == "1", first.stdout

    with Load(vps.host, "http://127.0.0.1/api/version", rate=60, workers=4) as load:
        good = vps.fab("deploy", "--host", "t1", "--tag", "backend=v1.4.3")
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.index("app: pg_dump of its databases") < good.stdout.index("app: migrate ("), good.stdout
    assert load.failed == 0 and len(load.results) > 20, load.summary()
    assert schema() == "v1.4.3" and seeded() == "2" and backend_tags(vps) == ["v1.4.3"] * 3
    migrated = int(vps.host.inside(f"stat -c %Y {volume}/schema").stdout)
    started = vps.host.docker("ps", "-q", "--filter", "label=com.docker.compose.service=backend").stdout.split()
    created = [vps.host.docker("inspect", "-f", "{{.Created}}", c).stdout.strip() for c in started]
    assert all(datetime.fromisoformat(c[:19]).replace(tzinfo=timezone.utc).timestamp() >= migrated - 1
               for c in created), (migrated, created)   # every new backend was created after the migration
    backends = sorted(started)

    with Load(vps.host, "http://127.0.0.1/api/version", rate=60, workers=4) as load:
        bad = vps.fab("deploy", "--host", "t1", "--tag", "v1.5.0")
    out = bad.stdout + bad.stderr
    assert bad.returncode == errors.JOB_FAILED, out
    assert "its job migrate of app failed (exit 1); nothing was switched: v1.4.3 still runs" in out
    assert "migration 0042 failed: column obras.area" in out
    assert "enlevo-sandbox-pw" not in out and "migrating postgresql://enlevohub:***@postgres:" in out   # (every
    # .env value of 4 characters or more is masked: DB_PORT's 5432 too)
    assert load.failed == 0 and "v1.5.0" not in load.answers, load.summary()
    assert sorted(vps.host.docker("ps", "-q", "--filter", "label=com.docker.compose.service=backend").stdout.split()) \
        == backends, "not one backend was replaced"
    assert schema() == "v1.4.3" and seeded() == "2" and not one_offs()
    history = json.loads(vps.ok("releases", "--host", "t1", "--json").stdout)["enlevohub"]
    assert history[0]["state"] == "failed" and history[0]["jobs"] == {
        "app/migrate": {"result": "failed", "exit": 1, "seconds": history[0]["jobs"]["app/migrate"]["seconds"]}}
    assert {k: v["result"] for k, v in history[1]["jobs"].items()} == {"app/migrate": "ok", "app/seed": "ok"}

    # going back from the migration: the images, and the database as the backup before v1.4.3's deploy has it
    back = vps.ok("rollback", "--host", "t1", "--to", "v1.4.2", "--with-data", "--yes")
    assert "(its jobs app/migrate, app/seed are not run: --jobs runs them)" in back.stdout + back.stderr
    assert seeded() == "1" and backend_tags(vps) == ["v1.4.2"] * 3, back.stdout

    # the image's own entrypoint ignores its arguments and serves (as seed 002's migrates, then starts the
    # server): without entrypoint: the job never ends, and its timeout stops it
    with_jobs(vps, migrate={"service": "backend", "command": "npx prisma migrate deploy", "timeout": 3})
    began = time.monotonic()
    hung = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3")
    assert hung.returncode == errors.JOB_FAILED and time.monotonic() - began < 60, hung.stdout + hung.stderr
    assert "did not finish within 3s (its container was removed)" in hung.stderr
    assert not one_offs() and backend_tags(vps) == ["v1.4.2"] * 3
