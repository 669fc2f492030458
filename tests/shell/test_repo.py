"""repo_clone under bash with a real git and a local bare repository (fast tier; the SSH path, with its deploy
key and pinned host key, against a git server over SSH, is end to end): a clone made aside and moved into
place, a checkout kept on a rerun, and nothing left behind by a refusal."""
import subprocess

import pytest

from tasks.core.programs.protocol import Code, Program


def git(*args, cwd=None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def origin(tmp_path):
    """A bare repository with a commit on main and a tag v1 before it."""
    work = tmp_path / "work"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    for n in (1, 2):
        (work / "compose.yml").write_text(f"# {n}\n")
        git("add", ".", cwd=work)
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"c{n}", cwd=work)
        if n == 1:
            git("tag", "v1", cwd=work)
    git("clone", "-q", "--bare", str(work), str(tmp_path / "ems.git"))
    return str(tmp_path / "ems.git")


def clone(lab, folder, url, ref):
    return lab.run(Program("setup").step("repo_clone", str(folder), url, ref, str(lab.path / "key"), ""))


def test_a_clone_lands_whole_at_its_ref_and_a_rerun_keeps_it(lab, origin, tmp_path):
    repo = tmp_path / "sys" / "repo"
    repo.parent.mkdir()
    result = clone(lab, repo, origin, "v1")
    assert result.code == 0, result.stdout + result.stderr
    assert (repo / "compose.yml").read_text() == "# 1\n"
    assert result.result.one("repo")["result"] == "cloned"
    assert sorted(p.name for p in repo.parent.iterdir()) == ["repo"], "no clone folder left aside"
    again = clone(lab, repo, origin, "main")
    assert again.code == 0 and again.result.one("repo")["result"] == "kept", "setup never moves a checkout"
    assert (repo / "compose.yml").read_text() == "# 1\n"


def test_a_missing_ref_an_other_origin_or_a_folder_that_is_not_a_checkout_are_refused(lab, origin, tmp_path):
    repo = tmp_path / "sys" / "repo"
    repo.parent.mkdir()
    missing = clone(lab, repo, origin, "v9")
    assert missing.code == Code.REFUSED and "v9 is not a branch, tag or commit of" in missing.result.errors[0]
    assert list(repo.parent.iterdir()) == [], "nothing cloned is left"
    repo.mkdir()
    (repo / "compose.yml").write_text("by hand\n")
    by_hand = clone(lab, repo, origin, "main")
    assert by_hand.code == Code.REFUSED and "exists and is not a git checkout: move it aside" in by_hand.result.errors[0]
    assert (repo / "compose.yml").read_text() == "by hand\n"
    (repo / "compose.yml").unlink()
    repo.rmdir()
    assert clone(lab, repo, origin, "main").code == 0
    other = clone(lab, repo, origin + "-fork", "main")
    assert other.code == Code.REFUSED and "hosts.yml says" in other.result.errors[0]


def test_a_server_that_refuses_the_key_says_to_add_it_and_shows_it(lab, tmp_path):
    (lab.path / "key.pub").write_text("ssh-ed25519 AAAAC3Nza fab deploy key\n")
    fake = lab.bin / "git"   # (what git prints when GitHub does not know the key)
    fake.write_text("#!/bin/sh\necho 'git@github.com: Permission denied (publickey).' >&2\n"
                    "echo 'fatal: Could not read from remote repository.' >&2\nexit 128\n")
    fake.chmod(0o755)
    result = lab.run(Program("setup").step("repo_clone", str(tmp_path / "repo"), "git@github.com:e/ems.git", "main",
                                           str(lab.path / "key"), ""))
    assert result.code == Code.PULL
    assert "the git server refused the deploy key: add it to the repository as a read-only deploy key, then run " \
           "setup again: ssh-ed25519 AAAAC3Nza fab deploy key" in result.result.errors[0]
