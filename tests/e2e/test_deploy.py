"""Deploy, health gate, rollback and history, end to end on the sandbox VPS."""
import time

import yaml

from sandbox import images, system
from tasks.core import errors


def test_deploy_two_releases_records_both_and_serves_the_newest(vps):
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    assert vps.version() == "v1.4.2"
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    assert vps.version() == "v1.4.3"
    rels = vps.releases()
    assert [(r["tag"], r["state"]) for r in rels] == [("v1.4.3", "good"), ("v1.4.2", "good")]
    assert rels[0]["running"] and not rels[1]["running"]
    assert all(v.startswith("v1.4.3@sha256:") for v in rels[0]["images"].values())
    assert set(rels[0]["images"]) == {"ems", "sms"}


def test_failed_health_gate_puts_the_previous_release_back(vps):
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    res = vps.fab("deploy", "--host", "t1", "--tag", "v1.5.0")
    assert res.returncode == errors.ROLLED_BACK, res.stdout + res.stderr
    assert "v1.5.0 failed its health gate" in res.stderr and "v1.4.3 is back" in res.stderr
    assert "error: this build serves no /health" in res.stdout, "the failing container's last lines, shown"
    assert vps.version() == "v1.4.3"
    rels = vps.releases()
    assert (rels[0]["tag"], rels[0]["state"]) == ("v1.5.0", "failed")
    assert vps.running()["tag"] == "v1.4.3"
    audit = (vps.state / "audit.jsonl").read_text().splitlines()
    assert '"result":"rolled-back","exit":13' in audit[-1]


def test_first_release_failing_has_nothing_to_restore(vps):
    res = vps.fab("deploy", "--host", "t1", "--tag", "v1.5.0")
    assert res.returncode == errors.NEEDS_ATTENTION, res.stdout + res.stderr
    assert "could not be restored" in res.stderr
    assert vps.releases()[0]["state"] == "failed"


def test_rollback_to_a_named_release_and_to_the_previous_one(vps):
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    vps.ok("rollback", "--host", "t1", "--to", "v1.4.2")
    assert vps.version() == "v1.4.2" and vps.running()["tag"] == "v1.4.2"
    vps.ok("rollback", "--host", "t1")
    assert vps.version() == "v1.4.3" and vps.running()["tag"] == "v1.4.3"
    assert [r["action"] for r in vps.releases()[:2]] == ["rollback", "rollback"]


def test_deploy_without_tag_redeploys_what_runs(vps):
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    vps.ok("deploy", "--host", "t1")
    assert vps.releases()[0]["tag"] == "v1.4.3" and vps.version() == "v1.4.3"


def test_the_first_identical_redeploy_after_a_change_leaves_every_stack_running(vps):
    """Issue 20 item 15: the stacks read their .env through `env_file: .env`, so what compose ran after the
    v1.4.2 -> v1.4.3 switch includes the new IMAGE_TAG line; the record of that gate must be of that rendering,
    not of preflight's (made while the .env still said v1.4.2), or the next identical deploy rolls them again."""
    compose = vps.host.root / "ems_system/repo/servers/ems/container/docker-compose.prod.yml"
    compose.write_text(compose.read_text().replace("    restart: unless-stopped\n",
                                                   "    restart: unless-stopped\n    env_file: .env\n", 1))
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    before = vps.containers()
    res = vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    assert "ems: as it runs (configuration, images, healthy containers): not brought up again" in res.stdout
    assert vps.containers() == before


def test_rollback_restores_the_original_bits_of_a_repushed_tag(vps):
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    assert vps.host.http(8080, "/build") == "original"
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    builder = vps.sb.builder
    try:
        builder.push_variant(vps.sb.registry, images.APPS[0], "v1.4.2", build="repushed")
        vps.host.inside("docker image prune -af >/dev/null")  # the host must fetch by digest, not find it
        vps.ok("rollback", "--host", "t1", "--to", "v1.4.2")
        assert vps.version() == "v1.4.2"
        assert vps.host.http(8080, "/build") == "original"
    finally:
        builder.push_variant(vps.sb.registry, images.APPS[0], "v1.4.2", build="original")


def test_the_pinned_release_survives_a_manual_compose_up(vps):
    """An operator's `docker compose up -d` in the stack folder keeps the same project and release."""
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    before = vps.containers()
    vps.host.inside("cd /root/ems_system/repo/servers/ems/container && docker compose -f docker-compose.prod.yml up -d --wait")
    assert vps.containers() == before
    assert vps.version() == "v1.4.3"


def test_a_second_deploy_is_refused_while_the_lock_is_held(vps):
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    first = vps.spawn("deploy", "--host", "t1", "--tag", "v1.4.3", env={"FAB_OPERATOR": "alice@laptop"})
    lock = vps.state / "lock" / "info"
    deadline = time.monotonic() + 30
    while not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    second = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.2")
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out
    assert second.returncode == errors.BUSY, second.stdout + second.stderr
    assert "another deploy holds the lock" in second.stderr and "alice@laptop" in second.stderr
    assert vps.version() == "v1.4.3" and not lock.exists()


def test_a_stale_lock_names_its_holder_and_unlock_force_clears_it(vps):
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    (vps.state / "lock").mkdir()
    (vps.state / "lock" / "info").write_text("bob@ci since 2026-11-20T10:00:00Z (deploy v9, release x, pid 4194304)\n")
    res = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3")
    assert res.returncode == errors.BUSY and "bob@ci since 2026-11-20T10:00:00Z" in res.stderr
    assert "its process is gone, so the lock is stale" in res.stderr  # 4194304 = 2^22, above any pid_max
    assert "held by bob@ci" in vps.ok("status", "--host", "t1").stdout
    res = vps.fab("unlock", "--host", "t1")
    assert res.returncode == errors.BAD_INPUT and "--force" in res.stderr
    assert (vps.state / "lock").exists()
    vps.ok("unlock", "--host", "t1", "--force")
    assert not (vps.state / "lock").exists()
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    assert vps.version() == "v1.4.3"


def test_status_shows_release_containers_and_health(vps):
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    out = vps.ok("status", "--host", "t1").stdout
    assert "release v1.4.3" in out and "lock: free" in out and "mode 600" in out
    for stack in ("infra", "postgres", "ems", "sms"):
        assert stack in out
    assert out.count("healthy") >= 4


def test_each_app_keeps_its_own_version(vps):
    """EMS and SMS are released separately: --tag sms=... moves only sms, and a plain deploy re-deploys each
    app's own version (before, it moved ems to the version sms had been given)."""
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    ems_before = vps.running()["images"]["ems"]
    vps.ok("deploy", "--host", "t1", "--tag", "sms=v1.4.2")
    rel = vps.running()
    assert rel["tag"] == "ems=v1.4.3,sms=v1.4.2" and rel["images"]["ems"] == ems_before
    assert rel["images"]["sms"].startswith("v1.4.2@sha256:") and vps.version() == "v1.4.3"
    vps.ok("deploy", "--host", "t1")
    rel = vps.running()
    assert rel["images"]["ems"] == ems_before and rel["images"]["sms"].startswith("v1.4.2@sha256:")
    assert vps.version() == "v1.4.3"
    assert "ems=v1.4.3,sms=v1.4.2" in vps.ok("status", "--host", "t1").stdout
    res = vps.fab("deploy", "--host", "t1", "--tag", "web=v1.4.3")
    assert res.returncode == errors.BAD_INPUT and "not an app of this deploy" in res.stderr
    vps.ok("rollback", "--host", "t1", "--to", "v1.4.3")
    assert all(p.startswith("v1.4.3@") for p in vps.running()["images"].values())


def test_a_service_without_a_healthcheck_is_warned_about(vps):
    """EVAonline's worker has no healthcheck: the gate can only see it start, and the operator is told."""
    compose = vps.host.root / "ems_system/repo/servers/sms/container/docker-compose.prod.yml"
    compose.write_text(compose.read_text().replace(system.HEALTH, ""))
    out = vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3").stdout
    assert "no healthcheck on ems_system-sms/sms:" in out and "ems_system-ems/" not in out


def test_two_images_in_one_compose_file_each_run_their_own_digest(vps):
    """EnlevoHub's single compose file (issue 9, problem 3): the second image was pulled with the first one's
    digest and the deploy failed. Here sms's compose file also runs a "front" service on the ems image, with its
    own variable: each service runs its own image's digest, and each moves on its own."""
    compose = vps.host.root / "ems_system/repo/servers/sms/container/docker-compose.prod.yml"
    text = compose.read_text()
    front = text.split("services:\n", 1)[1].replace("  sms:\n", "  front:\n", 1).replace("sms_server:${IMAGE_TAG",
            "ems_server:${FRONT_TAG").replace("127.0.0.1:8081:8080", "127.0.0.1:8082:8080").replace("/sms", "/front")
    compose.write_text(text + front)
    inv = yaml.safe_load(vps.inventory.read_text())
    sms = inv["systems"]["ems_system"]["stacks"]["sms"]
    del sms["image"]
    sms["images"] = {"sms": {"image": "edumigsoft/sms_server", "tag_var": "IMAGE_TAG"},
                     "front": {"image": "edumigsoft/ems_server", "tag_var": "FRONT_TAG"}}
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))

    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    pins = vps.running()["images"]
    assert set(pins) == {"ems", "sms", "front"}
    assert pins["front"] == pins["ems"] != pins["sms"], "front runs the ems image's digest, not sms's"
    for service, app in (("front", "ems"), ("sms", "sms")):
        ref = vps.host.docker("inspect", "-f", "{{.Config.Image}}", f"ems_system-sms-{service}-1").stdout.strip()
        assert ref == f"10.200.0.1:5000/edumigsoft/{app}_server:{pins[app]}"
    assert vps.host.http(8082, "/version") == "v1.4.3" and vps.host.http(8082, "/app") == "edumigsoft/ems_server"
    vps.ok("deploy", "--host", "t1", "--tag", "front=v1.4.2")
    assert vps.host.http(8082, "/version") == "v1.4.2" and vps.host.http(8081, "/version") == "v1.4.3"
    assert vps.running()["tag"] == "ems=v1.4.3,front=v1.4.2,sms=v1.4.3"
