"""Files and volumes in the backups (sh/files.sh) under bash with real rsync, sha256sum and cp, and a stub docker
that says where a named volume's folder is: what a files backup holds, unchanged files linked to the previous
backup, a drill that finds a damaged file, and every way a backup fails halfway leaving no backup. Fast tier: no
root, no dockerd (the end-to-end tier backs up a real volume, tests/e2e/test_backup_files.py)."""
import hashlib
import json
import os
import shutil

import pytest

from tasks.core import inventory
from tasks.core.programs.backup import (
    backup_program,
    drill_program,
    files_drilled,
    files_restore_program,
    retention,
    taken,
)
from tasks.core.programs.declare import Intent
from tasks.core.programs.recover import data_program

from .conftest import Lab, finished

INTENT = Intent("backup", "r1", "files", "ana@laptop", "laptop")


@pytest.fixture
def files_lab(tmp_path):
    """The lab's system backing up data/uploads, an absolute folder of the host and the volume ``storage``,
    which compose created for the ems stack (ems_system-ems_storage)."""
    lab = Lab(tmp_path)
    certs, volume = tmp_path / "infra" / "letsencrypt", tmp_path / "volumes" / "ems_system-ems_storage" / "_data"
    hosts = (lab.root / "hosts.yml").read_text().replace(
        "    stacks:\n", f"    backup: {{paths: [data/uploads, '{certs}'], volumes: [storage]}}\n    stacks:\n", 1)
    (lab.root / "hosts.yml").write_text(hosts)
    lab.target = inventory.load(lab.root / "hosts.yml").host("lab").targets()[0]
    uploads = lab.root / "ems_system" / "data" / "uploads"
    for folder, files in ((uploads, {"a.png": "png", "docs/b.pdf": "pdf " * 1000}), (certs, {"live/cert.pem": "PEM"}),
                          (volume, {"blob": "storage"})):
        for name, text in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
    lab.answer("docker", "volume inspect -f {{.Mountpoint}} *", code=1, stderr=True,
               output="Error response from daemon: get x: no such volume\n")
    lab.answer("docker", "volume inspect -f {{.Mountpoint}} ems_system-ems_storage", f"{volume}\n")
    lab.uploads, lab.certs, lab.volume = uploads, certs, volume
    yield lab
    finished(lab)


def backups_dir(lab):
    return lab.root / "ems_system" / "data" / "backups"


def take(lab, **kw):
    return lab.run(backup_program(lab.target, [], INTENT), **kw)


def test_a_files_backup_holds_each_part_counted_and_checksummed(files_lab):
    run = take(files_lab)
    assert run.code == 0, run.stdout + run.stderr
    (made,) = backups_dir(files_lab).iterdir()
    tree = made / "tree"
    assert (tree / "system/data/uploads/docs/b.pdf").read_text() == "pdf " * 1000
    assert (tree / f"host{files_lab.certs}/live/cert.pem").read_text() == "PEM"
    assert (tree / "volume/storage/blob").read_text() == "storage"
    assert (made / "PARTS").read_text().splitlines() == [
        "system/data/uploads\t2\t4003", f"host{files_lab.certs}\t1\t3", "volume/storage\t1\t7"]
    manifest = json.loads((made / "manifest.json").read_text())
    assert manifest["parts"][0] == {"part": "system/data/uploads", "files": 2, "bytes": 4003}
    assert len((made / "FILES.sha256").read_text().splitlines()) == 4
    (report,) = taken(run.result)
    assert report["stack"] == "files" and report["holds"] == f"system/data/uploads host{files_lab.certs} volume/storage"
    assert oct(made.stat().st_mode)[-3:] == "700"


def test_an_unchanged_file_is_a_link_to_the_previous_backup_a_changed_one_a_new_copy(files_lab):
    assert take(files_lab).code == 0
    (files_lab.uploads / "a.png").write_text("png, edited")
    os.rename(backups_dir(files_lab) / next(backups_dir(files_lab).iterdir()).name,
              backups_dir(files_lab) / "files-20261101T020000Z")   # (the second one must not take its name)
    assert take(files_lab).code == 0
    old, new = sorted(backups_dir(files_lab).iterdir())
    same = [(b / "tree/system/data/uploads/docs/b.pdf").stat().st_ino for b in (old, new)]
    changed = [(b / "tree/system/data/uploads/a.png") for b in (old, new)]
    assert same[0] == same[1], "an unchanged file costs the disk nothing"
    assert changed[0].stat().st_ino != changed[1].stat().st_ino and changed[1].read_text() == "png, edited"


def test_files_backups_are_pruned_by_the_retention_once_a_new_one_is_verified(files_lab):
    for minute in range(5):
        old = backups_dir(files_lab) / f"files-20261101T02{minute}000Z"
        old.mkdir(parents=True)
        (old / "manifest.json").write_text("{}")
    run = take(files_lab)
    assert run.code == 0, run.error
    kept = {name: action for series, name, action, _ in retention(run.result) if series == "files"}
    assert list(kept.values()).count("keep") == 3 and list(kept.values()).count("prune") == 3, kept
    assert sorted(p.name for p in backups_dir(files_lab).iterdir()) == sorted(n for n, a in kept.items() if a == "keep")


def test_a_drill_copies_every_part_out_and_finds_a_damaged_file(files_lab):
    assert take(files_lab).code == 0
    (made,) = backups_dir(files_lab).iterdir()
    run = files_lab.run(drill_program(files_lab.target, None, made.name))
    assert run.code == 0, run.stdout + run.stderr
    assert [(d["part"], d["files"], d["bytes"]) for d in files_drilled(run.result)] == [
        ("system/data/uploads", 2, 4003), (f"host{files_lab.certs}", 1, 3), ("volume/storage", 1, 7)]
    assert sorted(p.name for p in backups_dir(files_lab).iterdir()) == [made.name], "the scratch folder is gone"
    (made / "tree/volume/storage/blob").write_text("STORAGE")   # same size: only the checksum tells
    run = files_lab.run(drill_program(files_lab.target, None, made.name))
    assert run.code == 18 and "volume/storage came back damaged" in run.error and "blob" in run.error, run.error
    (made / "tree/volume/storage/blob").unlink()
    run = files_lab.run(drill_program(files_lab.target, None, made.name))
    assert run.code == 18 and "came back with 0 0 (files bytes), the backup recorded 1 7" in run.error, run.error


def test_an_empty_folder_is_backed_up_and_drilled_as_empty(files_lab):
    """Traefik's certificates folder before its first certificate."""
    shutil.rmtree(files_lab.certs)
    files_lab.certs.mkdir()
    assert take(files_lab).code == 0
    (made,) = backups_dir(files_lab).iterdir()
    run = files_lab.run(drill_program(files_lab.target, None, made.name))
    assert run.code == 0 and files_drilled(run.result)[1]["files"] == 0, run.error


@pytest.mark.parametrize("part", ["system/../../etc", "system/a b", "etc/passwd", "volume/x/../../y"])
def test_a_backup_naming_a_part_the_tool_does_not_write_is_not_used(files_lab, part):
    assert take(files_lab).code == 0
    (made,) = backups_dir(files_lab).iterdir()
    (made / "PARTS").write_text(f"{part}\t1\t7\n")
    sums = [line for line in (made / "SHA256SUMS").read_text().splitlines() if not line.endswith(" PARTS")]
    run = files_lab.run(drill_program(files_lab.target, None, made.name))
    assert run.code == 18 and "damaged" in run.error, "the checksums hold PARTS too"
    sums.append(f"{hashlib.sha256((made / 'PARTS').read_bytes()).hexdigest()}  PARTS")
    (made / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    run = files_lab.run(drill_program(files_lab.target, None, made.name))
    assert run.code == 18 and "lists a part" in run.error and "the tool does not write" in run.error, run.error


def test_a_missing_folder_or_volume_leaves_no_backup_and_the_old_ones(files_lab):
    old = backups_dir(files_lab) / "files-20261101T020000Z"
    old.mkdir(parents=True)
    (old / "manifest.json").write_text("{}")
    shutil.rmtree(files_lab.certs)
    run = take(files_lab)
    assert run.code == 18 and f"{files_lab.certs} does not exist on this host; no backup was written" in run.error
    assert [p.name for p in backups_dir(files_lab).iterdir()] == [old.name], "no partial folder, nothing pruned"
    files_lab.certs.mkdir(parents=True)
    files_lab.answer("docker", "volume inspect -f {{.Mountpoint}} ems_system-ems_storage", code=1)
    run = take(files_lab)
    assert run.code == 18 and "no volume ems_system-infra_storage or ems_system-ems_storage or ems_system-sms_storage or storage on" in run.error
    files_lab.answer("docker", "volume inspect -f {{.Mountpoint}} *", f"{files_lab.volume}\n")
    run = take(files_lab)
    assert run.code == 18 and "volumes ems_system-infra_storage ems_system-ems_storage ems_system-sms_storage storage all match storage" in run.error
    assert [p.name for p in backups_dir(files_lab).iterdir()] == [old.name]


def test_a_full_disk_during_the_copy_leaves_no_backup(files_lab):
    (files_lab.uploads / "big").write_bytes(b"x" * 400_000)
    run = take(files_lab, ulimit="-f 100")
    assert run.code == 18 and "copying" in run.error and "no backup was written" in run.error, run.stdout + run.stderr
    assert list(backups_dir(files_lab).iterdir()) == []


def backing_up_path(lab, path) -> Lab:
    """The lab's system backing up one absolute ``path`` (hosts.yml accepts it: the host is what refuses)."""
    hosts = (lab.root / "hosts.yml").read_text().replace(
        "    stacks:\n", f"    backup: {{paths: ['{path}']}}\n    stacks:\n", 1)
    (lab.root / "hosts.yml").write_text(hosts)
    lab.target = inventory.load(lab.root / "hosts.yml").host("lab").targets()[0]
    return lab


def test_an_absolute_path_holding_the_secrets_is_refused_on_the_host(tmp_path):
    """hosts.yml refuses the relative paths that would; an absolute one (/root) is found on the host."""
    lab = Lab(tmp_path)
    run = take(backing_up_path(lab, lab.root))
    assert run.code == 16 and f"{lab.root} holds {backups_dir(lab)}" in run.error, run.stdout + run.stderr
    assert not backups_dir(lab).exists() or list(backups_dir(lab).iterdir()) == []
    finished(lab)


def restore_live(lab, name):
    return lab.run(files_restore_program(lab.target, name, Intent("restore", "r2", name, "ana@laptop", "laptop")))


def tree(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_live_restore_swaps_the_folders_in_with_their_users_stopped_and_keeps_what_was_there(files_lab):
    assert take(files_lab).code == 0
    (made,) = backups_dir(files_lab).iterdir()
    before = tree(files_lab.uploads), tree(files_lab.volume)
    (files_lab.uploads / "a.png").write_text("overwritten")
    shutil.rmtree(files_lab.uploads / "docs")
    (files_lab.volume / "blob").unlink()
    ems = files_lab.container("ems")
    files_lab.answer("docker", "ps -q --filter label=com.docker.compose.project=*", "")
    files_lab.answer("docker", "ps -q --filter label=com.docker.compose.project=ems_system-ems", f"{ems}\n")
    files_lab.answer("docker", f"inspect -f {{{{range .Mounts}}}}{{{{println .Source}}}}{{{{end}}}} {ems}",
                     f"{files_lab.uploads}/sms\n/var/run/docker.sock\n")
    run = restore_live(files_lab, made.name)
    assert run.code == 0, run.stdout + run.stderr
    assert (tree(files_lab.uploads), tree(files_lab.volume)) == before
    assert [c for c in files_lab.commands("docker") if c.endswith(" stop")] == \
        ["compose -p ems_system-ems -f " + files_lab.target.compose(files_lab.target.system.stacks[1]) + " stop"]
    fresh = run.result.one("restored")["before"]
    assert tree(backups_dir(files_lab) / fresh / "tree/system/data/uploads") == {"a.png": "overwritten"}
    leftovers = [p for p in files_lab.uploads.parent.iterdir() if "fab-" in p.name]
    assert leftovers == [] and not any(p.name.startswith(".") for p in backups_dir(files_lab).iterdir())


def test_a_damaged_backup_or_a_part_no_longer_named_changes_nothing(files_lab):
    assert take(files_lab).code == 0
    (made,) = backups_dir(files_lab).iterdir()
    (files_lab.uploads / "a.png").write_text("now")
    (made / "tree/system/data/uploads/a.png").write_text("PNG")
    run = restore_live(files_lab, made.name)
    assert run.code == 18 and "is damaged" in run.error and "nothing changed" in run.error, run.error
    assert (files_lab.uploads / "a.png").read_text() == "now" and len(list(backups_dir(files_lab).iterdir())) == 1
    (made / "tree/system/data/uploads/a.png").write_text("png")
    hosts = (files_lab.root / "hosts.yml").read_text().replace("paths: [data/uploads, ", "paths: [")
    (files_lab.root / "hosts.yml").write_text(hosts)
    files_lab.target = inventory.load(files_lab.root / "hosts.yml").host("lab").targets()[0]
    run = restore_live(files_lab, made.name)
    assert run.code == 16 and "holds system/data/uploads, which backup.paths and backup.volumes no longer name" in \
        run.error, run.error
    assert (files_lab.uploads / "a.png").read_text() == "now" and len(list(backups_dir(files_lab).iterdir())) == 1


@pytest.mark.parametrize("where", ["ems_system/data/backups/old", "ems_system/.secrets/git"])
def test_an_absolute_path_inside_the_backups_or_the_secrets_is_refused_on_the_host(tmp_path, where):
    lab = Lab(tmp_path)
    (lab.root / where).mkdir(parents=True)
    run = take(backing_up_path(lab, lab.root / where))
    assert run.code == 16 and f"{lab.root / where} lies in" in run.error, run.stdout + run.stderr
    assert not [p for p in backups_dir(lab).iterdir() if p.name.startswith("files-")]
    finished(lab)


def test_an_empty_folder_comes_back_live_with_nothing_using_it(tmp_path):
    """A backup with no file in it (a new system's uploads) restored where no stack runs (a recovery's host):
    no checksum line to check, no stack to stop."""
    lab = Lab(tmp_path)
    empty = lab.root / "srv/empty"
    empty.mkdir(parents=True)
    lab = backing_up_path(lab, empty)
    assert take(lab).code == 0
    (made,) = backups_dir(lab).iterdir()
    (empty / "written-since").write_text("x")
    run = restore_live(lab, made.name)
    assert run.code == 0, run.stdout + run.stderr
    assert list(empty.iterdir()) == [] and lab.commands("docker") == [c for c in lab.commands("docker") if "stop" not in c]


def recovered_files(lab, name):
    return lab.run(data_program(lab.target, Intent("recover", "r3", "old/ems_system", "ana@laptop", "laptop"), [], name))


def test_a_recovery_makes_a_missing_volume_as_compose_would_and_fills_it(files_lab):
    """A new host: the volume compose would make for the ems stack is not there yet; the recovery makes it with
    compose's labels (for compose to adopt it) for the one stack whose file declares it, then restores into it."""
    lab = files_lab
    assert take(lab).code == 0
    (made,) = backups_dir(lab).iterdir()
    (lab.volume / "blob").unlink()   # (the folder docker makes for the new volume: the stub says where)
    lab.answer("docker", "volume inspect -f {{.Mountpoint}} ems_system-ems_storage", code=1, once=True)
    lab.answer("docker", "compose -p * config --volumes", "")
    lab.answer("docker", "compose -p ems_system-ems -f * config --volumes", "cache\nstorage\n")
    lab.answer("docker", "compose version --short", "2.24.6\n")
    lab.allow("docker", "volume create *")
    lab.allow("docker", "ps -q --filter label=com.docker.compose.project=*")   # (nothing runs yet)
    run = recovered_files(lab, made.name)
    assert run.code == 0, run.stdout + run.stderr
    assert "volume create --label com.docker.compose.project=ems_system-ems --label com.docker.compose.volume=storage "\
           "--label com.docker.compose.version=2.24.6 ems_system-ems_storage" in lab.commands("docker")
    assert (lab.volume / "blob").read_text() == "storage"


def test_a_recovery_refuses_a_volume_no_stack_or_two_stacks_declare(files_lab):
    lab = files_lab
    assert take(lab).code == 0
    (made,) = backups_dir(lab).iterdir()
    lab.answer("docker", "volume inspect -f {{.Mountpoint}} ems_system-ems_storage", code=1)
    lab.answer("docker", "compose -p * config --volumes", "")
    run = recovered_files(lab, made.name)
    assert run.code == 16 and "0 stacks declare volume storage" in run.error, run.stdout + run.stderr
    lab.answer("docker", "compose -p * config --volumes", "storage\n")
    run = recovered_files(lab, made.name)
    assert run.code == 16 and "stacks declare volume storage (one must" in run.error, run.stdout + run.stderr
    assert not [c for c in lab.commands("docker") if c.startswith("volume create")]


def test_the_stack_declaring_a_volume_is_found_however_long_compose_s_answer(tmp_path):
    """Seen in CI: `compose config --volumes | grep -q storage` under pipefail failed when grep ended before
    compose had written everything (SIGPIPE is ignored by the programs, so compose's write fails): the
    recovery said "0 stacks declare volume storage". The answer is now read whole, then searched."""
    lab = Lab(tmp_path)
    lab.answer("docker", "compose -p eh -f /c/stack.yml config --volumes", "storage\n" + "other\n" * 200_000)
    lab.answer("docker", "compose version --short", "2.40.3\n")
    lab.answer("docker", "volume create --label com.docker.compose.project=eh *")
    lab.answer("docker", "volume inspect -f {{.Mountpoint}} eh_storage", "/var/lib/docker/volumes/eh_storage/_data\n")
    run = lab.snippet('STACKS=(); run add_stack app /c/stack.yml /c/.env eh 30 "" "" ""; run add_volume volume/storage '
                      'eh_storage; volume_make volume/storage; echo "rc=$? $PART_DIR ${PART_ERR:-}"',
                      {"run", "add_stack", "add_volume", "volume_make"})
    assert run.stdout.strip().splitlines()[-1] == "rc=0 /var/lib/docker/volumes/eh_storage/_data", run.stdout
    finished(lab)
