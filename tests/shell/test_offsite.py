"""Copies off the VPS (sh/offsite.sh) with the real restic against a local repository (restic's local: backend,
a folder standing in for the server): what a snapshot holds, the key made root's only and never shown, the
retention applied there, a repository that is down or a key that does not open it failing the run with exit 10
while the local backup stays. Fast tier: no network (the end-to-end tier sends to SFTP and REST servers)."""
import json
import re
import subprocess

import pytest

from tasks.core import inventory
from tasks.core.programs.backup import backup_program, sent
from tasks.core.programs.declare import Intent

from .conftest import Lab, finished

INTENT = Intent("backup", "r1", "files", "ana@laptop", "laptop")


@pytest.fixture
def offsite_lab(tmp_path):
    """The lab's system backing up data/uploads, sent to a local restic repository."""
    lab = Lab(tmp_path)
    lab.repo = tmp_path / "offsite"
    write_backup(lab, f"paths: [data/uploads], offsite: ['local:{lab.repo}']")
    uploads = lab.root / "ems_system/data/uploads"
    uploads.mkdir(parents=True)
    (uploads / "a.png").write_text("png")
    (lab.state / "releases.jsonl").parent.mkdir(parents=True, exist_ok=True)
    (lab.state / "releases.jsonl").write_text('{"release": "r0"}\n')
    lab.key = lab.root / "ems_system/.secrets/restic"
    yield lab
    finished(lab)


def write_backup(lab, keys: str) -> None:
    hosts = re.sub(r"    backup: .*\n", "", (lab.root / "hosts.yml").read_text())
    hosts = hosts.replace("    stacks:\n", f"    backup: {{{keys}}}\n    stacks:\n", 1)
    (lab.root / "hosts.yml").write_text(hosts)
    lab.target = inventory.load(lab.root / "hosts.yml").host("lab").targets()[0]


def restic(lab, *args) -> str:
    return subprocess.run(["restic", "-r", f"local:{lab.repo}", "--password-file", str(lab.key), *args],
                          capture_output=True, text=True, check=True, env=lab.env()).stdout


def take(lab):
    return lab.run(backup_program(lab.target, [], INTENT))


def test_a_run_sends_its_backup_and_the_history_encrypted_with_a_key_made_root_only(offsite_lab):
    lab = offsite_lab
    run = take(lab)
    assert run.code == 0, run.stdout + run.stderr
    assert lab.key.stat().st_mode & 0o777 == 0o600 and len(lab.key.read_text().strip()) == 44
    assert lab.key.read_text().strip() not in run.stdout + run.stderr, "the key is never shown"
    assert "keep a copy off the VPS" in run.stdout
    (made,) = [p.name for p in (lab.root / "ems_system/data/backups").iterdir()]
    ((snap,),) = [json.loads(restic(lab, "snapshots", "--json"))]
    assert snap["hostname"] == "ems_system" and sorted(snap["tags"]) == ["fab", "system=ems_system"]
    assert sorted(snap["paths"]) == [f"{lab.root}/ems_system/data/backups/{made}", str(lab.state)]
    files = restic(lab, "ls", "latest")
    assert f"/data/backups/{made}/tree/system/data/uploads/a.png" in files and "/state/releases.jsonl" in files
    assert "/state/lock" not in files, "the run's own lock is not part of the history"
    (report,) = sent(run.result)
    assert report["result"] == "ok" and snap["short_id"] == report["snapshot"][:8] and report["added"] > 0


def test_retention_forgets_old_snapshots_there_by_the_same_counts(offsite_lab):
    lab = offsite_lab
    write_backup(lab, f"paths: [data/uploads], offsite: ['local:{lab.repo}'], keep: {{last: 2, daily: 0, weekly: 0, monthly: 0}}")
    for _ in range(3):
        assert take(lab).code == 0
    assert len(json.loads(restic(lab, "snapshots", "--json"))) == 2


@pytest.mark.parametrize("breakage, why", [
    ("down", "connection refused"),
    ("wrong key", "wrong password or no key found"),
])
def test_a_repository_that_fails_is_exit_10_naming_it_and_the_local_backup_stays(offsite_lab, breakage, why):
    lab = offsite_lab
    assert take(lab).code == 0
    if breakage == "down":
        write_backup(lab, f"paths: [data/uploads], offsite: ['rest:http://127.0.0.1:9/r', 'local:{lab.repo}']")
    else:
        lab.key.write_text("not the key it was made with\n")
    run = take(lab)
    assert run.code == 18 and "the offsite copy failed: " in run.error and why in run.error, run.stdout + run.stderr
    assert "the local backups are kept" in run.error
    assert len(list((lab.root / "ems_system/data/backups").iterdir())) == 2, "this run's local backup stays"
    if breakage == "down":   # the other repository still got its copy
        assert [r["result"] for r in sent(run.result)] == ["failed", "ok"]
        assert len(json.loads(restic(lab, "snapshots", "--json"))) == 2
