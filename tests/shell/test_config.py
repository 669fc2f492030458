"""The configuration a release runs with (issue 9, problem 9), run whole in the deploy program under bash
with stub docker and a real git (fast tier): the commit of repo/ and the hashes of its compose files and .env
files in the history, --ref moving repo/ before anything stops, and the move undone when the deploy is
refused or its release fails."""
import json
import subprocess

from tasks.core.programs.deploy import deploy_program
from tasks.core.programs.protocol import Code

from .test_deploy_program import OLD, history, intent, pulls_answer

EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # sha256 of nothing
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "HOME": "/nonexistent"}


def git(cwd, *args) -> str:
    return subprocess.run(["git", "-c", "init.defaultBranch=main", *args], cwd=cwd, env=GIT_ENV, check=True,
                          capture_output=True, text=True).stdout.strip()


def origin_and_checkout(lab):
    """repo/ cloned from a bare origin holding v1 (the compose files as they are) and v2 (ems changed)."""
    repo = lab.root / "ems_system/repo"
    (repo / ".gitignore").write_text(".env\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1")
    git(repo, "tag", "v1")
    (repo / "ems/docker-compose.yml").write_text("services: {ems: {image: x}}\n")
    git(repo, "commit", "-qam", "v2")
    git(repo, "tag", "v2")
    bare = lab.path / "origin.git"
    git(lab.path, "clone", "-q", "--bare", str(repo), str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "checkout", "-q", "--detach", "v1")
    return repo, git(repo, "rev-parse", "v1"), git(repo, "rev-parse", "v2")


def run(lab, **kw):
    t = lab.target
    return lab.run(deploy_program(t, list(t.system.stacks), intent(**kw)))


def test_a_release_records_its_commit_and_the_hashes_of_its_files(lab):
    repo, v1, _ = origin_and_checkout(lab)
    (repo / "ems/.env").write_text(f"JWT_KEY=s3cr3t-value\nIMAGE_TAG={OLD}\n")
    pulls_answer(lab)
    assert run(lab).code == 0
    config = history(lab)[0]["config"]
    assert config["commit"] == v1 and config["dirty"] is False
    assert sorted(config["files"]) == ["repo/ems/.env", "repo/ems/docker-compose.yml", "repo/infra/.env",
                                       "repo/infra/docker-compose.yml", "repo/sms/.env", "repo/sms/docker-compose.yml"]
    assert config["files"]["repo/infra/.env"] == EMPTY, "not there yet: what the tool will create, no values"
    env_hash = subprocess.run(["sha256sum"], input="JWT_KEY=s3cr3t-value\n", capture_output=True,
                              text=True).stdout.split()[0]
    assert config["files"]["repo/ems/.env"] == env_hash, "the .env's own values, without the tool's pins"
    assert "s3cr3t" not in (lab.state / "releases.jsonl").read_text()


def test_ref_moves_repo_to_a_tag_of_its_origin_before_anything_stops(lab):
    repo, _, v2 = origin_and_checkout(lab)
    pulls_answer(lab)
    res = run(lab, ref="v2")
    assert res.code == 0, res.stdout
    assert git(repo, "rev-parse", "HEAD") == v2 and history(lab)[-1]["config"]["commit"] == v2
    assert res.result.one("config_moved")["to"] == v2


def test_a_failed_release_puts_repo_back_on_its_commit(lab):
    repo, v1, _ = origin_and_checkout(lab)
    pulls_answer(lab)
    lab.state.mkdir()
    (lab.state / "current").write_text(f"release r0\ntag v1.4.2\npin ems {OLD}\npin sms {OLD}\n")
    lab.answer("docker", "compose -p ems_system-ems * up *", captured="compose-up-unhealthy.txt", code=1, once=True)
    res = run(lab, ref="v2")
    assert res.code == Code.ROLLED_BACK, res.stdout
    assert git(repo, "rev-parse", "HEAD") == v1


def test_a_refused_deploy_puts_repo_back_on_its_commit(lab):
    repo, v1, _ = origin_and_checkout(lab)
    pulls_answer(lab)
    lab.answer("docker", "compose -p ems_system-infra * config", "yaml: line 1: bad\n", code=1, stderr=True)
    res = run(lab, ref="v2")
    assert res.code == Code.REFUSED and git(repo, "rev-parse", "HEAD") == v1
    assert "repo/ is back on" in res.stdout


def test_local_changes_or_an_unknown_ref_refuse_and_change_nothing(lab):
    repo, v1, _ = origin_and_checkout(lab)
    (repo / "infra/docker-compose.yml").write_text("services: {edited: {image: y}}\n")
    res = run(lab, ref="v2")
    assert res.code == Code.REFUSED and "has local changes to tracked files" in res.error
    assert lab.commands("docker") == [] and git(repo, "rev-parse", "HEAD") == v1
    git(repo, "checkout", "-q", "--", ".")
    res = run(lab, ref="no-such-tag")
    assert res.code == Code.REFUSED and "no-such-tag is not a branch, tag or commit" in res.error
    assert not (lab.state / "releases.jsonl").exists()


def test_history_keeps_working_without_git(lab):
    pulls_answer(lab)
    assert run(lab).code == 0
    assert history(lab)[0]["config"]["commit"] == "" and json.dumps(history(lab)[0]["config"]["files"])


def test_a_deploy_of_one_stack_records_the_whole_system(lab):
    """Issue 18 item 1: `--tag v1.4.2 --stack sms` after a full v1.4.3: the release names what runs after it:
    ems's pin (kept, never pulled) beside sms's new one, the label ems=v1.4.3,sms=v1.4.2, and every stack's
    files (ems's as the running release recorded them, sms's hashed again)."""
    from tasks import deploy as deploy_task
    from tasks.core import history as hist
    from tasks.core.programs.deploy import release_label, untouched
    from tasks.core.programs.state import Current, State
    origin_and_checkout(lab)
    pulls_answer(lab)
    assert run(lab).code == 0
    full = history(lab)[-1]
    current = (lab.state / "current").read_text().splitlines()
    pins = {w[1]: w[2] for w in (ln.split() for ln in current) if w[0] == "pin"}
    state = State(hist.parse((lab.state / "releases.jsonl").read_text()), Current("r1", "v1.4.3", pins), "", None)
    t = lab.target
    sms = [s for s in t.system.stacks if s.name == "sms"]
    rest = untouched(state, t, sms)
    tags, kept = deploy_task._versions("v1.4.2", pins, t, t.system.versioned(sms), [])
    lab.answer("docker", "pull *", captured="docker-pull.txt")
    res = lab.run(deploy_program(t, sms, intent(release="r2", tag=release_label(tags, {**rest.pins, **kept}), tags=tags,
                                                untouched=rest)))
    assert res.code == 0, res.stdout
    last = history(lab)[-1]
    assert last["tag"] == "ems=v1.4.3,sms=v1.4.2"
    assert last["images"]["ems"] == full["images"]["ems"] and last["images"]["sms"].startswith("v1.4.2@")
    assert sorted(last["config"]["files"]) == sorted(full["config"]["files"]), "every stack's files"
    assert [c for c in lab.commands("docker") if c.startswith("pull")][-1].endswith("sms_server:v1.4.2")
    assert (lab.state / "current").read_text().startswith("release r2\ntag ems=v1.4.3,sms=v1.4.2\n")
