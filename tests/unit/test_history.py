"""Release history: folding state lines, damaged lines reported, choosing rollback targets."""
import json

import pytest

from tasks.core import history
from tasks.core.errors import BAD_INPUT, ToolError


def line(rid, tag, state, images=None, action="deploy"):
    rec = {"release": rid, "tag": tag, "action": action, "by": "ana@laptop", "from": "laptop", "state": state,
           "at": f"2026-11-23T00:00:{rid[-2:]}Z", "images": images or {"ems": f"{tag}@sha256:{tag[-1] * 64}"}}
    return json.dumps(rec)


HISTORY = "\n".join([
    line("r01", "v1.4.2", "deploying"), line("r01", "v1.4.2", "good"),
    line("r02", "v1.4.3", "deploying"), line("r02", "v1.4.3", "good"),
    line("r03", "v1.5.0", "deploying"), line("r03", "v1.5.0", "failed"),
])


def test_lines_fold_into_releases_in_order():
    rels = history.parse(HISTORY)
    assert [(r.id, r.tag, r.state) for r in rels] == [("r01", "v1.4.2", "good"), ("r02", "v1.4.3", "good"),
                                                       ("r03", "v1.5.0", "failed")]
    assert rels[0].finished.endswith("01Z") and rels[0].pins["ems"].startswith("v1.4.2@sha256:")


def test_damaged_line_is_reported_with_its_number():
    text = HISTORY + "\n{not json\n"
    with pytest.raises(ToolError, match="damaged at line 7") as e:
        history.parse(text, "vps1:/root/s/state/releases.jsonl")
    assert e.value.code == BAD_INPUT and "vps1:/root/s/state/releases.jsonl" in str(e.value)
    with pytest.raises(ToolError, match="line 2"):
        history.parse(line("r1", "v1", "good") + '\n{"release": "x"}\n')


def test_empty_history():
    assert history.parse("") == [] and history.previous_good([], None) is None


def test_previous_good_skips_failed_and_running():
    rels = history.parse(HISTORY)
    assert history.previous_good(rels, "r02").id == "r01"
    assert history.previous_good(rels, "r01").id == "r02"


def test_previous_good_skips_releases_running_the_same_images():
    rels = history.parse(HISTORY + "\n" + line("r04", "v1.4.3", "good", action="rollback"))
    # r04 re-runs v1.4.3's images: going "back" to r02 would change nothing
    assert history.previous_good(rels, "r04").id == "r01"


def test_find_good_and_its_errors():
    rels = history.parse(HISTORY)
    assert history.find_good(rels, "v1.4.2").id == "r01"
    with pytest.raises(ToolError, match=r"v9 is not in the release history; good releases: v1.4.3, v1.4.2"):
        history.find_good(rels, "v9")
    with pytest.raises(ToolError, match="never passed its health gate"):
        history.find_good(rels, "v1.5.0")



@pytest.mark.parametrize("damage", [
    {"images": {"ems": "v1@sha256:" + "a" * 64 + "\nDB_PASSWORD=x"}},   # a pin with a newline would write a variable
    {"images": {"ems": "latest"}}, {"images": ["ems"]}, {"images": {"../x": "v1@sha256:" + "a" * 64}},
    {"tag": ["v1"]}, {"tag": "v1;rm -rf /"}, {"state": 3}, {"release": {"x": 1}}, {"by": None},
    {"infra": {"infra/traefik": "traefik:v3"}}, {"infra": {"../x/y": "traefik:v3@sha256:" + "a" * 64}},
    {"infra": {"infra/traefik": "traefik:v3@sha256:" + "a" * 64 + "; reboot"}}, {"infra": ["traefik"]},
    {"infra": {"infra/traefik": "-v:v3@sha256:" + "a" * 64}}, {"infra": {"infra": "traefik:v3@sha256:" + "a" * 64}},
    {"jobs": {"app/migrate": {"result": "ok", "exit": "0", "seconds": 1}}}, {"jobs": ["app/migrate"]},
    {"jobs": {"app/migrate": {"result": "maybe", "exit": 0, "seconds": 1}}},
    {"jobs": {"../x": {"result": "ok", "exit": 0, "seconds": 1}}},
    {"jobs": {"app/migrate": {"result": "ok", "exit": True, "seconds": 1}}},
])
def test_values_read_back_from_the_host_are_checked_like_input(damage):
    rec = json.loads(line("r01", "v1.4.2", "good"))
    text = line("r00", "v1.4.1", "good") + "\n" + json.dumps({**rec, **damage})
    with pytest.raises(ToolError, match="damaged at line 2") as e:
        history.parse(text)
    assert e.value.code == BAD_INPUT


def test_a_release_keeps_its_jobs_results_once_it_ended():
    ran = {"app/migrate": {"result": "failed", "exit": 1, "seconds": 4, "extra": "dropped"}}
    rec = {**json.loads(line("r01", "v1", "failed")), "jobs": ran}
    (rel,) = history.parse(line("r01", "v1", "deploying") + "\n" + json.dumps(rec))
    assert rel.jobs == {"app/migrate": {"result": "failed", "exit": 1, "seconds": 4}} == rel.as_dict()["jobs"]


def config_line(rid, commit, state="good", files=None):
    rec = json.loads(line(rid, "config", state, images={"_": "x"}))
    rec["images"] = {}
    rec["config"] = {"commit": commit, "dirty": False, "files": files or {"repo/a.yml": "a" * 64}}
    return json.dumps(rec)


def test_a_release_keeps_the_configuration_it_ran_with():
    rels = history.parse(config_line("r01", "1" * 40))
    assert rels[0].commit == "1" * 40 and rels[0].config["files"] == {"repo/a.yml": "a" * 64}
    assert rels[0].as_dict()["config"]["commit"] == "1" * 40


@pytest.mark.parametrize("config", [
    {"commit": "HEAD", "dirty": False, "files": {}}, {"commit": "", "dirty": "no", "files": {}},
    {"commit": "", "dirty": False, "files": {"a": "not-a-hash"}}, {"commit": "", "dirty": False, "files": []},
    "text"])
def test_a_damaged_configuration_record_is_a_damaged_line(config):
    rec = json.loads(config_line("r01", ""))
    rec["config"] = config
    with pytest.raises(ToolError, match="damaged at line 1"):
        history.parse(json.dumps(rec))


def test_a_system_without_images_rolls_back_to_its_previous_commit():
    """Plantão's PostgreSQL: only public images, so its releases differ by the commit of repo/ alone."""
    rels = history.parse("\n".join([config_line("r01", "1" * 40), config_line("r02", "2" * 40),
                                    config_line("r03", "2" * 40)]))
    assert history.previous_good(rels, "r03").id == "r01"
    assert history.find_good(rels, "r02").id == "r02", "a release id names it when its tag does not"


def test_a_release_that_runs_what_runs_now_is_not_a_step_back():
    """Issue 18 item 2: v1, v2, then `deploy --stack postgres` (a config-only release that records the whole
    system: v2's pins, the same commit). A plain rollback must go to v1, not "back" to v2, which already runs
    (with --with-data that restored the config-only deploy's dump over rows written since)."""
    v1, v2 = {"ems": "v1@sha256:" + "1" * 64}, {"ems": "v2@sha256:" + "2" * 64}
    rels = history.parse("\n".join([line("r01", "v1", "good", v1), line("r02", "v2", "good", v2),
                                    line("r03", "v2", "good", v2)]))
    assert history.previous_good(rels, "r03", v2).id == "r01"


def test_a_partial_record_differs_only_by_what_it_recorded():
    """A release recorded before releases named the whole system (only the app it deployed): it is a step
    back only if that app runs something else now; the pins that run (state/current) are what counts."""
    now = {"ems": "v2@sha256:" + "2" * 64, "sms": "v1@sha256:" + "1" * 64}
    rels = history.parse("\n".join([line("r01", "v1", "good", {"ems": "v1@sha256:" + "1" * 64, "sms": now["sms"]}),
                                    line("r02", "v2", "good", {"ems": now["ems"], "sms": "v2@sha256:" + "2" * 64}),
                                    line("r03", "v1", "good", {"sms": now["sms"]})]))
    assert history.previous_good(rels, "r03", now).id == "r02"
    assert history.previous_good(rels, "r02", {"ems": now["ems"], "sms": "v2@sha256:" + "2" * 64}).id == "r03"


def test_a_release_keeps_what_its_services_that_pin_nothing_ran():
    rec = json.loads(line("r01", "v1.4.2", "good"))
    infra = {"postgres/postgres": "postgres:15-alpine@sha256:" + "b" * 64,
             "infra/traefik": "10.200.0.1:5000/sandbox/proxy:stable@sha256:" + "c" * 64}
    rels = history.parse(line("r01", "v1.4.2", "deploying") + "\n" + json.dumps({**rec, "infra": infra}))
    assert rels[0].infra == infra and rels[0].as_dict()["infra"] == infra


def test_a_release_whose_infrastructure_ran_another_digest_is_a_step_back():
    def with_infra(rid, state, digest):
        return json.dumps({**json.loads(line(rid, "v1.4.3", state)), "infra": {"infra/traefik": f"traefik:v3@{digest}"}})
    text = "\n".join([with_infra("r01", "good", "sha256:" + "1" * 64), with_infra("r02", "good", "sha256:" + "2" * 64)])
    rels = history.parse(text)
    assert history.previous_good(rels, "r02").id == "r01"
    same = "\n".join([with_infra("r01", "good", "sha256:" + "2" * 64), with_infra("r02", "good", "sha256:" + "2" * 64)])
    assert history.previous_good(history.parse(same), "r02") is None
