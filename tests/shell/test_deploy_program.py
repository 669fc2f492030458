"""The deploy program run whole under bash with stub docker/curl: what it calls, in which order, what it
writes (history, current, .env pins, audit, lock) and how it fails. Fast tier: no root, SSH or Docker."""
import hashlib
import json
from dataclasses import replace
from pathlib import Path

from tasks.core import inventory
from tasks.core.programs.declare import Intent
from tasks.core.programs.deploy import deploy_program
from tasks.core.programs.protocol import Code

from .conftest import REGISTRY, TOKEN, finished

DIGEST = "sha256:aadae6505d8789c4190fc92bf05ad2797d48b5ea9b51d3cacd98d32ee4a5d473"  # in captured/docker-pull.txt
OLD = "v1.4.2@sha256:" + "2" * 64


def intent(**kw):
    return Intent(**{**dict(action="deploy", release="r1", tag="v1.4.3", by="ana@laptop", origin="laptop",
                            tags={"ems": "v1.4.3", "sms": "v1.4.3"}), **kw})


def deploy(lab, **kw):
    t = lab.target
    return lab.run(deploy_program(t, list(t.system.stacks), intent(**kw)))


def pulls_answer(lab):
    lab.answer("docker", "pull *", captured="docker-pull.txt")


def ups(lab):
    """The `compose up` calls, as "compose -p PROJECT" each."""
    return [c.split(" -f ")[0] for c in lab.commands("docker") if c.startswith("compose") and " up " in c]


def history(lab):
    return [json.loads(line) for line in (lab.state / "releases.jsonl").read_text().splitlines()]


def test_a_good_deploy_pins_records_and_unlocks(lab):
    pulls_answer(lab)
    run = deploy(lab)
    assert run.code == 0, run.stdout + run.stderr
    pin = f"v1.4.3@{DIGEST}"
    assert run.result.all("pin") == [{"app": "ems", "pin": pin}, {"app": "sms", "pin": pin}]
    env = (lab.root / "ems_system/repo/ems/.env").read_text()
    assert f"IMAGE_TAG={pin}\n" in env and "COMPOSE_PROJECT_NAME=ems_system-ems\n" in env
    assert (lab.root / "ems_system/repo/infra/.env").read_text() == "COMPOSE_PROJECT_NAME=ems_system-infra\n"
    assert [(h["state"], h["images"]) for h in history(lab)] == [("deploying", {"ems": pin, "sms": pin}),
                                                                ("good", {"ems": pin, "sms": pin})]
    current = (lab.state / "current").read_text().splitlines()
    assert current[:2] == ["release r1", "tag v1.4.3"] and sorted(current[2:]) == [f"pin ems {pin}", f"pin sms {pin}"]
    audit = json.loads((lab.state / "audit.jsonl").read_text())
    assert (audit["task"], audit["result"], audit["exit"], audit["by"]) == ("deploy", "ok", 0, "ana@laptop")
    assert not (lab.state / "lock").exists()


def test_the_order_of_docker_calls(lab):
    pulls_answer(lab)
    assert deploy(lab).code == 0
    config = f"compose -p ems_system-{{}} -f {lab.root}/ems_system/repo/{{}}/docker-compose.yml config".format
    calls, seen, again = [], set(), []
    for c in lab.commands("docker"):   # (a second rendering runs in the background: its place is not fixed)
        (again if c.endswith(" config") and c in seen else calls).append(c)
        seen.add(c)
    assert sorted(again) == [config(s, s) for s in ("ems", "infra", "sms")], \
        "each .env changed (pins; infra's project line): rendered again after the switch, for the record"
    assert calls.count(config("infra", "infra")) == 1, "infra pins nothing: rendered once, beside the pulls"
    calls.remove(config("infra", "infra"))
    assert calls[0] == f"login -u edumigsoft --password-stdin -- {REGISTRY}"
    assert calls[1] == "info --format {{.DockerRootDir}}", "room for the images first (here none said: unchecked)"
    del calls[1]
    end = next(i for i, c in enumerate(calls) if c.startswith("ps --filter label=com.docker.compose.project --format"))
    recorded = [c.split(" --")[0] for c in calls[end + 1:]]
    del calls[end + 1:]
    assert recorded == ["ps -aq", "inspect", "image inspect"], \
        "once good, what each stack's services that pin nothing run (infra's) is read for the record"
    assert sorted(calls[1:3]) == [f"pull {REGISTRY}/edumigsoft/ems_server:v1.4.3",   # at once
                                  f"pull {REGISTRY}/edumigsoft/sms_server:v1.4.3"]
    preflight = sorted(calls[3:6])   # the pinned stacks' compose configs at once, beside one look at every container
    assert preflight[:2] == [config("ems", "ems"), config("sms", "sms")]
    assert preflight[2].startswith("ps -a --format")
    assert calls[6].startswith("ps -aq --filter label=com.docker.compose.project=ems_system-infra"), \
        "infra pins nothing: its containers before its up (did compose replace any, should it fail?)"
    del calls[6]
    applied = [c.split(" -f ")[0] + " " + c.split(" ")[5] if c.startswith("compose") else c.split(" ")[0]
               for c in calls[6:-1]]
    assert applied == ["compose -p ems_system-infra up", "ps", "inspect", "ps", "inspect",
                       "compose -p ems_system-ems up", "ps", "inspect", "ps", "inspect",
                       "compose -p ems_system-sms up", "ps", "inspect", "ps", "inspect"]
    assert all(c.endswith("up -d --remove-orphans") for c in calls[6:-1:5]), "up, without compose's --wait " \
        "(infra has no record of a passed gate; ems and sms run new images)"
    assert all(c.startswith("inspect --format {{.Name}} {{.State.Status}}") for c in calls[8:-1:5]), \
        "the tool's own wait: its containers running and healthy"
    assert all("config-hash" in c for c in calls[10:-1:5]), "then the record of the passed gate"
    assert calls[-1].startswith("ps --filter"), "then one look for services without a healthcheck"


def test_the_token_goes_to_docker_on_stdin_only(lab):
    pulls_answer(lab)
    run = deploy(lab)
    login = next(c for c in lab.calls("docker") if c.argv[1] == "login")
    assert login.stdin == TOKEN
    assert all(TOKEN not in " ".join(c.argv) for c in lab.calls())
    assert TOKEN not in run.stdout + run.stderr


def test_a_failed_gate_restores_the_previous_pins_in_order(lab):
    pulls_answer(lab)
    lab.state.mkdir()
    (lab.state / "current").write_text(f"release r0\ntag v1.4.2\npin ems {OLD}\npin sms {OLD}\n")
    lab.answer("docker", "compose -p ems_system-ems * up *", captured="compose-up-unhealthy.txt", code=1, once=True)
    run = deploy(lab)
    assert run.code == Code.ROLLED_BACK, run.stdout
    assert "v1.4.3 failed its health gate; the previous good release v1.4.2 is back" in run.error
    # infra, ems (fails: sms is never switched) -> restore ems, the one app stack this release switched
    assert ups(lab) == ["compose -p ems_system-infra", "compose -p ems_system-ems", "compose -p ems_system-ems"]
    assert f"IMAGE_TAG={OLD}\n" in (lab.root / "ems_system/repo/ems/.env").read_text()
    assert not (lab.root / "ems_system/repo/sms/.env").exists(), "sms was never touched"
    assert [h["state"] for h in history(lab)] == ["deploying", "failed"]
    assert (lab.state / "current").read_text().startswith("release r0\n"), "current must stay the previous release"
    assert '"result":"rolled-back","exit":13' in (lab.state / "audit.jsonl").read_text()


def test_a_deploy_that_finishes_an_interrupted_one_restores_the_stacks_that_one_switched(lab):
    """Issue 20 item 14: a deploy killed on the host had switched sms (its .env pins v1.4.3, unverified); the
    next deploy takes its lock over and fails at ems: sms goes back to the previous good release too, although
    this run never switched it, and the dead release is recorded interrupted."""
    pulls_answer(lab)
    lab.state.mkdir()
    (lab.state / "current").write_text(f"release r0\ntag v1.4.2\npin ems {OLD}\npin sms {OLD}\n")
    (lab.root / "ems_system/repo/sms/.env").write_text(f"IMAGE_TAG=v1.4.3@{DIGEST}\n")
    lock = lab.state / "lock"
    lock.mkdir()
    meta = '"release":"rX","tag":"v1.4.3","action":"deploy","by":"bob@ci","from":"ci"'
    for name, value in {"info": "bob@ci since 2026-12-03T10:00:00Z (deploy v1.4.3, release rX, pid 1)\n",
                        "action": "deploy", "pid": "4194304", "release": "rX", "meta": meta,
                        "stacks": "infra ems sms"}.items():
        (lock / name).write_text(value)
    (lab.state / "releases.jsonl").write_text("{" + meta + ',"state":"deploying","at":"x"}\n')
    lab.answer("docker", "compose -p ems_system-ems * up *", captured="compose-up-unhealthy.txt", code=1, once=True)
    run = deploy(lab)
    assert run.code == Code.ROLLED_BACK, run.stdout
    assert "interrupted: bob@ci since" in run.stdout
    assert ups(lab) == ["compose -p ems_system-infra", "compose -p ems_system-ems",
                        "compose -p ems_system-ems", "compose -p ems_system-sms"], "ems, then sms: back in order"
    for app in ("ems", "sms"):
        assert f"IMAGE_TAG={OLD}\n" in (lab.root / f"ems_system/repo/{app}/.env").read_text()
    assert [(h["release"], h["state"]) for h in history(lab)] == \
        [("rX", "deploying"), ("rX", "interrupted"), ("r1", "deploying"), ("r1", "failed")]
    assert not lock.exists()


def test_nothing_to_restore_is_reported_broken(lab):
    pulls_answer(lab)
    lab.answer("docker", "compose -p ems_system-ems * up *", captured="compose-up-unhealthy.txt", code=1)
    run = deploy(lab)
    assert run.code == Code.BROKEN and "could not be restored" in run.error


def test_a_failed_pull_changes_nothing_that_runs(lab):
    lab.answer("docker", "pull *", captured="docker-pull-manifest-unknown.txt", code=1)
    run = deploy(lab)
    assert run.code == Code.PULL and "manifest unknown" in run.error
    assert [c for c in lab.commands("docker") if c.startswith("compose")] == \
        [f"compose -p ems_system-infra -f {lab.root}/ems_system/repo/infra/docker-compose.yml config"], "read only"
    assert not (lab.root / "ems_system/repo/ems/.env").exists() and not (lab.state / "lock").exists()


def test_a_refused_login_says_so(lab):
    lab.answer("docker", "login *", captured="docker-login-denied.txt", code=1)
    run = deploy(lab)
    assert run.code == Code.LOGIN and "401 Unauthorized" in run.error


def test_an_up_to_date_pull_still_yields_the_digest(lab):
    lab.answer("docker", "pull *", captured="docker-pull-up-to-date.txt")
    run = deploy(lab)
    assert run.code == 0 and run.result.one("pin")["pin"].startswith("v1.4.3@sha256:")


def test_a_rollback_pulls_the_recorded_digest_not_the_tag(lab):
    t = lab.target
    lab.answer("docker", "image inspect *", code=1)
    lab.answer("docker", "pull *@sha256:2222*", f"Digest: {OLD.split('@')[1]}\n")
    run = lab.run(deploy_program(t, list(t.system.stacks), intent(action="rollback", tag="v1.4.2", tags=None,
                                                                  pins={"ems": OLD, "sms": OLD})))
    assert run.code == 0, run.stdout
    pulls = [c for c in lab.commands("docker") if c.startswith("pull")]
    assert sorted(pulls) == [f"pull {REGISTRY}/edumigsoft/ems_server@{OLD.split('@')[1]}"] * 1 + \
        [f"pull {REGISTRY}/edumigsoft/sms_server@{OLD.split('@')[1]}"]


def test_a_fleet_revert_records_the_release_it_took_back_as_reverted(lab):
    """Issue 18 item 3: r1 passed its gate here, then another host of the fleet failed and the run put r0 back:
    r1 is recorded reverted on this host, so a plain rollback never returns to it (and only once r0 is live)."""
    from tasks.core import history as hist
    pulls_answer(lab)
    t = lab.target
    assert deploy(lab, release="r1", fleet="r1").code == 0
    lab.answer("docker", "image inspect *", code=0)
    back = intent(action="rollback", release="r2", tag="v1.4.2", tags=None, pins={"ems": OLD, "sms": OLD}, fleet="r1")
    run = lab.run(deploy_program(t, list(t.system.stacks), back, reverts=intent(release="r1", fleet="r1")))
    assert run.code == 0, run.stdout
    rels = hist.parse((lab.state / "releases.jsonl").read_text())
    assert [(r.id, r.state) for r in rels] == [("r1", "reverted"), ("r2", "good")]
    assert rels[0].pins["ems"].startswith("v1.4.3@"), "its record is kept as it was"
    assert hist.previous_good(rels, "r2", rels[1].pins) is None, "nothing good to go back to but what runs"


def test_a_changed_history_refuses_the_rollback(lab):
    t = lab.target
    run = lab.run(deploy_program(t, list(t.system.stacks), intent(action="rollback", pins={}, tags=None,
                                                                  history_sha="0" * 64)))
    assert run.code == Code.CONFLICT and "changed since it was read" in run.error
    assert lab.commands("docker") == [] and not (lab.state / "lock").exists()


def test_the_health_url_is_asked_after_compose(lab):
    pulls_answer(lab)
    lab.answer("curl", "*/health*", code=22)
    lab.answer("wget", "*", code=1)
    lab.state.mkdir()
    (lab.state / "current").write_text(f"release r0\ntag v1.4.2\npin ems {OLD}\n")
    lab.answer("docker", "ps -a --filter label=com.docker.compose.project=ems_system-ems --format {{.Names}}",
               "ems-2\n")
    lab.answer("docker", "logs --tail 30 ems-2", "listening on :8080\nGET /health 500 (no database: DB_HOST unset)\n")
    run = deploy(lab)
    assert run.code == Code.BROKEN, run.stdout  # ems restored, but its health URL still fails
    assert "http://127.0.0.1:8080/health did not answer 2xx" in run.stdout
    assert "@@info the last lines of ems-2:\n@@info   | listening on :8080\n" \
           "@@info   | GET /health 500 (no database: DB_HOST unset)" in run.stdout, "what the app said, under it"


def test_the_deploy_finishes_and_unlocks_when_the_operator_goes_away(lab):
    """The laptop drops after the first line: every later write fails, and the VPS still finishes the deploy,
    records it and releases the lock."""
    pulls_answer(lab)
    t = lab.target
    code = lab.hang_up(deploy_program(t, list(t.system.stacks), intent()), after_lines=1)
    assert code == 0
    assert [h["state"] for h in history(lab)] == ["deploying", "good"]
    assert not (lab.state / "lock").exists() and (lab.state / "current").exists()


def test_a_damaged_previous_pin_is_not_restored(lab):
    pulls_answer(lab)
    lab.state.mkdir()
    (lab.state / "current").write_text("release r0\ntag v1.4.2\npin ems v1.4.2@sha256:2 DB_PASSWORD=x\n")
    lab.answer("docker", "compose -p ems_system-ems * up *", captured="compose-up-unhealthy.txt", code=1, once=True)
    run = deploy(lab)
    assert run.code == Code.BROKEN and "the previous pin of ems is damaged: not used" in run.stdout
    assert "DB_PASSWORD" not in (lab.root / "ems_system/repo/ems/.env").read_text()


def test_a_stack_whose_env_cannot_be_written_is_left_running_and_the_rest_restored(lab):
    """Disk full on the repo: ems's .env cannot be pinned, so ems never changed; the gate fails and only the
    stacks that were switched are put back, so the previous release is reported back (not "look now")."""
    pulls_answer(lab)
    lab.state.mkdir()
    (lab.state / "current").write_text(f"release r0\ntag v1.4.2\npin ems {OLD}\npin sms {OLD}\n")
    env = lab.root / "ems_system/repo/ems/.env"
    env.write_text(f"IMAGE_TAG={OLD}\nCOMPOSE_PROJECT_NAME=ems_system-ems\n" + "# padding\n" * 3000)
    t = lab.target
    run = lab.run(deploy_program(t, list(t.system.stacks), intent()).text.replace(
        "\nrun go_live\n", "\nulimit -f 16\nrun go_live\n"))  # a full disk for every write from here on
    assert run.code == Code.ROLLED_BACK, run.stdout + run.stderr
    assert "cannot write" in run.stdout and f"IMAGE_TAG={OLD}\n" in env.read_text()
    assert ups(lab) == \
        ["compose -p ems_system-infra"]


def test_a_stack_kept_as_it_runs_is_not_pulled(lab):
    """--tag ems=v1.4.3: ems pulls its tag; sms keeps exactly its running digest (present: nothing pulled)."""
    pulls_answer(lab)
    lab.answer("docker", f"image inspect {REGISTRY}/edumigsoft/sms_server@{OLD.split('@')[1]}", '[{"Id": "sha256:2"}]\n')
    t = lab.target
    run = lab.run(deploy_program(t, list(t.system.stacks), intent(tag="ems=v1.4.3,sms=v1.4.2",
                                                                  tags={"ems": "v1.4.3"}, pins={"sms": OLD})))
    assert run.code == 0, run.stdout + run.stderr
    assert [c for c in lab.commands("docker") if c.startswith("pull")] == [f"pull {REGISTRY}/edumigsoft/ems_server:v1.4.3"]
    assert f"IMAGE_TAG={OLD}\n" in (lab.root / "ems_system/repo/sms/.env").read_text()
    assert (lab.state / "current").read_text().startswith("release r1\ntag ems=v1.4.3,sms=v1.4.2\n")


def test_placeholders_left_from_env_example_refuse_the_deploy_before_anything_changes(lab):
    """seed 001's change-me passwords would go into PostgreSQL for good: refused, keys named, values kept on the
    host; a key the example leaves empty, or one that was filled in, is fine."""
    ems = lab.root / "ems_system/repo/ems"
    (ems / ".env_example").write_text("DB_PASSWORD=change-me\nJWT_KEY='<your key>'\nOPTIONAL=\nPORT=8080\n")
    (ems / ".env").write_text("DB_PASSWORD=change-me\nJWT_KEY='s3cr3t-filled'\nOPTIONAL=\nPORT=8080\n")
    pulls_answer(lab)
    run = deploy(lab)
    assert run.code == Code.REFUSED and "still placeholders from the .env templates: ems:DB_PASSWORD:" in run.error
    assert "JWT_KEY" not in run.error and "OPTIONAL" not in run.error and "s3cr3t" not in run.stdout
    assert lab.commands("docker") == [] and not (lab.state / "releases.jsonl").exists()
    t = lab.target
    run = lab.run(deploy_program(t, list(t.system.stacks), intent(), allow_placeholders=True))
    assert run.code == 0, run.stdout


def test_services_without_a_healthcheck_are_reported(lab):
    """EVAonline's celery worker has no healthcheck: a release that breaks it would pass the gate unseen."""
    pulls_answer(lab)
    lab.answer("docker", "ps --filter *", "ems_system-ems ems Up 3 seconds (healthy)\n"
                                         "ems_system-sms worker Up 3 seconds\n"
                                         "ems_system-infra traefik Up 2 minutes\n"
                                         "monitoring grafana Up 2 days\n"
                                         "ems_system-sms beat Up 2 seconds (health: starting)\n")
    run = deploy(lab)
    assert run.code == 0
    assert run.result.all("unchecked") == [{"project": "ems_system-sms", "service": "worker"}]
    assert "ps --filter label=com.docker.compose.project --format" in " ".join(lab.commands("docker"))


def enlevohub(lab):
    """Seed 002's shape: one compose file running a backend and a frontend image, each with its variable."""
    (lab.root / "hosts.yml").write_text(
        (lab.root / "hosts.yml").read_text().replace("systems:\n", "systems:\n  enlevohub:\n    stacks:\n      app:\n"
        "        compose: repo/docker-compose.yml\n        images:\n"
        "          backend: {image: edumigsoft/enlevohub-backend, tag_var: BACKEND_TAG}\n"
        "          frontend: {image: edumigsoft/enlevohub-frontend, tag_var: FRONTEND_TAG}\n"
        "        scale: {backend: 3}\n", 1)
        .replace("systems: [ems_system]", "systems: [ems_system, enlevohub]"))
    target = inventory.load(lab.root / "hosts.yml").host("lab").targets("enlevohub")[0]
    Path(target.compose(target.system.stacks[0])).parent.mkdir(parents=True)
    Path(target.compose(target.system.stacks[0])).write_text("services: {}\n")
    (lab.root / "enlevohub/.secrets").mkdir(mode=0o700)
    (lab.root / "enlevohub/.secrets/github").write_text(lab.secrets.read_text())
    (lab.root / "enlevohub/.secrets/github").chmod(0o600)
    lab.healthy_host(target)
    lab.answer("docker", "pull *enlevohub-backend:*", captured="docker-pull.txt")
    lab.answer("docker", "pull *enlevohub-frontend:*", f"Digest: {FRONT}\n")
    return target


FRONT = "sha256:" + "f" * 64


def test_each_image_of_one_compose_file_gets_its_own_digest(lab):
    """EnlevoHub: the frontend was once pulled as enlevohub-frontend@<backend digest>. Each image line has its
    own variable, and each variable its own image's digest."""
    t = enlevohub(lab)
    run = lab.run(deploy_program(t, list(t.system.stacks), intent(tags={"backend": "v2", "frontend": "v1"})))
    assert run.code == 0, run.stdout + run.stderr
    env = (lab.root / "enlevohub/repo/.env").read_text()
    assert env == f"BACKEND_TAG=v2@{DIGEST}\nFRONTEND_TAG=v1@{FRONT}\nCOMPOSE_PROJECT_NAME=enlevohub-app\n"
    current = (lab.root / "enlevohub/state/current").read_text().splitlines()
    assert sorted(current[2:]) == [f"pin backend v2@{DIGEST}", f"pin frontend v1@{FRONT}"]


def test_a_failed_gate_puts_back_every_image_of_the_stack(lab):
    t = enlevohub(lab)
    state = lab.root / "enlevohub/state"
    state.mkdir()
    old_front = "v0@sha256:" + "0" * 64
    (state / "current").write_text(f"release r0\ntag v1\npin backend {OLD}\npin frontend {old_front}\n")
    lab.answer("docker", "compose -p enlevohub-app * up *", captured="compose-up-unhealthy.txt", code=1, once=True)
    run = lab.run(deploy_program(t, list(t.system.stacks), intent(tags={"backend": "v2", "frontend": "v2"})))
    assert run.code == Code.ROLLED_BACK, run.stdout
    env = (lab.root / "enlevohub/repo/.env").read_text()
    assert env == f"BACKEND_TAG={OLD}\nFRONTEND_TAG={old_front}\nCOMPOSE_PROJECT_NAME=enlevohub-app\n"
    ups = [c for c in lab.commands("docker") if " up " in c]
    assert len(ups) == 2 and all(c.endswith(" up -d --remove-orphans --scale backend=3") for c in ups), \
        "the replicas of hosts.yml on the deploy and on the restore"


def test_a_configured_template_is_the_one_checked(lab):
    """env_template: .env.production in hosts.yml: its placeholders count, the default names do not."""
    ems = lab.root / "ems_system/repo/ems"
    (ems / ".env_example").write_text("DB_PASSWORD=change-me\n")
    (ems / ".env.production").write_text("API_KEY=<your key>\n")
    (ems / ".env").write_text("DB_PASSWORD=change-me\nAPI_KEY=<your key>\n")
    pulls_answer(lab)
    t = lab.target
    stacks = [replace(s, env_template=".env.production") if s.name == "ems" else s for s in t.system.stacks]
    run = lab.run(deploy_program(t, stacks, intent()))
    assert run.code == Code.REFUSED and "still placeholders from the .env templates: ems:API_KEY:" in run.error
    assert "DB_PASSWORD" not in run.error


def test_values_hosts_yml_lists_count_as_placeholders(lab):
    """Seed 002's .env.docker ships DB_PASSWORD=enlevohub2026, a real-looking default: listed under
    placeholders: in hosts.yml, it refuses the deploy while the .env still has it; a changed value is fine."""
    ems = lab.root / "ems_system/repo/ems"
    (ems / ".env.docker").write_text("DB_PASSWORD=enlevohub2026\nLOG_LEVEL=info\n")
    (ems / ".env").write_text("DB_PASSWORD=enlevohub2026\nLOG_LEVEL=info\n")
    pulls_answer(lab)
    t = lab.target
    stacks = [replace(s, placeholders=("enlevohub2026", "info")) if s.name == "ems" else s for s in t.system.stacks]
    run = lab.run(deploy_program(t, stacks, intent()))
    assert run.code == Code.REFUSED and "ems:DB_PASSWORD ems:LOG_LEVEL:" in run.error
    assert "enlevohub2026" not in run.stdout.replace("run check_placeholders", ""), "values stay on the host"
    (ems / ".env").write_text("DB_PASSWORD=s0mething-else\nLOG_LEVEL=debug\n")
    assert lab.run(deploy_program(t, stacks, intent())).code == 0


def together(lab):
    """The lab's system with ems and sms marked independent (hosts.yml's together: [[ems, sms]])."""
    return replace(lab.target, system=replace(lab.target.system, together=(("ems", "sms"),)))


def test_independent_stacks_come_up_at_once_and_a_failure_restores_both(lab):
    pulls_answer(lab)
    lab.state.mkdir()
    (lab.state / "current").write_text(f"release r0\ntag v1.4.2\npin ems {OLD}\npin sms {OLD}\n")
    t = together(lab)
    program = deploy_program(t, list(t.system.stacks), intent())
    assert ("together", "ems", "sms") in program.steps
    run = lab.run(program)
    assert run.code == 0, run.stdout + run.stderr
    assert "@@step up ems sms at once" in run.stdout and "@@step up ems:" not in run.stdout
    assert sorted(ups(lab)) == ["compose -p ems_system-ems", "compose -p ems_system-infra", "compose -p ems_system-sms"]

    lab.answer("docker", "compose -p ems_system-sms * up *", captured="compose-up-unhealthy.txt", code=1, once=True)
    run = lab.run(deploy_program(t, list(t.system.stacks), intent(release="r2")))
    assert run.code == Code.ROLLED_BACK, run.stdout
    assert "fail sms:" in run.stdout
    restored = ups(lab)[6:]   # after infra, ems and sms of the first deploy and of this one
    assert restored == ["compose -p ems_system-ems", "compose -p ems_system-sms"], "both were switched: both go back"
    for app in ("ems", "sms"):
        assert f"IMAGE_TAG=v1.4.3@{DIGEST}\n" in (lab.root / f"ems_system/repo/{app}/.env").read_text()


RENDERED = "services:\n  app:\n    image: img:v1\n"   # what preflight's compose config prints for the stack
RUNS = "a" * 64     # the configuration hash on its running container


def as_running(lab, project: str, recorded: str = RUNS, health: str = "healthy", rendered_then: str = RENDERED):
    """A stack whose one container runs configuration RUNS on image ID sha256:1, and its record from the last
    gate it passed: ``rendered_then`` by preflight, service app with configuration hash ``recorded``."""
    stack = project.removeprefix("ems_system-")
    lab.answer("docker", f"compose -p {project} * config", RENDERED)
    (lab.state / "stacks").mkdir(exist_ok=True)
    (lab.state / "stacks" / f"{stack}.up").write_text(
        f"rendered {hashlib.sha256(rendered_then.encode()).hexdigest()}\napp {recorded}\n")
    lab.answer("docker", f"ps -aq --filter label=com.docker.compose.project={project} *", "c1\n")
    lab.answer("docker", "inspect --format {{index* c1", f"app {RUNS} running {health} sha256:1 img:v1\n")
    lab.answer("docker", "image inspect --format {{.Id}} img:v1", "sha256:1\n")
    lab.answer("docker", "inspect --format {{.Name}}* c1", f"/{project}-app-1 running healthy 0 unless-stopped\n")


def deployed_over(lab, current: str):
    pulls_answer(lab)
    lab.state.mkdir()
    (lab.state / "current").write_text(current)


def test_a_stack_that_would_not_change_is_not_brought_up_again_but_still_health_checked(lab):
    """No compose call asks: preflight's rendering and the container's hash are those recorded at its last gate."""
    deployed_over(lab, f"release r0\ntag v1.4.3\npin ems v1.4.3@{DIGEST}\npin sms {OLD}\n")
    as_running(lab, "ems_system-ems")
    run = deploy(lab)
    assert run.code == 0, run.stdout + run.stderr
    assert ups(lab) == ["compose -p ems_system-infra", "compose -p ems_system-sms"]
    assert "ems: as it runs (configuration, images, healthy containers): not brought up again" in run.stdout
    assert lab.commands("curl") == ["--globoff -fsS -k -o /dev/null --max-time 5 http://127.0.0.1:8080/health"], \
        "gate kept"
    assert not [c for c in lab.commands("docker") if "config --hash" in c], "compose is not asked"


def test_another_configuration_record_or_health_is_brought_up(lab):
    """Any doubt says up: the container runs another configuration than recorded, preflight renders another
    one (a changed compose file or .env), the record is missing or damaged, the container is unhealthy."""
    cases = {"another hash on the container": dict(recorded="b" * 64),
             "another rendering": dict(rendered_then="services: {}\n"),
             "unhealthy": dict(health="unhealthy"),
             "no record": dict(), "damaged record": dict()}
    for i, (case, kw) in enumerate(cases.items()):
        here = type(lab)(lab.path / f"case{i}")
        deployed_over(here, f"release r0\ntag v1.4.3\npin ems v1.4.3@{DIGEST}\n")
        as_running(here, "ems_system-ems", **kw)
        if case == "no record":
            (here.state / "stacks" / "ems.up").unlink()
        if case == "damaged record":
            (here.state / "stacks" / "ems.up").write_text((here.state / "stacks" / "ems.up").read_text()[:80])
        assert deploy(here).code == 0 and "compose -p ems_system-ems" in ups(here), case
        finished(here)


def test_a_stack_that_passed_its_gate_is_recorded_and_one_restored_is_not(lab):
    """record_up after the gate: the sha256 of preflight's rendering and the container's hash; the stack that
    failed and was put back keeps no record of the failed release's configuration."""
    pulls_answer(lab)
    lab.answer("docker", "compose -p ems_system-infra * config", RENDERED)
    lab.answer("docker", "ps -aq --filter label=com.docker.compose.project=ems_system-infra *", "c1\n")
    lab.answer("docker", "inspect --format {{.Name}}* c1", "/infra-1 running healthy 0 unless-stopped\n")
    lab.answer("docker", 'inspect --format {{index .Config.Labels "com.docker.compose.service"}} '
               '{{index .Config.Labels "com.docker.compose.config-hash"}} c1', f"proxy {RUNS}\n")
    lab.answer("docker", "image inspect --format {{.Id}} img:v1", "sha256:1\n")
    assert deploy(lab).code == 0
    assert (lab.state / "stacks" / "infra.up").read_text() == \
        f"rendered {hashlib.sha256(RENDERED.encode()).hexdigest()}\nproxy {RUNS}\n"
    lab.answer("docker", "compose -p ems_system-ems * up *", captured="compose-up-unhealthy.txt", code=1, once=True)
    for record in (lab.state / "stacks").iterdir():
        record.unlink()
    assert deploy(lab, release="r2").code == Code.ROLLED_BACK
    assert [p.name for p in (lab.state / "stacks").iterdir()] == ["infra.up"], "ems failed: not recorded"


def test_a_stack_whose_env_changed_records_the_rendering_it_runs_with(lab):
    """Issue 20 item 15: a service reading `env_file: .env` runs with the .env's new pin lines, which preflight's
    rendering (made before they were written) lacks: the stack is rendered again after its .env changed, and
    that rendering is recorded; a .env the release leaves as it was is not rendered twice."""
    pulls_answer(lab)
    ems = "compose -p ems_system-ems * config"
    lab.answer("docker", ems, "after the switch\n")
    lab.answer("docker", ems, RENDERED, once=True)
    lab.answer("docker", "ps -aq --filter label=com.docker.compose.project=ems_system-ems *", "c1\n")
    lab.answer("docker", "inspect --format {{.Name}}* c1", "/ems-1 running healthy 0 unless-stopped\n")
    lab.answer("docker", "inspect --format {{index .Config.Labels*config-hash*}} c1", f"ems {RUNS}\n")
    assert deploy(lab).code == 0
    assert (lab.state / "stacks" / "ems.up").read_text().splitlines()[0] == \
        "rendered " + hashlib.sha256(b"after the switch\n").hexdigest()
    assert len([c for c in lab.commands("docker") if c.startswith("compose -p ems_system-ems") and "config" in c]) == 2
    lab.answer("docker", ems, RENDERED, once=True)
    before = len(lab.commands("docker"))
    assert deploy(lab, release="r2").code == 0
    again = lab.commands("docker")[before:]
    assert len([c for c in again if c.startswith("compose -p ems_system-ems") and "config" in c]) == 1


def test_the_gate_waits_for_healthy_and_fails_at_once_on_unhealthy_or_exited(lab):
    """The tool's own wait after `up -d`: starting -> healthy passes; unhealthy, or a crash (exited 1) fails the
    gate at once (a health failure, not compose's: the previous release comes back, exit ROLLED_BACK)."""
    pulls_answer(lab)
    wait = "inspect --format {{.Name}}* c9"
    lab.answer("docker", "ps -aq --filter label=com.docker.compose.project=ems_system-ems *", "c9\n")
    lab.answer("docker", wait, "/ems-1 running healthy 0 unless-stopped\n")
    lab.answer("docker", wait, "/ems-1 running starting 0 unless-stopped\n", once=True)
    lab.answer("docker", "inspect --format {{index .Config.Labels*config-hash*}} c9", f"ems {RUNS}\n")
    assert deploy(lab).code == 0
    assert lab.commands("docker").count("inspect --format {{.Name}} {{.State.Status}} {{if .State.Health}}"
                                        "{{.State.Health.Status}}{{else}}none{{end}} {{.State.ExitCode}} "
                                        "{{.HostConfig.RestartPolicy.Name}} c9") == 2, "asked until healthy"
    lab.answer("docker", "logs --tail 30 ems-1", "panic: cannot reach postgres:5432\n")
    for state, said in (("running unhealthy 0", "container ems-1 is unhealthy"),
                        ("restarting starting 1", "container ems-1 exited (1) and is restarting")):
        lab.answer("docker", wait, f"/ems-1 {state} unless-stopped\n", once=True)
        run = deploy(lab, release=f"r-{state.split()[0]}")
        assert run.code == Code.ROLLED_BACK and f"fail ems: {said}" in run.stdout, run.stdout
        assert f"{said}\n@@info the last lines of ems-1:\n@@info   | panic: cannot reach postgres:5432" in run.stdout


def test_a_docker_inspect_that_fails_during_the_gate_is_asked_again_never_taken_for_healthy(lab):
    """A container gone between the listing and the look (or a daemon error) made `docker inspect` fail; its
    empty answer was read as "nothing pending" and the gate passed. It is asked again until the wait ends."""
    pulls_answer(lab)
    wait = f"inspect --format {{{{.Name}}}}* {lab.container('ems')}"
    lab.answer("docker", wait, "Error response from daemon: No such container: 5e1f\n", code=1)
    run = deploy(lab)
    assert run.code == Code.BROKEN, run.stdout   # (a first release: nothing to go back to)
    assert "fail ems: the containers of ems (docker inspect failed: Error response from daemon: No such container" \
        in run.stdout and "not healthy after 5s" in run.stdout
    lab.answer("docker", wait, "/ems-1 running healthy 0 unless-stopped\n")
    lab.answer("docker", wait, "Error response from daemon: No such container: 5e1f\n", code=1, once=True)
    assert deploy(lab, release="r2").code == 0, "a look that fails once is just asked again"
