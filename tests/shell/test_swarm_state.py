"""A swarm system's lock and state in the swarm's Raft store (sh/swarm_state.sh) under bash with a stub docker:
a newer snapshot replaces the manager's files (lines of its own the snapshot does not continue kept aside), a
state a program changed is stored as the next snapshot (older ones removed) and the swarm's lock released, and
the lock is refused while another live manager's deploy holds it, taken over when that manager is down.
Fast tier."""
import base64
import hashlib
import io
import tarfile

import pytest

from tasks.core.programs.protocol import Code

from .conftest import Lab, finished

HEAD = {"SYSTEM": "eh", "BY": "ana@laptop", "ACTION": "deploy", "TAG": "v2", "RELEASE": "r2"}


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    lab.state.mkdir(parents=True, exist_ok=True)
    yield lab
    finished(lab)


def snapshot(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return out.getvalue()


def config_data(data: bytes) -> str:
    """What `docker config inspect --format '{{json .Spec.Data}}'` prints: the bytes base64-encoded, quoted."""
    return '"' + base64.b64encode(data).decode() + '"\n'


def sha(*texts: str) -> str:
    return hashlib.sha256("".join(texts).encode()).hexdigest()


def test_a_newer_snapshot_replaces_the_manager_s_files_and_its_own_lines_are_kept_aside(lab):
    (lab.state / "releases.jsonl").write_text('{"release":"r0"}\n{"release":"rX"}\n')
    (lab.state / "current").write_text("release r0\n")
    (lab.state / "swarm-seq").write_text("1 " + sha("x") + "\n")
    theirs = '{"release":"r0"}\n{"release":"r1"}\n'
    lab.answer("docker", "config ls --filter label=fab.state=eh --format {{.Name}}",
               "fab.eh.state.3\nfab.eh.state.4\nfab.eh.state.x\n")
    lab.answer("docker", "config inspect --format {{json .Spec.Data}} fab.eh.state.4",
               config_data(snapshot({"releases.jsonl": theirs, "current": "release r1\n"})))
    run = lab.snippet('swarm_read_state; echo "read=$STATE_READ seq=$STATE_SEQ"', {"swarm_read_state"}, HEAD)
    assert run.code == 0, run.stderr
    assert (lab.state / "releases.jsonl").read_text() == theirs
    assert (lab.state / "current").read_text() == "release r1\n"
    assert (lab.state / "releases.jsonl.kept-4").read_text() == '{"release":"r0"}\n{"release":"rX"}\n'
    assert (lab.state / "swarm-seq").read_text() == f"4 {sha(theirs, 'release r1' + chr(10))}\n"
    assert "had lines the swarm's does not: kept in" in run.stdout
    assert f"read={sha(theirs, 'release r1' + chr(10))} seq=4" in run.stdout
    assert not list(lab.state.glob("swarm-state.*")), "the unpacked copy is removed"


def test_a_snapshot_that_cannot_be_read_changes_nothing(lab):
    (lab.state / "releases.jsonl").write_text('{"release":"r0"}\n')
    lab.answer("docker", "config ls --filter label=fab.state=eh --format {{.Name}}", "fab.eh.state.2\n")
    lab.answer("docker", "config inspect --format {{json .Spec.Data}} fab.eh.state.2", config_data(b"not a tar"))
    run = lab.snippet("swarm_read_state", {"swarm_read_state"}, HEAD)
    assert run.code == Code.FAILED and "fab.eh.state.2 cannot be read: nothing was changed" in run.error
    assert (lab.state / "releases.jsonl").read_text() == '{"release":"r0"}\n'
    assert not (lab.state / "swarm-seq").exists()


def test_a_store_that_does_not_answer_is_not_taken_for_an_empty_one(lab):
    (lab.state / "releases.jsonl").write_text('{"release":"r0"}\n')
    lab.answer("docker", "config ls --filter label=fab.state=eh --format {{.Name}}", "Error: no quorum\n", code=1,
               stderr=True)
    run = lab.snippet("swarm_read_state", {"swarm_read_state"}, HEAD)
    assert run.code == Code.FAILED and "cannot read the swarm's store" in run.error
    assert (lab.state / "releases.jsonl").read_text() == '{"release":"r0"}\n'


def test_a_changed_state_becomes_the_next_snapshot_older_ones_go_and_the_lock_is_released(lab):
    lab.answer("docker", "config ls --filter label=fab.state=eh --format {{.Name}}",
               "fab.eh.state.1\nfab.eh.state.2\nfab.eh.state.3\n")
    lab.answer("docker", "config create --label fab.state=eh fab.eh.state.4 -")
    lab.allow("docker", "config rm fab.eh.state.1")
    lab.allow("docker", "config rm fab.eh.lock")
    (lab.state / "releases.jsonl").write_text('{"release":"r1"}\n')
    (lab.state / "current").write_text("release r1\n")
    stored = sha((lab.state / "releases.jsonl").read_text(), (lab.state / "current").read_text())
    (lab.state / "swarm-seq").write_text(f"3 {stored}\n")
    run = lab.snippet('swarm_read_state; echo \'{"release":"r2"}\' >> "$STATE/releases.jsonl"; SWARM_LOCKED=1; '
                      "swarm_state_done", {"swarm_read_state", "swarm_state_done"}, HEAD)
    assert run.code == 0, run.stderr
    pushed = next(p for p in lab.calls_dir.glob("*.stdin"))
    with tarfile.open(fileobj=io.BytesIO(pushed.read_bytes()), mode="r:gz") as tar:
        stored = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}
    assert stored == {"releases.jsonl": '{"release":"r1"}\n{"release":"r2"}\n', "current": "release r1\n"}
    assert lab.commands("docker")[-2:] == ["config rm fab.eh.state.1", "config rm fab.eh.lock"]
    assert (lab.state / "swarm-seq").read_text().startswith("4 ")


def test_a_state_nobody_changed_is_not_stored_again(lab):
    (lab.state / "releases.jsonl").write_text('{"release":"r1"}\n')
    lab.answer("docker", "config ls --filter label=fab.state=eh --format {{.Name}}", "fab.eh.state.3\n")
    (lab.state / "swarm-seq").write_text(f"3 {sha((lab.state / 'releases.jsonl').read_text())}\n")
    run = lab.snippet("swarm_read_state; swarm_state_done", {"swarm_read_state", "swarm_state_done"}, HEAD)
    assert run.code == 0 and lab.commands("docker") == ["config ls --filter label=fab.state=eh --format {{.Name}}"]


def test_files_a_manager_could_not_store_before_are_stored_by_its_next_program(lab):
    (lab.state / "releases.jsonl").write_text('{"release":"r1"}\n')
    lab.answer("docker", "config ls --filter label=fab.state=eh --format {{.Name}}", "fab.eh.state.3\n")
    lab.answer("docker", "config create --label fab.state=eh fab.eh.state.4 -")
    (lab.state / "swarm-seq").write_text(f"3 {sha('what the swarm has')}\n")
    run = lab.snippet("swarm_read_state; swarm_state_done", {"swarm_read_state", "swarm_state_done"}, HEAD)
    assert run.code == 0 and "config create --label fab.state=eh fab.eh.state.4 -" in lab.commands("docker")


def swarm_lock(lab: Lab, node_state: str) -> None:
    """This node is n1; the swarm's lock of eh is held through n2 (`docker node inspect` says NODE_STATE)."""
    lab.answer("docker", "info --format {{.Swarm.NodeID}}", "n1\n")
    lab.answer("docker", "config inspect --format {{index .Spec.Labels \"fab.node\"}} fab.eh.lock", "n2\n")
    lab.answer("docker", "node inspect --format * n2", node_state)
    lab.answer("docker", "config inspect --format {{json .Spec.Data}} fab.eh.lock",
               config_data(b"bo@ci since 2026-12-05T10:00:00Z (deploy v1, release r1, pid 42)\n"))
    lab.answer("docker", "config ls --filter label=fab.state=eh --format {{.Name}}", "")


def lock_held_by(lab: Lab, node_state: str):
    swarm_lock(lab, node_state)
    lab.answer("docker", "config create --label fab.node=n1 fab.eh.lock -", code=1, once=True)
    return lab.snippet('swarm_lock_take; echo "locked=$SWARM_LOCKED"', {"swarm_lock_take"}, HEAD)


def test_a_lock_a_live_manager_s_deploy_holds_is_refused_with_its_name_and_holder(lab):
    run = lock_held_by(lab, "ready sw2\n")
    assert run.code == Code.LOCKED
    assert run.error == ("a deploy through manager sw2 holds the swarm's lock of eh: bo@ci since 2026-12-05T10:00:00Z "
                         "(deploy v1, release r1, pid 42)")


def test_a_lock_left_by_a_manager_that_is_down_is_taken_over_and_said(lab):
    lab.answer("docker", "config rm fab.eh.lock")
    lab.answer("docker", "config create --label fab.node=n1 fab.eh.lock -")
    run = lock_held_by(lab, "down sw2\n")
    assert run.code == 0 and "locked=1" in run.stdout, run.stdout + run.stderr
    assert "taking over the swarm's lock of eh left by bo@ci since" in run.stdout and "(its manager sw2 is down)" in run.stdout
    taken = [c.stdin for c in lab.calls("docker") if c.argv[1:3] == ["config", "create"]][-1]
    assert taken.startswith("ana@laptop since ") and "release r2" in taken


@pytest.mark.parametrize("node_state, stale", [("ready sw2\n", "0"), ("down sw2\n", "1")])
def test_status_through_another_manager_shows_the_swarm_s_lock_and_whether_it_is_stale(lab, node_state, stale):
    swarm_lock(lab, node_state)
    run = lab.snippet("swarm_read_state; show_current", {"swarm_read_state", "show_current"}, HEAD)
    assert run.code == 0, run.stderr
    lock = run.result.one("lock")
    assert lock["holder"] == ("bo@ci since 2026-12-05T10:00:00Z (deploy v1, release r1, pid 42) through manager sw2")
    assert lock["stale"] == stale and (stale == "0" or lock["gone"] == "its manager sw2 is down"), lock


def test_unlock_removes_the_swarm_s_lock_too_and_says_whose_it_was(lab):
    swarm_lock(lab, "ready sw2\n")
    lab.answer("docker", "config rm fab.eh.lock")
    run = lab.snippet("swarm_read_state; lock_break; swarm_lock_break",
                      {"swarm_read_state", "lock_break", "swarm_lock_break"}, HEAD)
    assert run.code == 0 and "config rm fab.eh.lock" in lab.commands("docker"), run.stdout + run.stderr
    assert "removing the swarm's lock of eh held by bo@ci since 2026-12-05T10:00:00Z" in run.stdout
    assert "through manager sw2" in run.stdout


def test_unlock_of_a_swarm_without_a_lock_changes_nothing(lab):
    lab.answer("docker", "info --format {{.Swarm.NodeID}}", "n1\n")
    lab.answer("docker", "config inspect *", "", code=1)
    lab.answer("docker", "config ls --filter label=fab.state=eh --format {{.Name}}", "")
    run = lab.snippet("swarm_read_state; lock_break; swarm_lock_break",
                      {"swarm_read_state", "lock_break", "swarm_lock_break"}, HEAD)
    assert run.code == 0 and "no lock was held" in run.stdout, run.stdout + run.stderr
    assert not [c for c in lab.commands("docker") if c.startswith("config rm")]
