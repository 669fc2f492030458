"""The prune program (sh/prune.sh) under bash with a stub docker: which app images go and which stay (the
running release's and the last KEEP good releases' digests, an image a container uses), nothing at all when
the history cannot be read, untagged images only when nothing names them, stopped containers of the tool's
projects, the build cache, and the space measured under Docker's root. Fast tier."""
import json

import pytest

from tasks.core.programs.declare import Intent
from tasks.core.programs.protocol import Program
from tasks.core.programs.prune import freed, prune_program, pruned

from .conftest import Lab, finished

REPO_EMS = "10.200.0.1:5000/edumigsoft/ems_server"


def digest(c: str) -> str:
    return "sha256:" + c * 64


def image_id(c: str) -> str:
    return "sha256:" + c * 64


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    lab.state.mkdir(parents=True)
    yield lab
    finished(lab)


def good(release: str, pin_digest: str, state: str = "good") -> str:
    return json.dumps({"release": release, "state": state, "images": {"ems": f"v@{pin_digest}"}},
                      separators=(",", ":"))


def history(lab, *lines: str, current: str = "") -> None:
    (lab.state / "releases.jsonl").write_text("".join(line + "\n" for line in lines))
    (lab.state / "current").write_text(current)


def images(lab, repo: str, found: dict[str, tuple[str, str]]) -> None:
    """``repo``'s images: id letter -> (its digest letter, its tag ('' none))."""
    lab.answer("docker", f"image ls --no-trunc --format {{{{.ID}}}} {repo}", "".join(image_id(i) + "\n" for i in found))
    for i, (d, tag) in found.items():
        lab.answer("docker", f"image inspect --format * {image_id(i)}",
                   f"{1000 + ord(i)} {repo}@{digest(d)} {f'{repo}:{tag}' if tag else ''}\n")


def program(lab, keep=2, remove=True, host_wide=False):
    return prune_program(lab.target, keep, remove, Intent("prune", "r1", "keep 2", "me", "here"), host_wide)


def quiet_rest(lab, used: str = "") -> None:
    """The rest of the host, scripted first (a test's own rules, later, win)."""
    lab.answer("docker", "image ls --no-trunc --format {{.ID}} *")   # the other repositories: none
    lab.answer("docker", "ps -aq --no-trunc", "c1\n" if used else "")
    lab.answer("docker", "inspect --format {{.Image}} c1", used + "\n")
    lab.answer("docker", "ps -a --no-trunc --filter label=com.docker.compose.project=* --format *")
    lab.answer("docker", "image rm *")


def test_images_no_kept_release_names_go_and_rollback_targets_stay(lab):
    history(lab, good("g1", digest("a")), good("g2", digest("b")), good("f1", digest("c"), "failed"),
            good("g3", digest("d")), current=f"release g3\nems=v@{digest('d')}\n")
    quiet_rest(lab, used=image_id("5"))
    images(lab, REPO_EMS, {"1": ("a", "v1"), "2": ("b", "v2"), "3": ("c", ""), "4": ("d", "v4"), "5": ("e", "v5")})
    run = lab.run(program(lab))
    assert run.code == 0, run.stdout
    got = {r.name: (r.result, r.why) for r in pruned(run.result)}
    assert got == {f"{REPO_EMS}:v1": ("gone", ""), f"{REPO_EMS}:v2": ("kept", "a release keeps it"),
                   f"{REPO_EMS}@{digest('c')}": ("gone", ""), f"{REPO_EMS}:v4": ("kept", "a release keeps it"),
                   f"{REPO_EMS}:v5": ("kept", "a container uses it")}
    removed = [c for c in lab.commands("docker") if c.startswith("image rm")]
    assert removed == [f"image rm {image_id('1')}", f"image rm {image_id('3')}"]
    assert (lab.state / "lock").exists() is False, "the lock is given back"


def test_listing_removes_nothing_and_takes_no_lock(lab):
    history(lab, good("g1", digest("a")), current=f"release g1\nems=v@{digest('a')}\n")
    quiet_rest(lab)
    images(lab, REPO_EMS, {"1": ("a", "v1"), "2": ("b", "v2")})
    run = lab.run(program(lab, remove=False))
    assert run.code == 0, run.stdout
    assert [(r.name, r.result) for r in pruned(run.result)] == [(f"{REPO_EMS}:v1", "kept"), (f"{REPO_EMS}:v2", "would")]
    assert not [c for c in lab.commands("docker") if c.startswith(("image rm", "rm "))]


def test_a_history_that_cannot_be_read_removes_nothing(lab):
    history(lab, good("g1", digest("a")))
    (lab.root / "other" / "state" / "current").mkdir(parents=True)   # (a file that cannot be read, even by root)
    quiet_rest(lab)
    images(lab, REPO_EMS, {"2": ("b", "v2")})
    run = lab.run(program(lab))
    assert run.code == 1 and f"cannot read {lab.root}/other/state/current: nothing was pruned" in run.error
    assert not [c for c in lab.commands("docker") if c.startswith("image rm")]


def test_no_good_release_yet_leaves_every_image(lab):
    history(lab, good("f1", digest("a"), "failed"))
    quiet_rest(lab)
    images(lab, REPO_EMS, {"1": ("a", "v1")})
    run = lab.run(program(lab))
    assert run.code == 0 and pruned(run.result) == [], run.stdout
    assert "no good release recorded yet" in run.stdout


def test_host_wide_untagged_images_stopped_containers_cache_and_the_space_measured(lab):
    history(lab, good("g1", digest("a")), current=f"release g1\nems=v@{digest('a')}\n")
    quiet_rest(lab)
    lab.answer("docker", "image ls --no-trunc --filter dangling=true --format {{.ID}}",
               f"{image_id('7')}\n{image_id('8')}\n")
    lab.answer("docker", f"image inspect --format * {image_id('7')}", "700 0 0\n")
    lab.answer("docker", f"image inspect --format * {image_id('8')}", "800 1 0\n")   # pulled by digest: stays
    lab.answer("docker", "ps -a --no-trunc --filter label=com.docker.compose.project=ems_system-ems *",
               "c0ffee ems_system-ems-run-1\n")
    lab.answer("docker", "rm c0ffee")
    lab.answer("docker", "builder prune -f", "ID\tRECLAIMABLE\nabc\ttrue\nTotal:\t1.5MB\n")
    lab.answer("docker", "info --format {{.DockerRootDir}}", f"{lab.root}\n")
    run = lab.run(program(lab, host_wide=True))
    assert run.code == 0, run.stdout
    rows = {(r.what, r.name): (r.result, r.bytes) for r in pruned(run.result)}
    assert rows == {("untagged", "7" * 64): ("gone", 700), ("container", "ems_system-ems-run-1"): ("gone", 0),
                    ("cache", "build cache"): ("gone", 1_500_000)}
    assert freed(run.result) is not None and len(run.result.all("docker_room")) == 2


def test_after_a_good_deploy_a_prune_that_cannot_run_only_says_so(lab):
    history(lab, good("g1", digest("a")))
    (lab.root / "other" / "state" / "current").mkdir(parents=True)
    quiet_rest(lab)
    images(lab, REPO_EMS, {"2": ("b", "v2")})
    run = lab.run(Program("after", {"STATE": str(lab.state)}).step("prune_after_deploy", str(lab.root), 5, REPO_EMS))
    assert run.code == 0 and "the old images were not pruned (cannot read" in run.stdout, run.stdout
    assert not [c for c in lab.commands("docker") if c.startswith("image rm")]
