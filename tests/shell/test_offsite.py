"""Copies off the VPS (sh/offsite.sh) with the real restic against a local repository (restic's local: backend,
a folder standing in for the server): what a snapshot holds, the key made root's only and never shown, the
retention applied there, a repository that is down or a key that does not open it failing the run with exit 10
while the local backup stays. Fast tier: no network (the end-to-end tier sends to SFTP and REST servers)."""
import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tasks.backups import stale
from tasks.core import errors, inventory
from tasks.core.errors import ToolError
from tasks.core.programs.backup import backup_program, drill_program, files_drilled, list_program, listed
from tasks.core.programs.declare import Intent
from tasks.core.programs.offsite import (
    check_program,
    checked,
    fetch_program,
    key_program,
    list_offsite,
    listed_offsite,
    sent,
    shown_key,
)
from tasks.core.programs.protocol import Program, Result
from tasks.core.programs.recover import fetch_program as recover_program
from tasks.core.programs.recover import placed
from tasks.core.target import Target

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
    env = lab.root / "ems_system/repo/ems/.env"
    env.write_text("DB_PASSWORD=s3cret\n")
    run = take(lab)
    assert run.code == 0, run.stdout + run.stderr
    assert lab.key.stat().st_mode & 0o777 == 0o600 and len(lab.key.read_text().strip()) == 44
    assert lab.key.read_text().strip() not in run.stdout + run.stderr, "the key is never shown"
    assert "keep a copy off the VPS" in run.stdout
    (made,) = [p.name for p in (lab.root / "ems_system/data/backups").iterdir()]
    ((snap,),) = [json.loads(restic(lab, "snapshots", "--json"))]
    assert snap["hostname"] == "ems_system" and sorted(snap["tags"]) == ["fab", "system=ems_system"]
    assert sorted(snap["paths"]) == [f"{lab.root}/ems_system/data/backups/{made}", str(env), str(lab.state)], \
        "the .env that exists (ems's), not those that do not"
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


def test_the_key_is_shown_by_its_fingerprint_and_sent_only_to_be_saved(offsite_lab):
    lab = offsite_lab
    sysroot = lab.path / "sysroot"
    run = lab.run(key_program(lab.target, save=False, sysroot=str(sysroot)))
    assert run.code == 0, run.stdout + run.stderr
    key = shown_key(run.result)
    value = lab.key.read_text()
    assert key["path"] == str(lab.key) and key["mode"] == "600" and "value" not in key
    assert key["sha256"] == hashlib.sha256(value.encode()).hexdigest() and value.strip() not in run.stdout
    assert key["ssh_public"] == "" and not (sysroot / "root/.ssh").exists(), "no SFTP repository: no SSH key made"
    saved = shown_key(lab.run(key_program(lab.target, save=True, sysroot=str(sysroot))).result)
    assert saved["value"] == value and saved["sha256"] == key["sha256"], "the same key, not a new one"


def test_an_sftp_repository_gets_root_an_ssh_key_once(offsite_lab):
    lab = offsite_lab
    write_backup(lab, f"offsite: ['local:{lab.repo}', 'sftp:backup@vault.example:/srv/restic']")
    sysroot = lab.path / "sysroot"
    run = lab.run(key_program(lab.target, save=False, sysroot=str(sysroot)))
    assert run.code == 0 and "a new SSH key for root" in run.stdout, run.stdout + run.stderr
    pub = (sysroot / "root/.ssh/id_ed25519.pub").read_text().strip()
    assert shown_key(run.result)["ssh_public"] == pub and pub.startswith("ssh-ed25519 ")
    assert (sysroot / "root/.ssh/id_ed25519").stat().st_mode & 0o777 == 0o600
    again = lab.run(key_program(lab.target, save=False, sysroot=str(sysroot)))
    assert "a new SSH key" not in again.stdout and shown_key(again.result)["ssh_public"] == pub


def test_a_damaged_key_report_is_refused_without_repeating_it():
    bad = Result(code=0, data={"restic_key": [{"path": "/k", "mode": "600", "sha256": "0" * 64, "ssh_public": "",
                                                "value": "$(reboot) ghp_" + "x" * 36}]})
    with pytest.raises(ToolError) as e:
        shown_key(bad)
    assert e.value.code == errors.BAD_INPUT and "reboot" not in str(e.value) and "ghp_" not in str(e.value)


def spy_on_restic(lab) -> None:
    """restic wrapped (fast-tier stub around the real one) to record the credential names it was given."""
    (lab.bin / "restic").write_text(f"#!/bin/bash\nenv | grep -o '^\\(AWS\\|RESTIC_REST\\)_[A-Z_]*=' >> {lab.path}/seen\n"
                                    'exec /usr/bin/restic "$@"\n')
    (lab.bin / "restic").chmod(0o755)


def test_credentials_in_restic_env_reach_restic_in_its_environment_only(offsite_lab):
    lab = offsite_lab
    spy_on_restic(lab)
    secret = "s3cr3t $(reboot) 'quoted' # not a comment"
    lab.key.parent.mkdir(mode=0o700, exist_ok=True)
    env = lab.key.parent / "restic.env"
    env.write_text(f"# S3 credentials\nAWS_ACCESS_KEY_ID=AKIAEXAMPLE\n\nAWS_SECRET_ACCESS_KEY={secret}\n")
    env.chmod(0o644)
    run = take(lab)
    assert run.code == 0, run.stdout + run.stderr
    assert set((lab.path / "seen").read_text().split()) == {"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="}
    assert env.stat().st_mode & 0o777 == 0o600, "made root's only"
    assert secret not in run.stdout + run.stderr and "AKIAEXAMPLE" not in run.stdout + run.stderr


def test_a_line_restic_env_cannot_hold_is_refused_by_its_number_not_its_text(offsite_lab):
    lab = offsite_lab
    lab.key.parent.mkdir(mode=0o700, exist_ok=True)
    (lab.key.parent / "restic.env").write_text("AWS_DEFAULT_REGION=eu-west-1\nLD_PRELOAD=/tmp/evil.so\n")
    run = take(lab)
    assert run.code == 16 and "restic.env:2: not a credential restic reads" in run.error, run.stdout
    assert "evil" not in run.stdout + run.stderr
    assert not lab.repo.exists(), "nothing sent"
    assert not (lab.root / "ems_system/data/backups").exists(), "refused before a backup was taken"


def listing(lab):
    """fab backups' program (local backups and each repository's copies) run on the lab."""
    run = lab.run(list_offsite(list_program(lab.target), lab.target))
    assert run.code == 0, run.stdout + run.stderr
    return listed(run.result), listed_offsite(run.result)


def test_backups_lists_each_copy_with_its_size_and_verified_and_the_last_check(offsite_lab):
    lab = offsite_lab
    (repo,) = listing(lab)[1]
    assert repo.error == "no restic key on this host yet: nothing was sent" and not repo.copies
    first, second = take(lab), take(lab)
    assert first.code == second.code == 0
    found, (repo,) = listing(lab)
    assert [c.id[:8] for c in repo.copies] == [sent(second.result)[0]["snapshot"][:8], sent(first.result)[0]["snapshot"][:8]]
    assert all(c.verified and c.files >= 4 and c.bytes > 0 for c in repo.copies), repo.copies
    assert repo.copies[0].time > repo.copies[1].time and repo.last_check is None
    check = lab.run(check_program(lab.target, "100%", INTENT))
    assert check.code == 0 and [c["result"] for c in checked(check.result)] == ["ok"], check.stdout + check.stderr
    (repo,) = listing(lab)[1]
    assert repo.last_check["result"] == "ok" and repo.last_check["subset"] == "100%"
    now = datetime.now(timezone.utc)
    assert stale(lab.target, found, [repo], now) == [], "no max_age: nothing to say"


def test_max_age_names_each_series_and_repository_too_old(offsite_lab):
    lab = offsite_lab
    write_backup(lab, f"paths: [data/uploads], offsite: ['local:{lab.repo}'], max_age: 26h")
    assert take(lab).code == 0
    found, repos = listing(lab)
    assert stale(lab.target, found, repos, datetime.now(timezone.utc)) == []
    later = datetime.now(timezone.utc) + timedelta(hours=27)
    assert stale(lab.target, found, repos, later) == [
        "newest verified backup of files: 27 h old (max_age 26 h)",
        f"newest verified backup of local:{lab.repo}: 27 h old (max_age 26 h)"]
    repos[0].copies[0].verified = False   # sent, but its check failed
    assert stale(lab.target, found, repos, datetime.now(timezone.utc)) == [
        f"newest verified backup of local:{lab.repo}: none yet (max_age 26 h)"]


def test_a_damaged_line_of_the_notes_is_skipped_and_said_not_a_failed_listing(offsite_lab):
    """A note half written (a disk that filled mid-append) loses that note's mark, never the listing."""
    lab = offsite_lab
    assert take(lab).code == 0
    notes = lab.root / "ems_system/state/offsite.jsonl"
    notes.write_text(notes.read_text() + '{"repo": "local:/x", "ki\n')
    found, (repo,) = listing(lab)
    assert [c.verified for c in repo.copies] == [True] and repo.skipped == 1
    assert stale(lab.target, found, [repo], datetime.now(timezone.utc)) == [
        "1 line(s) of " + lab.target.state_dir + "/offsite.jsonl cannot be read (damaged): skipped, with the marks "
        "they held (a copy they named may show as unverified)"]


def test_a_truncated_pack_is_found_by_the_check_after_sending_and_by_the_scheduled_one(offsite_lab):
    lab = offsite_lab
    (lab.root / "ems_system/data/uploads/scan.tif").write_bytes(os.urandom(400_000))   # the biggest pack: data
    assert take(lab).code == 0
    biggest = biggest_pack(lab)
    with open(biggest, "r+b") as f:
        f.truncate(biggest.stat().st_size // 2)
    check = lab.run(check_program(lab.target, "1/5", INTENT))
    assert check.code == 18 and "restic check failed: local:" in check.error, check.stdout + check.stderr
    assert f"pack {biggest.name}: unexpected file size" in check.error
    (repo,) = listing(lab)[1]
    assert repo.last_check["result"] == "failed" and "unexpected file size" in repo.last_check["error"]
    assert stale(lab.target, [], [repo], datetime.now(timezone.utc))[0].startswith(f"the last check of local:{lab.repo}")
    again = take(lab)   # the next backup's check finds it too: exit 10, its copy not verified
    assert again.code == 18 and "sent, but restic check found: pack" in again.error, again.stdout
    (repo,) = listing(lab)[1]
    assert [c.verified for c in repo.copies] == [False, True]


def biggest_pack(lab):
    """The repository's biggest pack file (a data pack when the backup holds a large file), made writable."""
    biggest = max((p for p in (lab.repo / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    biggest.chmod(0o600)
    return biggest


def flip_a_byte(lab):
    """One byte flipped in the middle of the biggest pack: its size stays right."""
    biggest = biggest_pack(lab)
    with open(biggest, "r+b") as f:
        f.seek(200_000)
        byte = f.read(1)
        f.seek(200_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    return biggest


def test_a_damaged_byte_is_found_only_by_reading_the_data_back(offsite_lab):
    lab = offsite_lab
    (lab.root / "ems_system/data/uploads/scan.tif").write_bytes(os.urandom(400_000))
    assert take(lab).code == 0
    biggest = flip_a_byte(lab)
    check = lab.run(check_program(lab.target, "100%", INTENT))
    assert check.code == 18 and "Pack ID does not match, want " + biggest.name in check.error, check.stdout + check.stderr


def fetched_drill(lab):
    """The drill of the newest files backup from the newest copy: fetched into a scratch folder, then drilled."""
    (repo,) = listing(lab)[1]
    name = next(p for p in repo.copies[0].paths if "/data/backups/files-" in p).rsplit("/", 1)[-1]
    source = repo.copies[0].holding(name)
    return name, drill_program(lab.target, None, name, fetch_program(lab.target, repo.repo, repo.copies[0].id, source, name))


def test_a_drill_reads_the_copy_off_the_vps_and_leaves_nothing(offsite_lab):
    lab = offsite_lab
    assert take(lab).code == 0
    shutil.rmtree(lab.root / "ems_system/data/backups")   # the local backups lost: the copy is what is left
    name, program = fetched_drill(lab)
    run = lab.run(program)
    assert run.code == 0, run.stdout + run.stderr
    assert [(p["part"], p["files"]) for p in files_drilled(run.result)] == [("system/data/uploads", 1)]
    assert f"fetch {name} from snapshot" in run.stdout
    assert [p.name for p in (lab.root / "ems_system/data/backups").iterdir()] == [], "the scratch folder is gone"


def test_a_damaged_copy_fails_the_drill_and_leaves_nothing(offsite_lab):
    lab = offsite_lab
    (lab.root / "ems_system/data/uploads/scan.tif").write_bytes(os.urandom(400_000))
    assert take(lab).code == 0
    flip_a_byte(lab)
    name, program = fetched_drill(lab)
    run = lab.run(program)
    assert run.code == 18 and "cannot restore snapshot" in run.error, run.stdout + run.stderr
    assert not (lab.root / "ems_system/data/backups/.offsite-drill").exists()


def test_a_drill_without_the_key_refuses_rather_than_make_one(offsite_lab):
    lab = offsite_lab
    assert take(lab).code == 0
    name, program = fetched_drill(lab)
    lab.key.unlink()
    run = lab.run(program)
    assert run.code == 16 and "a new key would open no copy" in run.error and not lab.key.exists(), run.stdout


@pytest.fixture
def lost(offsite_lab, tmp_path):
    """The lab's system backed up with an upload, a .env and a history; then a new host's folder (another root)
    that runs nothing yet, and the operator's copy of the key."""
    lab = offsite_lab
    (lab.root / "ems_system/repo/ems/.env").write_text("DB_PASSWORD=s3cret\n")
    assert take(lab).code == 0
    new_root = tmp_path / "new"
    new_root.mkdir()
    hosts = (lab.root / "hosts.yml").read_text().replace(
        "hosts:\n", f"hosts:\n  fresh: {{address: 127.0.0.2, root: '{new_root}', systems: [ems_system]}}\n", 1)
    (lab.root / "hosts.yml").write_text(hosts)
    lab.new = inventory.load(lab.root / "hosts.yml").host("fresh").targets()[0]
    lab.copy = listing(lab)[1][0].copies[0]
    return lab


def recover(lab, key: str, snapshot: str | None = None):
    program = recover_program(lab.new, lab.target, f"local:{lab.repo}", snapshot or lab.copy.id, INTENT)
    return lab.run(program, stdin_tail=key)


def test_recover_places_the_backups_env_and_history_on_a_new_host(lost):
    lab = lost
    run = recover(lab, lab.key.read_text())
    assert run.code == 0, run.stdout + run.stderr
    new = Path(lab.new.base)
    got = placed(run.result)
    assert [Path(p).name for p in got.backups] == [p.rsplit("/", 1)[-1] for p in lab.copy.paths if "/data/backups/" in p]
    assert lab.copy.id.startswith(got.snapshot) and len(got.snapshot) >= 8
    assert (new / "state/releases.jsonl").read_text() == '{"release": "r0"}\n'
    assert (new / ".secrets/restic").read_text() == lab.key.read_text()
    assert (new / ".secrets/restic").stat().st_mode & 0o777 == 0o600
    assert not (new / ".fab-recover").exists() and not (new / "state/lock").exists()
    assert lab.key.read_text().strip() not in run.stdout + run.stderr
    assert not (new / "repo/ems/.env").exists(), "held until setup has put repo/ in place"
    env = Program("env", {"STATE": lab.new.state_dir, "BASE": lab.new.base}).step("recover_env")
    assert "waits in" in lab.run(env).stdout and not (new / "repo").exists(), "no folder made where a clone goes"
    (new / "repo/ems").mkdir(parents=True)
    placing = lab.run(env)
    assert placed(placing.result).env == [str(new / "repo/ems/.env")]
    assert (new / "repo/ems/.env").read_text() == "DB_PASSWORD=s3cret\n"


def test_a_recovery_that_stopped_goes_on_and_a_finished_one_is_not_done_twice(lost):
    lab = lost
    first = placed(recover(lab, lab.key.read_text()).result)
    run = recover(lab, lab.key.read_text(), "latest")   # (the system never came up: say, its deploy failed)
    assert run.code == 0 and "going on from there" in run.stdout, run.stdout + run.stderr
    assert placed(run.result) == first
    other = Target(replace(lab.target.host, root="/elsewhere"), lab.target.system)
    run = lab.run(recover_program(lab.new, other, f"local:{lab.repo}", "latest", INTENT), stdin_tail=lab.key.read_text())
    assert run.code == 16 and "unfinished recovery of another host" in run.error, run.stdout
    done = lab.run(Program("done", {"STATE": lab.new.state_dir, "SYSTEM": "ems_system"}).step("recover_done"))
    assert done.code == 0 and not (Path(lab.new.state_dir) / "recovering").exists()
    assert not (Path(lab.new.state_dir) / "recovering.env").exists()
    again = recover(lab, lab.key.read_text(), "latest")   # the new host runs the system now
    assert again.code == 16 and "has a release history of ems_system already" in again.error


def test_latest_is_the_systems_newest_snapshot(lost):
    lab = lost
    (lab.root / "ems_system/data/uploads/b.png").write_text("newer")
    assert take(lab).code == 0
    run = recover(lab, lab.key.read_text(), "latest")
    assert run.code == 0, run.stdout + run.stderr
    (files,) = [p for p in placed(run.result).backups if "/files-" in p]   # a snapshot holds its run's backups
    assert (Path(files) / "tree/system/data/uploads/b.png").read_text() == "newer"


def test_a_binarys_releases_and_environment_come_back_where_they_were(lost, tmp_path):
    """Seed 003: what the copy carries of a binary (its kept releases, its unit's environment folder) placed
    at the same paths on the new host, owners and modes kept; what the host has there already is kept."""
    lab = lost
    releases, env = tmp_path / "opt/plantao/releases", tmp_path / "etc/plantao"
    (releases / "v2").mkdir(parents=True)
    (releases / "v2/escala-plantao").write_bytes(b"\x7fELF v2")
    (releases / "v2/escala-plantao").chmod(0o755)
    env.mkdir(parents=True)
    (env / "plantao.env").write_text("DB_PASS=s3cret\n")
    (env / "plantao.env").chmod(0o600)
    sending = backup_program(lab.target, [], INTENT)
    sending.head["CARRIED"] += f"\n{releases}\n{env}\n{tmp_path / 'absent'}"
    assert lab.run(sending).code == 0
    shutil.rmtree(tmp_path / "opt")   # the server is gone; the new one has its own file in /etc/plantao
    (env / "plantao.env").write_text("the new host's\n")
    program = recover_program(lab.new, lab.target, f"local:{lab.repo}", "latest", INTENT)
    program.steps[-1] = (*program.steps[-1], str(releases), str(env), str(tmp_path / "absent"))
    run = lab.run(program, stdin_tail=lab.key.read_text())
    assert run.code == 0, run.stdout + run.stderr
    assert (releases / "v2/escala-plantao").read_bytes() == b"\x7fELF v2"
    assert (releases / "v2/escala-plantao").stat().st_mode & 0o777 == 0o755
    assert (env / "plantao.env").read_text() == "the new host's\n" and f"{env}/plantao.env is on this host already: kept" in run.stdout
    assert not (tmp_path / "absent").exists()
    assert f"file {releases}" in (Path(lab.new.state_dir) / "recovering").read_text()


def test_a_failed_recovery_takes_back_a_binarys_folders_it_made(lost, tmp_path):
    lab = lost
    releases, blocked = tmp_path / "opt/plantao/releases", tmp_path / "etc/plantao"
    for folder in (releases / "v2", blocked):
        folder.mkdir(parents=True)
        (folder / "file").write_text("v2")
    sending = backup_program(lab.target, [], INTENT)
    sending.head["CARRIED"] += f"\n{releases}\n{blocked}"
    assert lab.run(sending).code == 0
    shutil.rmtree(tmp_path / "opt")
    shutil.rmtree(tmp_path / "etc")
    (tmp_path / "etc").write_text("a file where the copy has a folder")
    program = recover_program(lab.new, lab.target, f"local:{lab.repo}", "latest", INTENT)
    program.steps[-1] = (*program.steps[-1], str(releases), str(blocked))
    run = lab.run(program, stdin_tail=lab.key.read_text())
    assert run.code == 1 and f"cannot place {blocked}" in run.error and "was taken back" in run.stdout, run.stdout
    assert not (tmp_path / "opt").exists(), "the folders it made, from the first missing one"
    assert (tmp_path / "etc").read_text() == "a file where the copy has a folder"


@pytest.mark.parametrize("key, said", [
    ("", "no restic key arrived"),
    ("$(reboot)\n", "not a restic key this tool made"),
    ("c2VjcmV0IGtleSBvZiAzMiBieXRlcyBleGFjdGx5IQ==\n", "wrong password or no key found"),
])
def test_a_wrong_or_missing_key_leaves_the_new_host_as_it_was(lost, key, said):
    lab = lost
    run = recover(lab, key)
    assert run.code in (16, 18) and said in run.error, run.stdout + run.stderr
    new = Path(lab.new.base)
    left = sorted(str(p.relative_to(new)) for p in new.rglob("*") if p.is_file())
    assert [p for p in left if not p.startswith("state/audit")] == [], left
    assert "reboot" not in run.stdout + run.stderr


def test_a_repository_locked_by_another_run_keeps_the_copy_unverified_not_failed(offsite_lab):
    """Fast tier: restic wrapped so that check finds the lock another host's run holds (a shared repository)."""
    lab = offsite_lab
    (lab.bin / "restic").write_text('#!/bin/bash\nif [ "$5" = check ]; then echo "Fatal: unable to create lock in '
                                    'backend: repository is already locked by PID 7 on vps2 by root" >&2; exit 1; fi\n'
                                    'exec /usr/bin/restic "$@"\n')
    (lab.bin / "restic").chmod(0o755)
    run = take(lab)
    assert run.code == 0 and "was locked by another run" in run.stdout, run.stdout + run.stderr
    (repo,) = listing(lab)[1]
    assert [c.verified for c in repo.copies] == [False], "there, but not verified"
