"""The backup library (sh/backup.sh, sh/restore.sh) under bash with a stub docker: retention's choices, a backup that fails
halfway (a dump, its read-back, a full disk) leaving nothing that looks like a backup, a damaged backup
refused before anything restores, a failed live restore leaving the live databases alone and the clients
running. Fast tier: no root, no PostgreSQL (the end-to-end tier runs the real one, tests/e2e/test_backup.py)."""
import hashlib
import json

import pytest

from tasks.core import inventory
from tasks.core.backupplan import Retention
from tasks.core.programs.backup import backup_program, drill_program, restore_program, retention
from tasks.core.programs.declare import Intent

from .conftest import Lab, finished

INTENT = Intent("backup", "r1", "postgres", "ana@laptop", "laptop")
DATABASES = "      postgres: {compose: repo/postgres/docker-compose.yml, database: {service: db}}\n"


@pytest.fixture
def db_lab(tmp_path):
    """The lab's system with a database stack between infra and the apps, and a PostgreSQL container that
    answers: two databases, dumps of a few bytes, every read-back fine."""
    lab = Lab(tmp_path)
    hosts = (lab.root / "hosts.yml").read_text().replace("      ems: {", DATABASES + "      ems: {", 1)
    (lab.root / "hosts.yml").write_text(hosts)
    lab.target = inventory.load(lab.root / "hosts.yml").host("lab").targets()[0]
    lab.healthy_host()
    lab.answer("docker", "ps -q --filter label=com.docker.compose.project=ems_system-postgres*", "c0ffee\n")
    lab.allow("docker", "exec c0ffee psql -X -v ON_ERROR_STOP=1 -U admin -d postgres -Atqc *")   # CREATE, DROP
    lab.answer("docker", "exec c0ffee printenv POSTGRES_USER", "admin\n")
    lab.answer("docker", "exec c0ffee psql * -d postgres -Atqc SELECT datname *", "escala_db\nrh_db\n")
    lab.answer("docker", "exec c0ffee pg_dumpall -U admin --globals-only", "CREATE ROLE admin;\n")
    lab.answer("docker", "exec c0ffee pg_dump -U admin -Fc escala_db", "PGDMP escala\n")
    lab.answer("docker", "exec c0ffee pg_dump -U admin -Fc rh_db", "PGDMP rh\n")
    lab.allow("docker", "exec -i c0ffee pg_restore -f /dev/null")   # reads a dump back whole: silent when it can
    lab.allow("docker", "exec -i c0ffee pg_restore -U admin -d *")   # restores into a scratch or new database
    yield lab
    finished(lab)


def stack(lab, name="postgres"):
    return next(s for s in lab.target.system.stacks if s.name == name)


def backups_dir(lab):
    return lab.root / "ems_system" / "data" / "backups"


def take(lab):
    return lab.run(backup_program(lab.target, [stack(lab)], INTENT))


def test_a_backup_is_every_database_read_back_checksummed_then_renamed(db_lab):
    run = take(db_lab)
    assert run.code == 0, run.stdout + run.stderr
    (made,) = [p for p in backups_dir(db_lab).iterdir()]
    assert made.name.startswith("postgres-20") and sorted(p.name for p in made.iterdir()) == \
        ["SHA256SUMS", "escala_db.dump", "globals.sql", "manifest.json", "rh_db.dump"]
    assert (made / "escala_db.dump").read_text() == "PGDMP escala\n"
    manifest = json.loads((made / "manifest.json").read_text())
    assert manifest["databases"] == ["escala_db", "rh_db"] and manifest["taken"] == "backup"
    assert oct(backups_dir(db_lab).stat().st_mode)[-3:] == "700" and oct(made.stat().st_mode)[-3:] == "700"
    assert oct((made / "globals.sql").stat().st_mode)[-3:] == "600", "the roles' password hashes are root's only"
    read_back = [c for c in db_lab.commands("docker") if "pg_restore -f /dev/null" in c]
    assert read_back == ["exec -i c0ffee pg_restore -f /dev/null"] * 2, "each dump is read back whole"
    audit = (db_lab.state / "audit.jsonl").read_text().splitlines()
    assert json.loads(audit[-1])["task"] == "backup" and json.loads(audit[-1])["result"] == "ok"


@pytest.mark.parametrize("failing, why", [
    (("exec c0ffee pg_dump -U admin -Fc rh_db", "pg_dump: error: connection to server lost\n"),
     "pg_dump of rh_db failed: pg_dump: error: connection to server lost"),
    (("exec -i c0ffee pg_restore -f /dev/null", "pg_restore: error: could not read from input file: end of file\n"),
     "the dump of escala_db does not read back whole (pg_restore: error: could not read from input file"),
])
def test_a_backup_that_fails_halfway_leaves_no_backup_and_the_old_ones(db_lab, failing, why):
    old = backups_dir(db_lab) / "postgres-20261101T020000Z"
    old.mkdir(parents=True)
    (old / "manifest.json").write_text("{}")
    db_lab.answer("docker", failing[0], failing[1], code=1, stderr=True)
    run = take(db_lab)
    assert run.code == 18 and why in run.error, run.stdout + run.stderr
    assert [p.name for p in backups_dir(db_lab).iterdir()] == [old.name], "no partial folder, nothing pruned"


def test_a_full_disk_during_a_dump_leaves_no_backup(db_lab):
    db_lab.answer("docker", "exec c0ffee pg_dump -U admin -Fc escala_db", "x" * 400_000)
    run = db_lab.run(backup_program(db_lab.target, [stack(db_lab)], INTENT), ulimit="-f 100")
    assert run.code == 18 and "escala_db.dump (disk full?); no backup was written" in run.error, run.stdout
    assert "cannot write" in run.error and list(backups_dir(db_lab).iterdir()) == []


def test_no_running_database_is_refused_with_what_to_do(db_lab):
    db_lab.answer("docker", "ps -q --filter label=com.docker.compose.project=ems_system-postgres*", "")
    run = take(db_lab)
    assert run.code == 16 and "its database service db is not running (compose project ems_system-postgres)" in run.error


def make_backups(lab, names):
    for name in names:
        (backups_dir(lab) / name).mkdir(parents=True)
        (backups_dir(lab) / name / "manifest.json").write_text("{}")


STAMPS = ["20261126T030000Z", "20261126T020000Z", "20261125T020000Z", "20261124T020000Z", "20261117T020000Z",
          "20261110T020000Z", "20261031T020000Z", "20260930T020000Z", "20260815T020000Z"]


def prune(lab, mode, taken=""):
    keep = Retention(last=2, daily=3, weekly=2, monthly=3)
    body = f"TAKEN='{taken}'; prune_backups postgres {keep.last} {keep.daily} {keep.weekly} {keep.monthly} {mode}"
    return lab.snippet(body, {"prune_backups"}, {"BACKUPS": str(backups_dir(lab))})


def test_retention_keeps_the_last_and_the_newest_of_each_day_week_and_month(db_lab):
    make_backups(db_lab, [f"postgres-{s}" for s in STAMPS] + ["postgres-20260101T000000Z-partial"])
    (backups_dir(db_lab) / ".partial-postgres-20261126T040000Z").mkdir()
    (backups_dir(db_lab) / "postgres-20261001T000000Z").mkdir()   # no manifest: not a backup, never touched
    run = prune(db_lab, "prune", taken='"postgres-20261126T030000Z"')
    assert run.code == 0, run.stderr
    got = {name: (action, why) for _, name, action, why in retention(run.result)}
    assert got == {
        "postgres-20261126T030000Z": ("keep", "newest last daily weekly monthly"),
        "postgres-20261126T020000Z": ("keep", "last"),
        "postgres-20261125T020000Z": ("keep", "daily"),
        "postgres-20261124T020000Z": ("keep", "daily"),
        "postgres-20261117T020000Z": ("keep", "weekly"),       # ISO week 47
        "postgres-20261110T020000Z": ("prune", ""),            # week 46: weekly used up; November already kept
        "postgres-20261031T020000Z": ("keep", "monthly"),
        "postgres-20260930T020000Z": ("keep", "monthly"),
        "postgres-20260815T020000Z": ("prune", ""),
    }
    left = sorted(p.name for p in backups_dir(db_lab).iterdir())
    assert "postgres-20261110T020000Z" not in left and "postgres-20260815T020000Z" not in left
    assert {".partial-postgres-20261126T040000Z", "postgres-20261001T000000Z",
            "postgres-20260101T000000Z-partial"} <= set(left), "what is not a complete backup is not retention's"


def test_retention_removes_nothing_unless_this_program_made_a_backup_of_the_stack(db_lab):
    make_backups(db_lab, [f"postgres-{s}" for s in STAMPS])
    for taken in ("", '"postgres2-20261126T030000Z"'):
        run = prune(db_lab, "prune", taken)
        assert run.code == 0 and len(list(backups_dir(db_lab).iterdir())) == len(STAMPS)


def test_the_preview_counts_a_backup_taken_now_and_removes_nothing(db_lab):
    make_backups(db_lab, [f"postgres-{s}" for s in STAMPS])
    run = prune(db_lab, "preview")
    rows = retention(run.result)
    assert rows[0][1:3] == ("(new)", "keep") and len(rows) == len(STAMPS) + 1
    assert len(list(backups_dir(db_lab).iterdir())) == len(STAMPS)


def test_a_damaged_backup_is_refused_before_anything_restores(db_lab):
    assert take(db_lab).code == 0
    (made,) = backups_dir(db_lab).iterdir()
    with open(made / "rh_db.dump", "a") as f:
        f.write("bit rot")
    for program in (drill_program(db_lab.target, stack(db_lab), made.name),
                    restore_program(db_lab.target, stack(db_lab), made.name, INTENT)):
        before = len(db_lab.calls("docker"))
        run = db_lab.run(program)
        assert run.code == 18 and f"backup {made.name} is damaged" in run.error and "rh_db.dump" in run.error
        assert db_lab.calls("docker")[before:] == [], "nothing was asked of docker: no stop, no restore"


def test_a_dump_not_named_after_a_database_never_reaches_sql(db_lab):
    """Issue 20 item 7: a file named 'x"; DROP DATABASE "live"; --.dump' in a backup folder became an identifier
    of the restore's SQL. Names from disk are data: refused before anything restores (even with its checksum)."""
    assert take(db_lab).code == 0
    (made,) = backups_dir(db_lab).iterdir()
    evil = 'x"; DROP DATABASE "live"; --.dump'
    (made / evil).write_bytes(b"PGDMP")
    with open(made / "SHA256SUMS", "a") as f:
        f.write(f"{hashlib.sha256(b'PGDMP').hexdigest()}  {evil}\n")
    for program in (drill_program(db_lab.target, stack(db_lab), made.name),
                    restore_program(db_lab.target, stack(db_lab), made.name, INTENT)):
        before = len(db_lab.calls("docker"))
        run = db_lab.run(program)
        assert run.code == 18 and "which is not named after a database: not used" in run.error, run.error
        assert db_lab.calls("docker")[before:] == [], "nothing was asked of docker: no stop, no restore"


def test_a_live_restore_that_fails_leaves_the_live_databases_and_starts_the_clients_again(db_lab):
    assert take(db_lab).code == 0
    (made,) = backups_dir(db_lab).iterdir()
    db_lab.answer("docker", "exec -i c0ffee pg_restore -U admin -d fab_restore_rh_db *", "pg_restore: error: out of "
                  "memory\n", code=1, stderr=True)
    db_lab.answer("docker", "compose * up *", captured="compose-up-healthy.txt")
    db_lab.answer("curl", "*")
    run = db_lab.run(restore_program(db_lab.target, stack(db_lab), made.name, INTENT))
    assert run.code == 18, run.stdout + run.stderr
    assert "pg_restore of rh_db from" in run.error and "the live databases are untouched (and in backup" in run.error
    compose = [c for c in db_lab.commands("docker") if c.startswith("compose")]
    stops = [c.split()[2] for c in compose if c.endswith(" stop")]
    ups = [c.split()[2] for c in compose if " up " in c]
    assert stops == ["ems_system-sms", "ems_system-ems"] and ups == ["ems_system-ems", "ems_system-sms"]
    sql = " ".join(c for c in db_lab.commands("docker") if "psql" in c)
    assert "RENAME" not in sql and "DROP DATABASE IF EXISTS \"fab_restore_escala_db\"" in sql
    assert len(list(backups_dir(db_lab).iterdir())) == 2, "the fresh backup taken first is kept"
