"""The migration helpers, token rotation and setup, run under bash in a temp folder. Fast tier: no root."""
import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from tasks.core.programs.declare import Intent
from tasks.core.programs.protocol import Code
from tasks.core.programs.setup import SetupReport, finish_program, setup_program
from tasks.core.programs.token import rotate_program

from .conftest import CAPTURED, HERE, REGISTRY, TOKEN

NEW_TOKEN = "ghp_" + "N3w" * 12


def make_tree(root):
    (root / "ems" / "deep").mkdir(parents=True)
    (root / "ems" / "a file with spaces.txt").write_text("x" * 1000)
    (root / "ems" / "deep" / "ünïcode").write_bytes(os.urandom(300))
    (root / "empty").mkdir()
    os.symlink("ems/deep", root / "link")
    os.chmod(root / "ems" / "a file with spaces.txt", 0o640)


def manifest(lab, path):
    return lab.snippet(f"manifest '{path}'", {"manifest"}).result.log[-1]


def test_manifest_matches_a_faithful_copy_and_nothing_else(lab):
    src = lab.path / "src"
    make_tree(src)
    subprocess.run(["cp", "-a", str(src), str(lab.path / "copy")], check=True)
    assert manifest(lab, src) == manifest(lab, lab.path / "copy")
    for change in (lambda d: (d / "ems" / "deep" / "ünïcode").write_bytes(b"other"),
                   lambda d: os.chmod(d / "ems" / "a file with spaces.txt", 0o644),
                   lambda d: os.remove(d / "link") or os.symlink("ems", d / "link"),
                   lambda d: (d / "empty" / "new").write_text("")):
        subprocess.run(["rm", "-rf", str(lab.path / "c2")], check=True)
        subprocess.run(["cp", "-a", str(src), str(lab.path / "c2")], check=True)
        change(lab.path / "c2")
        assert manifest(lab, lab.path / "c2") != manifest(lab, src)


def test_copy_all_copies_verifies_and_marks(lab):
    src, dst = lab.path / "old" / "uploads", lab.root / "ems_system" / "data" / "uploads"
    make_tree(src)
    lab.state.mkdir()
    (lab.state / "migration").mkdir()
    run = lab.snippet("copy_all", {"copy_all"}, {"COPIES": [f"uploads\t{src}\t{dst}"]})
    assert run.code == 0, run.stdout + run.stderr
    assert manifest(lab, src) == manifest(lab, dst) and (lab.state / "migration" / "copied-uploads").exists()
    assert not (dst.parent / "uploads.migrating").exists() and src.exists(), "the old copy stays"


HOSTILE = ["/opt/a#b", "/opt/a&b", "/opt/a.b", "/opt/x/e", "/opt/[ab]*", "/opt/a\\1", "/opt/s#x#y#e"]


@pytest.mark.parametrize("old", HOSTILE)
def test_repoint_env_matches_the_old_path_exactly_whatever_it_holds(lab, old):
    env = lab.path / ".env"
    lines = [f"UPLOADS={old}/ems", f'LOGS="{old}"', f"OTHER={old}x/ems", "PLAIN=/somewhere/else",
             "# a comment /opt", "DB_PASSWORD=s3cr&t#1", "SIMILAR=/opt/axb/ems"]
    env.write_text("\n".join(lines) + "\n")
    env.chmod(0o640)
    run = lab.snippet('repoint_env "$E" "$OLD" "$NEW"', {"repoint_env"},
                      {"E": env, "OLD": old, "NEW": "/root/ems_system/data/uploads"})
    assert run.code == 0, run.stdout + run.stderr
    want = list(lines)
    want[0], want[1] = "UPLOADS=/root/ems_system/data/uploads/ems", 'LOGS="/root/ems_system/data/uploads"'
    assert env.read_text() == "\n".join(want) + "\n"
    assert oct(env.stat().st_mode & 0o777) == "0o640"
    assert "UPLOADS LOGS now point under" in run.stdout
    assert not (lab.path / "pwned").exists()


def test_repoint_env_leaves_a_file_without_matches_untouched(lab):
    env = lab.path / ".env"
    env.write_text("A=1\nB=/else\n")
    before = env.stat().st_mtime_ns
    lab.snippet('repoint_env "$E" /opt/old /new', {"repoint_env"}, {"E": env})
    assert env.read_text() == "A=1\nB=/else\n" and env.stat().st_mtime_ns == before


def test_rotation_replaces_the_token_only_after_a_real_login(lab):
    program = rotate_program(lab.target, Intent("rotate-token", "", "", "ana@laptop", "laptop"))
    run = lab.run(program, stdin_tail=NEW_TOKEN + "\n")
    assert run.code == 0, run.stdout + run.stderr
    assert lab.secrets.read_text() == f"export GITHUB_TOKEN={NEW_TOKEN}\n"
    assert oct(lab.secrets.stat().st_mode & 0o777) == "0o600"
    logins = lab.calls("docker")
    assert logins[0].stdin == NEW_TOKEN and logins[0].argv[1:] == ["login", "-u", "edumigsoft", "--password-stdin", "--", REGISTRY]
    assert logins[1].stdin == NEW_TOKEN, "the real login is refreshed with the new token"
    assert [p.name for p in lab.secrets.parent.iterdir()] == ["github"]


@pytest.mark.parametrize("tail, code, phrase", [("", Code.REFUSED, "no token arrived"),
                                                 ("\n", Code.REFUSED, "an empty token arrived")])
def test_rotation_without_a_token_changes_nothing(lab, tail, code, phrase):
    run = lab.run(rotate_program(lab.target, Intent("rotate-token", "", "", "a", "b")), stdin_tail=tail)
    assert run.code == code and phrase in run.error
    assert lab.secrets.read_text() == f"export GITHUB_TOKEN={TOKEN}\n" and lab.calls("docker") == []


def test_a_refused_new_token_leaves_the_old_file_and_no_temporary_files(lab):
    lab.answer("docker", "login *", captured="docker-login-denied.txt", code=1)
    run = lab.run(rotate_program(lab.target, Intent("rotate-token", "", "", "a", "b")), stdin_tail=NEW_TOKEN + "\n")
    assert run.code == Code.LOGIN and "the old token file and login are unchanged" in run.error
    assert lab.secrets.read_text() == f"export GITHUB_TOKEN={TOKEN}\n"
    assert [p.name for p in lab.secrets.parent.iterdir()] == ["github"]
    assert NEW_TOKEN not in run.stdout + run.stderr


def test_setup_creates_what_the_stacks_use_once_and_reports_placeholders(lab):
    """The tool's own folders, then the folders the compose files bind-mount on the host (outside repo/, the
    checkout's own; nothing left unresolved; nothing outside the hierarchy): no system gets EMS's folders."""
    ems = lab.root / "ems_system" / "repo" / "ems"
    (ems / ".env_example").write_text("DB_PASSWORD=change-me\nPORT=8080\nSECRET=\"<your secret>\"\n")
    binds = [f"{lab.root}/infra/letsencrypt", f"{lab.root}/ems_system/data/uploads/ems", f"{ems}/nginx.conf",
             "/var/lib/elsewhere", "${UNSET}/x"]
    config = json.loads((CAPTURED / "compose-config-infra.json").read_text())
    config["services"]["traefik"]["volumes"] = [{"type": "bind", "source": b, "target": "/t"} for b in binds]
    lab.answer("docker", "compose -f * config *", json.dumps(config))
    first = lab.run(setup_program(lab.target))
    assert first.code == 0, first.stdout + first.stderr
    created = {d["path"] for d in first.result.all("dir") if d["result"] == "created"}
    assert created == {str(lab.state)}, "the token's folder was there already"
    assert oct(lab.state.stat().st_mode & 0o777) == "0o700"
    assert (ems / ".env").read_text() == (ems / ".env_example").read_text()
    assert sorted(d["key"] for d in first.result.all("placeholder")) == ["DB_PASSWORD", "SECRET"]
    assert all("change-me" not in line for line in first.stdout.splitlines()), "values never leave the host"
    report = SetupReport()
    report.add(first.result, "lab", lab.target)
    assert report.folders == binds[:2]
    finish = lab.run(finish_program(lab.target, report.folders, []))
    assert finish.code == 0 and (lab.root / "infra/letsencrypt").is_dir() and not Path("/var/lib/elsewhere").exists()
    again = lab.run(setup_program(lab.target))
    assert {d["result"] for d in again.result.all("dir")} == {"exists"}


def test_a_folder_that_once_held_more_files_still_verifies(lab):
    """ext4 keeps a folder's size after most of its entries are deleted; its copy is smaller. The manifest
    compares what matters, so such a copy verifies (before, a migration could never finish)."""
    src = lab.path / "uploads"
    src.mkdir()
    for i in range(400):
        (src / f"a-fairly-long-upload-file-name-{i:04}.jpg").write_text(str(i))
    for i in range(300):
        (src / f"a-fairly-long-upload-file-name-{i:04}.jpg").unlink()
    subprocess.run(["cp", "-a", str(src), str(lab.path / "copy")], check=True)
    assert src.stat().st_size != (lab.path / "copy").stat().st_size, "this filesystem does not keep folder sizes"
    assert manifest(lab, src) == manifest(lab, lab.path / "copy")


def test_remove_old_never_deletes_a_folder_that_is_the_new_one(lab):
    """A legacy path that resolves (through a symlink) to its new location: --remove-old refuses and deletes
    nothing."""
    new = lab.root / "ems_system" / "data" / "uploads"
    new.mkdir(parents=True)
    (new / "photo.jpg").write_text("live data")
    (lab.path / "old").symlink_to(new)
    (lab.state / "migration").mkdir(parents=True)
    for marker in ("done", "copied-uploads"):
        (lab.state / "migration" / marker).write_text("x\n")
    run = lab.snippet("run remove_old", {"run", "remove_old"},
                      {"SYSTEM": "ems_system", "COPIES": [f"uploads\t{lab.path / 'old'}\t{new}"]})
    assert run.code == Code.REFUSED and "same folder or inside each other" in run.error
    assert (new / "photo.jpg").read_text() == "live data"


def test_the_migration_checks_refuse_overlapping_folders(lab):
    (lab.root / "ems_system" / "repo").mkdir(parents=True, exist_ok=True)
    run = lab.snippet("migration_checks", {"migration_checks"},
                      {"BASE": lab.root / "ems_system", "ACTION": "migrate-layout", "VOLUMES": [],
                       "COPIES": [f"repo\t{lab.root / 'ems_system'}\t{lab.root / 'ems_system' / 'repo'}"]})
    assert any("inside each other" in d["reason"] for d in run.result.all("refuse")), run.stdout


def test_every_refusal_reaches_the_message_as_it_was_said(lab):
    """The reasons used to be cut back out of their own JSON lines with sed: an escaped quote leaked into the
    message as \\" and a ';' inside one split it in two. Now they are kept as said, every one named."""
    odd = lab.path / 'old "x"; y'
    lab.answer("docker", "volume inspect nosuch", code=1)
    run = lab.snippet("migration_checks_or_die", {"migration_checks_or_die"},
                      {"BASE": lab.root / "ems_system", "ACTION": "migrate-layout", "VOLUMES": ["nosuch"],
                       "COPIES": [f"repo\t{odd}\t{lab.root / 'ems_system' / 'repo'}"]})
    assert run.code == Code.REFUSED
    assert run.error.startswith(f"refused before changing anything: the old repo folder {odd} is missing; "
                                "the named volume nosuch does not exist"), run.error


def test_a_resumed_migration_does_not_refuse_its_own_verified_copy(lab):
    """Killed after its copies were verified and its .env files re-pointed: the copy now differs from the old
    folder, and the resumed run must take it as done (before, it refused: "already holds other content")."""
    src, dst = lab.path / "old" / "repo", lab.root / "ems_system" / "repo2"
    make_tree(src)
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    (dst / "ems" / ".env").write_text("UPLOADS=/root/ems_system/data/uploads/ems\n")  # re-pointed
    (lab.state / "migration").mkdir(parents=True)
    (lab.state / "migration" / "copied-repo").write_text("x\n")
    run = lab.snippet("migration_checks", {"migration_checks"}, {"BASE": lab.root / "ems_system", "ACTION": "migrate-layout",
                                                   "VOLUMES": [], "COPIES": [f"repo\t{src}\t{dst}"]})
    assert run.result.all("refuse") == [], run.stdout


def test_setup_and_deploy_know_enlevohubs_env_docker_too(lab):
    """seed 002 ships .env.docker, not .env_example: setup makes .env from it, deploy checks against it."""
    ems = lab.root / "ems_system" / "repo" / "ems"
    (ems / ".env.docker").write_text("POSTGRES_PASSWORD=change-me\n")
    assert lab.run(setup_program(lab.target)).code == 0
    assert (ems / ".env").read_text() == "POSTGRES_PASSWORD=change-me\n"
    from tasks.core.programs.deploy import deploy_program
    t = lab.target
    run = lab.run(deploy_program(t, list(t.system.stacks), Intent("deploy", "r", "v1", "a", "b", tags={"ems": "v1"})))
    assert run.code == Code.REFUSED and "ems:POSTGRES_PASSWORD" in run.error


def test_setup_names_the_listed_placeholders_too(lab):
    ems = lab.root / "ems_system" / "repo" / "ems"
    (ems / ".env.docker").write_text("DB_PASSWORD=enlevohub2026\nPORT=8080\n")
    t = lab.target
    stacks = [replace(s, placeholders=("enlevohub2026",)) if s.name == "ems" else s for s in t.system.stacks]
    run = lab.run(setup_program(replace(t, system=replace(t.system, stacks=tuple(stacks)))))
    assert run.code == 0 and [d["key"] for d in run.result.all("placeholder")] == ["DB_PASSWORD"]
    assert "enlevohub2026" not in run.stdout, "only the key leaves the host"


def test_a_unit_is_never_wider_than_its_template_and_only_the_tools_environment_files_are_touched(lab):
    """Issue 20 items 4 and 6: a unit installed from a root-only template was made 644 (a token in it readable by
    all), and every EnvironmentFile= a unit named was created or chmodded (/etc/environment became 600)."""
    (lab.bin / "systemctl").symlink_to(HERE / "stub")
    lab.allow("systemctl", "daemon-reload")
    lab.allow("systemctl", "enable plantao.service")
    template, system_env, own = lab.path / "repo/plantao.service", lab.path / "etc/environment", \
        lab.path / "etc/plantao/plantao.env"
    for path in (template, system_env, lab.path / "systemd/x"):
        path.parent.mkdir(parents=True, exist_ok=True)
    system_env.write_text("LANG=C\n")
    system_env.chmod(0o644)
    template.write_text(f"[Service]\nEnvironmentFile={own}\nEnvironmentFile=-{system_env}\nExecStart=/opt/p/p\n")
    template.chmod(0o600)
    unit = lab.path / "systemd/plantao.service"
    run = lab.snippet(f"ensure_unit '{unit}' '{template}' '{lab.path}/etc/plantao' /opt/p", {"ensure_unit"})
    assert oct(unit.stat().st_mode & 0o777) == "0o600", "never wider than its template"
    assert own.read_text() == "" and oct(own.stat().st_mode & 0o777) == "0o600"
    assert system_env.read_text() == "LANG=C\n" and oct(system_env.stat().st_mode & 0o777) == "0o644"
    assert {"unit": "plantao.service", "path": str(system_env), "result": "outside"} in run.result.all("unitenv")
