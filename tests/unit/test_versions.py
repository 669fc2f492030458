"""Versions per app: --tag for all or stack=tag for some, a release's label, and what a plain deploy
re-deploys (each stack its own tag, never another stack's). No SSH: what runs is given."""
import json
from dataclasses import replace

import pytest

from tasks import deploy as deploy_task
from tasks import rollback as rb
from tasks.core import history, inventory
from tasks.core.errors import BAD_INPUT, ToolError
from tasks.core.grammar import check_label, check_tags
from tasks.core.programs.deploy import release_label
from tasks.core.programs.state import Current, State

from .test_history import line
from .test_programs import REPO

E2, S1 = "v2.0.1@sha256:" + "e" * 64, "v1.4.3@sha256:" + "5" * 64


@pytest.fixture
def target():
    return inventory.load(REPO / "hosts.yml").host("vps1").targets()[0]


def test_one_tag_or_stack_tag_pairs():
    assert check_tags("v1.4.3") == "v1.4.3"
    assert check_tags("ems=v2.0.1,sms=v1.4.3") == {"ems": "v2.0.1", "sms": "v1.4.3"}


@pytest.mark.parametrize("bad", ["ems=", "=v1", "ems=v1,ems=v2", "ems=v1;rm -rf /", "a b=v1", "ems=v1,", "../x=v1"])
def test_bad_tag_choices_are_refused(bad):
    with pytest.raises(ToolError) as e:
        check_tags(bad)
    assert e.value.code == BAD_INPUT


def test_a_release_is_labelled_by_its_one_tag_or_by_each_stacks():
    assert release_label({"ems": "v1.4.3", "sms": "v1.4.3"}, {}) == "v1.4.3"
    assert release_label({"ems": "v2.0.1"}, {"sms": S1}) == "ems=v2.0.1,sms=v1.4.3"
    assert check_label("ems=v2.0.1,sms=v1.4.3") and check_label("v1.4.3")
    rec = ('{"release":"r1","tag":"ems=v2.0.1,sms=v1.4.3","action":"deploy","by":"a","from":"b","state":"good",'
           '"at":"2026-11-26T00:00:00Z","images":{}}')
    assert history.parse(rec)[0].tag == "ems=v2.0.1,sms=v1.4.3"


def test_a_plain_deploy_pulls_each_stacks_own_tag_again(target):
    """The bug: after `--tag v1 --stack sms`, a plain deploy moved ems from v2 to v1 (one tag per system)."""
    assert deploy_task._versions(None, {"ems": E2, "sms": S1}, target, ["ems", "sms"], []) == ({"ems": "v2.0.1", "sms": "v1.4.3"}, {})


def test_stack_tag_pairs_pull_those_and_keep_the_others_exactly(target):
    assert deploy_task._versions({"sms": "v1.5.0"}, {"ems": E2, "sms": S1}, target, ["ems", "sms"], []) == ({"sms": "v1.5.0"}, {"ems": E2})
    assert deploy_task._versions("v3", None, target, ["ems", "sms"], []) == ({"ems": "v3", "sms": "v3"}, {})


def test_what_cannot_be_known_is_asked_for(target):
    with pytest.raises(ToolError, match="--dry-run --offline needs a tag for every app"):
        deploy_task._versions({"sms": "v1"}, None, target, ["ems", "sms"], [])
    with pytest.raises(ToolError, match="nothing is deployed for ems"):
        deploy_task._versions(None, {"sms": S1}, target, ["ems", "sms"], [])
    with pytest.raises(ToolError, match="--tag names web, not an app of this deploy") as e:
        deploy_task._check_named({"web": "v1"}, [(target, list(target.system.stacks))])
    assert e.value.code == BAD_INPUT
    with pytest.raises(ToolError, match="--tag names infra"):  # a stack the tool does not pin
        deploy_task._check_named({"infra": "v1"}, [(target, list(target.system.stacks))])


def test_a_tag_for_a_deploy_without_images_is_refused(target):
    """`--stack infra --tag v1` used to record a release with an empty label (a history line the tool then
    called damaged): there is no image to set a tag for."""
    with pytest.raises(ToolError, match="pins no image") as e:
        deploy_task._check_named("v1", [(target, [target.system.stacks[0]])])
    assert e.value.code == BAD_INPUT
    assert release_label({}, {}) == "config"


@pytest.mark.parametrize("ref", ["main", "v2.1.0", "release/2.1", "a" * 40])
def test_git_refs(ref):
    from tasks.core.grammar import check_ref
    assert check_ref(ref) == ref


@pytest.mark.parametrize("ref", ["-b", "--upload-pack=x", "a..b", "x/", "x.", ".x", "a b", "a;b", "a//b", "$(x)", ""])
def test_git_refs_that_git_could_read_as_more_than_a_name_are_refused(ref):
    from tasks.core.grammar import check_ref
    with pytest.raises(ToolError) as e:
        check_ref(ref)
    assert e.value.code == BAD_INPUT


def test_a_binary_without_its_artifact_keeps_what_runs(target):
    """Seed 003: `--tag v3` with no --artifact for the binary moves the images and leaves the binary as it runs."""
    binary = "v2@sha256:" + "b" * 64
    pins = {"ems": E2, "sms": S1, "escala": binary}
    assert deploy_task._versions("v3", pins, target, ["ems", "sms", "escala"], ["escala"]) == \
        ({"ems": "v3", "sms": "v3"}, {"escala": binary})
    assert deploy_task._versions(None, pins, target, ["ems", "escala"], ["escala"]) == \
        ({"ems": "v2.0.1"}, {"escala": binary})
    with pytest.raises(ToolError, match="nothing is deployed for escala .* with --tag and --artifact"):
        deploy_task._versions("v3", {"ems": E2}, target, ["ems", "escala"], ["escala"])


def test_over_several_hosts_each_host_takes_the_tags_of_its_own_apps(target, monkeypatch):
    """--all --tag backend=v2 over seed 002's servers: the database host (no app) brings its stacks up, each
    app host pulls the apps it runs; a name no host runs is refused."""
    db_host = replace(target, system=replace(target.system, stacks=target.system.stacks[:2]))
    deploy_task._check_named({"ems": "v2"}, [(db_host, list(db_host.system.stacks)), (target, list(target.system.stacks))])
    assert deploy_task._versions({"ems": "v2"}, None, db_host, [], []) == ({}, {})
    assert deploy_task._versions("v2", None, db_host, [], []) == ({}, {})


def _fleet(target):
    """Seed 002's shape: a database host whose stacks pin nothing (en4) and an app host (en1)."""
    db = replace(target, host=replace(target.host, name="en4"), system=replace(target.system, stacks=target.system.stacks[:2]))
    return db, replace(target, host=replace(target.host, name="en1"))


def _hist(*lines):
    return history.parse("\n".join(lines))


def test_a_fleet_rollback_to_a_tag_takes_each_hosts_release_of_that_run(target):
    """Issue 18 item 3: `rollback --all --to v1` was refused (exit 2, no host named) because the database host's
    releases are all `config`: it goes back to its own release of the run that deployed v1 elsewhere (the same
    release id), or is left alone when that run did not reach it; a refusal names its host."""
    db, app = _fleet(target)
    running = {"ems": "v2@sha256:" + "2" * 64}
    db_hist = _hist(line_cfg("r01"), line_cfg("r02"))
    app_hist = _hist(*(line_app(r, t) for r, t in (("r01", "v1"), ("r02", "v2"))))
    states = {db.label: State(db_hist, Current("r02", "config", {}), "", None),
              app.label: State(app_hist, Current("r02", "v2", running), "", None)}
    chosen = rb._targets([db, app], states, "v1", False)
    assert chosen[db.label].id == "r01" and chosen[app.label].id == "r01"
    states[db.label] = State(_hist(line_cfg("r03")), Current("r03", "config", {}), "", None)
    assert rb._targets([db, app], states, "v1", False)[db.label] is False, "left alone: v1's run never reached it"
    states[app.label] = State(_hist(line_app("r02", "v2")), Current("r02", "v2", running), "", None)
    with pytest.raises(ToolError, match=r"^en1/ems_system: v1 is not in the release history") as e:
        rb._targets([db, app], states, "v1", False)
    assert e.value.code == BAD_INPUT
    with pytest.raises(ToolError, match=r"^en1/ems_system: v1 is not in"):
        rb._targets([app], states, "v1", False)


def line_cfg(rid):
    """A good release of a host whose stacks pin nothing."""
    rec = json.loads(line(rid, "config", "good"))
    rec["images"] = {}
    return json.dumps(rec)


def line_app(rid, tag):
    return line(rid, tag, "good")
