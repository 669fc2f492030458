"""The shell library's building blocks, each run under bash: the lock, reading the token, atomic writes,
.env pins, the current file, JSON on the wire, and the fail-closed step runner. Fast tier: no root."""
import json
import os

import pytest

from tasks.core.programs.protocol import Code, Program, assemble
from tasks.core.programs.steps import StepError

from .conftest import TOKEN

LOCK_HEAD = {"SYSTEM": "ems_system", "ACTION": "deploy", "BY": "ana@laptop", "TAG": "v1", "RELEASE": "r1"}


def take_lock(lab, **head):
    return lab.snippet("run lock_take; cat \"$STATE/lock/info\"; HOLDING=0", {"run", "lock_take"},
                       {**LOCK_HEAD, **head})


def test_the_lock_is_taken_with_who_what_and_pid(lab):
    lab.state.mkdir()
    run = take_lock(lab)
    assert run.code == 0, run.stdout + run.stderr
    info = run.result.log[-1]
    assert info.startswith("ana@laptop since 20") and info.endswith(")") and "(deploy v1, release r1, pid " in info


def test_a_held_lock_refuses_and_names_its_holder(lab):
    (lab.state / "lock").mkdir(parents=True)
    (lab.state / "lock" / "info").write_text(f"bob@ci since 2026-11-20T10:00:00Z (deploy v9, release x, pid {os.getpid()})\n")
    run = take_lock(lab)
    assert run.code == Code.LOCKED and "another deploy holds the lock of ems_system: bob@ci since" in run.error
    assert "stale" not in run.error
    assert (lab.state / "lock" / "info").read_text().startswith("bob@ci"), "a refused deploy must not touch the lock"


def test_a_lock_whose_process_is_gone_is_called_stale(lab):
    (lab.state / "lock").mkdir(parents=True)
    (lab.state / "lock" / "info").write_text("bob@ci since 2026-11-20T10:00:00Z (deploy v9, release x, pid 4194304)\n")
    run = take_lock(lab)
    assert run.code == Code.LOCKED and "its process is gone, so the lock is stale" in run.error
    run = take_lock(lab, ACTION="migrate-layout")
    assert run.code == Code.LOCKED, "only an interrupted migration's lock is taken over"


def test_an_interrupted_migrations_lock_is_taken_over_by_the_next_migration(lab):
    (lab.state / "lock").mkdir(parents=True)
    (lab.state / "lock" / "info").write_text("bob@ci since 2026-11-20T10:00:00Z (migrate-layout x, release x, pid 4194304)\n")
    (lab.state / "lock" / "action").write_text("migrate-layout")
    (lab.state / "lock" / "pid").write_text("4194304")
    run = take_lock(lab, ACTION="migrate-layout")
    assert run.code == 0 and "taking over the lock of an interrupted migration" in run.stdout
    assert (lab.state / "lock" / "pid").read_text() != "4194304", "its fields are this program's now"


def dead_deploy(lab, stacks: str = "ems sms", pid: int = 4194304, **fields) -> None:
    """The lock a deploy left when its program died (kill -9, out of memory, a reboot), its release r0 recorded
    deploying."""
    lock = lab.state / "lock"
    lock.mkdir(parents=True)
    meta = '"release":"r0","tag":"v2","action":"deploy","by":"bob@ci","from":"ci"'
    values = {"info": "bob@ci since 2026-12-03T10:00:00Z (deploy v2, release r0, pid 1)\n", "action": "deploy",
              "fleet": "", "pid": str(pid), "release": "r0", "meta": meta, "stacks": stacks, **fields}
    for name, value in values.items():
        (lock / name).write_text(value)
    (lab.state / "releases.jsonl").write_text("{" + meta + ',"state":"deploying","at":"2026-12-03T10:00:00Z","images":{}}\n')


def finish(lab, stacks: str, **head):
    """A deploy bringing up ``stacks`` takes the lock (its history read before: EXPECT_HISTORY)."""
    sha = __import__("hashlib").sha256((lab.state / "releases.jsonl").read_bytes()).hexdigest()
    declare = "".join(f"STACKS+=({s}); " for s in stacks.split())
    return lab.snippet(f"STACKS=(); {declare}run lock_take; run check_history; echo \"inherited ${{INHERITED[*]}}\"; "
                       "HOLDING=0", {"run", "lock_take", "check_history"},
                       {**LOCK_HEAD, "META": '"release":"r1"', "EXPECT_HISTORY": sha, **head})


def test_a_dead_deploys_lock_is_taken_over_by_a_deploy_of_its_stacks_and_its_release_recorded_interrupted(lab):
    """Issue 20 item 14: the next deploy or rollback that brings up every stack the dead one did takes its lock
    over, says so, records its release interrupted, and restores those stacks too if its own release fails."""
    dead_deploy(lab)
    run = finish(lab, "infra ems sms")
    assert run.code == 0, run.stdout + run.stderr
    assert "interrupted: bob@ci since 2026-12-03T10:00:00Z (deploy v2, release r0, pid 1): its program is gone" \
        in run.stdout and "inherited ems sms" in run.stdout
    last = json.loads((lab.state / "releases.jsonl").read_text().splitlines()[-1])
    assert (last["release"], last["state"], last["by"]) == ("r0", "interrupted", "bob@ci")
    assert (lab.state / "lock" / "release").read_text() == "r1" and not list(lab.state.glob("lock.new*"))
    assert run.result.one("interrupted") == {"release": "r0"}


def test_a_dead_deploys_lock_refuses_what_would_not_finish_it(lab):
    """A deploy of fewer stacks than the dead one brought up (a stack of it could run its release, unverified),
    a backup, a migration: refused, naming the stacks, nothing changed."""
    dead_deploy(lab)
    before = (lab.state / "releases.jsonl").read_text()
    for run in (finish(lab, "ems"), take_lock(lab, ACTION="backup"), take_lock(lab, ACTION="migrate-layout")):
        assert run.code == Code.LOCKED, run.stdout
        assert "its stacks (ems sms) may run its release unverified: deploy or roll back at least those" in run.error
    assert (lab.state / "releases.jsonl").read_text() == before and (lab.state / "lock" / "pid").read_text() == "4194304"


def test_a_lock_is_dead_when_the_host_rebooted_or_its_pid_runs_another_program(lab):
    """A pid alone can lie: after a reboot (another boot id) or once reused (another start time) it names a
    process that is not the lock's holder. The same pid, start time and boot: alive, never taken over."""
    pid = os.getpid()
    mine = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1].split()[19]
    boot = open("/proc/sys/kernel/random/boot_id").read()
    for fields, dead in ((dict(boot="another-boot\n", started=mine), "the host rebooted since"),
                         (dict(boot=boot, started="1"), "its program is gone"),
                         (dict(boot=boot, started=mine), None)):
        here = type(lab)(lab.path / f"case{len(fields)}{dead}".replace(" ", ""))
        dead_deploy(here, pid=pid, **fields)
        run = finish(here, "ems sms")
        if dead:
            assert run.code == 0 and dead in run.stdout, run.stdout
        else:
            assert run.code == Code.LOCKED and "another deploy holds the lock" in run.error
    zombie = __import__("subprocess").Popen(["true"])   # killed, not reaped yet: `kill -0` still says alive
    while open(f"/proc/{zombie.pid}/stat").read().rsplit(") ", 1)[1][0] != "Z":
        pass
    here = type(lab)(lab.path / "zombie")
    dead_deploy(here, pid=zombie.pid, boot=boot)
    assert "its program is gone" in finish(here, "ems sms").stdout
    zombie.wait()


def test_a_fleet_runs_lock_is_never_taken_for_a_dead_deploys(lab):
    """A fleet run's lock outlives the programs that took it (their pids are gone between them): only its run
    frees it."""
    dead_deploy(lab, fleet="f1")
    run = finish(lab, "ems sms")
    assert run.code == Code.LOCKED and "interrupted" not in run.error


def test_an_operators_name_cannot_make_a_deploys_lock_look_like_a_migrations(lab):
    """Issue 20 item 10: the lock's info line was read back with a glob, so an operator named
    'eve (migrate-layout x' held a deploy lock a migration would take over once its process died."""
    lab.state.mkdir()
    hold = lab.snippet("run lock_take; HOLDING=0", {"run", "lock_take"},
                       {**LOCK_HEAD, "BY": "eve (migrate-layout x, release y, pid 1)"})
    assert hold.code == 0 and (lab.state / "lock" / "action").read_text() == "deploy"
    (lab.state / "lock" / "pid").write_text("4194304")   # its process died
    run = take_lock(lab, ACTION="migrate-layout")
    assert run.code == Code.LOCKED and "interrupted: eve (migrate-layout x" in run.error
    assert "deploy or roll back at least those stacks" in run.error, "a dead deploy's lock: a migration refuses"


def test_a_lock_taken_by_a_program_is_released_however_it_ends(lab):
    lab.state.mkdir()
    run = lab.snippet("run lock_take; die \"$R_PULL\" boom", {"run", "lock_take", "die"}, LOCK_HEAD)
    assert run.code == Code.PULL and not (lab.state / "lock").exists()


def test_a_fleet_runs_lock_is_held_for_the_run_taken_over_by_its_programs_and_freed_only_by_it(lab):
    fleet = {**LOCK_HEAD, "FLEET": "f1"}
    hold = lab.snippet("run lock_hold", {"run", "lock_hold"}, fleet)
    info = (lab.state / "lock" / "info").read_text()
    assert hold.code == 0 and ", fleet f1, pid " in info, "held after the program ended: the run keeps it"
    assert take_lock(lab).code == Code.LOCKED, "another deploy is refused meanwhile"
    assert take_lock(lab, FLEET="f2").code == Code.LOCKED, "and so is another fleet run"
    step = lab.snippet("run lock_take; die \"$R_PULL\" boom", {"run", "lock_take", "die"}, fleet)
    assert step.code == Code.PULL and (lab.state / "lock").exists(), "its own program takes it over and leaves it"
    assert lab.snippet("run lock_free", {"run", "lock_free"}, {**fleet, "FLEET": "f2"}).code == 0
    assert (lab.state / "lock").exists(), "another run's free leaves it"
    assert lab.snippet("run lock_free", {"run", "lock_free"}, fleet).code == 0
    assert not (lab.state / "lock").exists()


@pytest.mark.parametrize("content", [
    f"export GITHUB_TOKEN={TOKEN}\n", f"GITHUB_TOKEN={TOKEN}\n", f"export GITHUB_TOKEN={TOKEN}\r\n",
    f'export GITHUB_TOKEN="{TOKEN}"\n', f"export GITHUB_TOKEN='{TOKEN}'\n", f"# a comment\nexport GITHUB_TOKEN={TOKEN}",
    f"export OTHER=1\nexport GITHUB_TOKEN=old\nexport GITHUB_TOKEN={TOKEN}\n",
])
def test_read_token_takes_the_seeds_line_in_its_variants(lab, content):
    lab.secrets.write_text(content)
    run = lab.snippet('read_token "$SECRETS" && [ "$GITHUB_TOKEN" = "$WANT" ] && echo same', {"read_token"},
                      {"WANT": TOKEN})
    assert run.result.log == ["same"], run.stdout + run.stderr


@pytest.mark.parametrize("content", ["# no token here\n", "", "export GITHUB_TOKEN=\n", "export GH_TOKEN=x\n"])
def test_read_token_fails_without_a_token_line(lab, content):
    lab.secrets.write_text(content)
    run = lab.snippet('if read_token "$SECRETS"; then echo found; else echo none; fi', {"read_token"})
    assert run.result.log == ["none"]


def test_atomic_write_replaces_whole_or_not_at_all(lab):
    target = lab.path / "releases.jsonl"
    old = "".join(f'{{"line":{i}}}\n' for i in range(600))
    target.write_text(old)
    ok = lab.snippet(f"atomic_write '{target}' printf 'new\\n' && echo written", {"atomic_write"})
    assert ok.result.log == ["written"] and target.read_text() == "new\n"
    target.write_text(old)
    # A write that fails part-way (here: over the 16 KB file-size limit, as a full disk would) leaves the old file.
    body = f"atomic_write '{target}' seq 1 100000 && echo written || echo failed"
    failed = lab.run(assemble("t", [], {"atomic_write"}, ["ulimit -f 16", body]))
    assert failed.result.log[-1] == "failed", failed.stdout + failed.stderr
    assert target.read_text() == old
    assert sorted(p.name for p in lab.path.iterdir() if p.name.startswith("releases")) == ["releases.jsonl"]


def test_a_file_is_never_replaced_by_the_output_of_a_command_that_failed(lab):
    """Issue 20 item 3: `{ head -c 100 f; false; } | atomic_write f` replaced f with a truncated copy; the command
    is now atomic_write's own, and its failure keeps the file whole."""
    target = lab.path / "current"
    target.write_text("release r1\ntag v1\n" + "pin ems v1@sha256:" + "1" * 64 + "\n")
    old = target.read_text()
    body = f"half() {{ head -c 10 '{target}'; false; }}; atomic_write '{target}' half && echo written || echo kept"
    run = lab.run(assemble("t", [], {"atomic_write"}, [body]))
    assert run.result.log == ["kept"] and target.read_text() == old
    audit = lab.path / "audit.jsonl"
    audit.write_text("a\n")
    body = f"cat() {{ return 1; }}; append_line '{audit}' b && echo written || echo kept"   # a read that fails
    assert lab.run(assemble("t", [], {"append_line"}, [body])).result.log == ["kept"] and audit.read_text() == "a\n"
    env = lab.path / ".env"
    env.write_text("DB_PASSWORD=s3cret\nIMAGE_TAG=v1@sha256:old\n")
    body = f"grep() {{ return 2; }}; pin_env '{env}' p IMAGE_TAG=v2@sha256:new && echo written || echo kept"
    run = lab.run(assemble("t", [], {"pin_env"}, [body]))
    assert run.result.log == ["kept"] and env.read_text() == "DB_PASSWORD=s3cret\nIMAGE_TAG=v1@sha256:old\n"


def test_append_line_keeps_what_was_there(lab):
    target = lab.path / "audit.jsonl"
    target.write_text("a\n")
    lab.snippet(f"append_line '{target}' b && append_line '{target}' 'c d'", {"append_line"})
    assert target.read_text() == "a\nb\nc d\n"


def test_pin_env_keeps_other_lines_and_the_mode(lab):
    env = lab.path / ".env"
    env.write_text("DB_PASSWORD=s3cret\nIMAGE_TAG=v1@sha256:old\nCOMPOSE_PROJECT_NAME=container\nUPLOADS=/x\n")
    env.chmod(0o640)
    lab.snippet(f"pin_env '{env}' ems_system-ems IMAGE_TAG=v2@sha256:new", {"pin_env"})
    assert env.read_text() == "DB_PASSWORD=s3cret\nUPLOADS=/x\nIMAGE_TAG=v2@sha256:new\nCOMPOSE_PROJECT_NAME=ems_system-ems\n"
    assert oct(env.stat().st_mode & 0o777) == "0o640"


def test_pin_env_adds_no_project_line_where_compose_would_pick_that_project(lab):
    """Issue 18 item 8: seed 001's PostgreSQL adopted as project "postgres" (its folder's name): a line added
    to its .env reached the container through `env_file: .env` and recreated the database. Where compose would
    pick the project anyway, no line is added; a new .env is mode 600."""
    folder = lab.path / "servers/containers/Postgres"
    folder.mkdir(parents=True)
    env = folder / ".env"
    env.write_text("POSTGRES_PASSWORD=s3cret\n")
    before = env.read_bytes()
    run = lab.snippet(f"pin_env '{env}' postgres && echo ok", {"pin_env"})
    assert run.result.log == ["ok"] and env.read_bytes() == before
    lab.snippet(f"pin_env '{env}' ems_system-postgres", {"pin_env"})
    assert env.read_text() == "POSTGRES_PASSWORD=s3cret\nCOMPOSE_PROJECT_NAME=ems_system-postgres\n"
    lab.snippet(f"pin_env '{env}' postgres", {"pin_env"})
    assert env.read_text().endswith("COMPOSE_PROJECT_NAME=postgres\n"), "a line already there is kept true"
    new = folder.parent / "_-App.1" / ".env"
    new.parent.mkdir()
    lab.snippet(f"pin_env '{new}' app1 IMAGE_TAG=v2@sha256:new", {"pin_env"})
    assert new.read_text() == "IMAGE_TAG=v2@sha256:new\n" and oct(new.stat().st_mode & 0o777) == "0o600"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root (CI runs as root)")
def test_pin_env_keeps_the_owner_of_an_operators_env(lab):
    """Issue 18 item 9: seed 003's /opt/plantao/.env went from opc:opc to root:root at the tool's first write."""
    env = lab.path / ".env"
    env.write_text("DB_PASS=x\n")
    os.chown(env, 1234, 1234)
    env.chmod(0o640)
    lab.snippet(f"pin_env '{env}' p IMAGE_TAG=v2@sha256:new", {"pin_env"})
    assert (env.stat().st_uid, env.stat().st_gid, oct(env.stat().st_mode & 0o777)) == (1234, 1234, "0o640")


def test_pin_env_on_a_file_holding_only_its_own_lines(lab):
    env = lab.path / ".env"
    env.write_text("IMAGE_TAG=v1@sha256:old\nCOMPOSE_PROJECT_NAME=p\n")
    run = lab.snippet(f"pin_env '{env}' p IMAGE_TAG=v2@sha256:new && echo ok", {"pin_env"})
    assert run.result.log == ["ok"] and env.read_text() == "IMAGE_TAG=v2@sha256:new\nCOMPOSE_PROJECT_NAME=p\n"


def test_write_current_keeps_the_pins_of_stacks_this_release_did_not_touch(lab):
    lab.state.mkdir()
    e, s, e2 = (f"v{n}@sha256:" + c * 64 for n, c in ((1, "e"), (1, "5"), (2, "f")))
    (lab.state / "current").write_text(f"release r0\ntag v1\npin ems {e}\npin sms {s}\n")
    lab.snippet(f"use_pin ems {e2} >/dev/null; write_current", {"use_pin", "write_current"},
                {"RELEASE": "r1", "TAG": "v2"})
    assert (lab.state / "current").read_text() == f"release r1\ntag v2\npin sms {s}\npin ems {e2}\n"


@pytest.mark.parametrize("pin", ["v2@sha256:E", "latest", "v1@sha256:" + "a" * 64 + " X=1", "-v@sha256:" + "a" * 64])
def test_a_damaged_pin_never_reaches_pins_or_an_env(lab, pin):
    run = lab.snippet('run use_pin ems "$P"', {"run", "use_pin"}, {"P": pin})
    assert run.code == Code.FAILED and "refusing a damaged pin for ems" in run.error


def test_show_current_sends_json_and_ignores_junk(lab):
    lab.state.mkdir()
    (lab.state / "current").write_text('release r02\ntag v1.4.3\npin ems v1.4.3@sha256:3\njunk "line\\\n')
    run = lab.snippet("show_current", {"show_current"})
    assert run.result.one("current") == {"release": "r02", "tag": "v1.4.3"}
    assert run.result.all("current_pin") == [{"app": "ems", "pin": "v1.4.3@sha256:3"}]


@pytest.mark.parametrize("value", ['plain', 'quo"te', 'back\\slash', 'tab\there', 'new\nline', 'bell\x07', 'ünï'])
def test_json_on_the_wire_survives_any_value(lab, value):
    run = lab.snippet('data problem text "$V"', {"data"}, {"V": value})
    assert run.result.one("problem")["text"] == value.replace("\x07", " ")


def test_a_misspelled_step_stops_the_program_with_an_error(lab):
    """Program.step refuses it when the program is built; should one reach a host anyway (steps added by hand),
    the shell's run stops there too."""
    with pytest.raises(StepError, match="lock_takee is not a step"):
        Program("t").step("lock_takee")
    marker = lab.path / "after"
    prog = Program("t").step("begin")
    prog.steps += [("lock_takee",), ("atomic_write", str(marker))]
    run = lab.run(prog.text.replace("{\n# t\n", "{\n# t\nSTATE=" + str(lab.state) + "\nMETA='\"x\":1'\nACTION=t\n", 1))
    assert run.code == Code.FAILED and "calls 'lock_takee', which its library does not define" in run.error
    assert not marker.exists(), "nothing after a bad step may run"
    assert '"result":"refused","exit":1' in (lab.state / "audit.jsonl").read_text()


def test_a_step_that_fails_without_saying_why_stops_the_program(lab):
    run = lab.snippet("run false_step; echo after", {"run"}, {})
    assert run.code == Code.FAILED and "false_step" in run.error and "after" not in run.stdout
    run = lab.snippet("f() { return 3; }; run f; echo after", {"run"}, {})
    assert run.code == Code.FAILED and "step f failed (exit 3) without saying why" in run.error
    assert "after" not in run.stdout


def test_an_unbound_variable_is_an_error_not_a_silent_exit(lab):
    run = lab.snippet('echo "$NOT_SET"', {"say"}, {})
    assert run.code != 0 and "stopped unexpectedly" in run.error


def test_api_headers_from_githubs_answer(lab):
    headers = ("HTTP/2 200 \r\nx-oauth-scopes: read:packages, repo\r\n"
               "github-authentication-token-expiration: 2027-02-01 00:00:00 UTC\r\ncontent-type: x\r\n\r\n")
    run = lab.snippet('printf "%s" "$H" | api_headers', {"api_headers"}, {"H": headers})
    assert run.result.one("api") == {"status": "200", "expiry": "2027-02-01 00:00:00 UTC",
                                     "scopes": "read:packages, repo", "has_scopes": "1"}


def test_data_lines_are_json_objects(lab):
    run = lab.snippet("data lock holder 'a b' stale 1 gone '' interrupted ''", {"data"})
    assert json.loads(run.stdout.split(" ", 2)[2]) == {"holder": "a b", "stale": "1", "gone": "", "interrupted": ""}


def test_simultaneous_deploys_one_wins_and_the_other_always_names_it(lab):
    """Before, the lock folder existed before its info file: 1 in 6 simultaneous pairs said "holder unknown"."""
    import concurrent.futures
    lab.state.mkdir()
    body = "run lock_take; /bin/sleep 0.2; HOLDING=0; rm -rf \"$STATE/lock\""
    for _ in range(12):
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            runs = list(pool.map(lambda by: lab.snippet(body, {"run", "lock_take"}, {**LOCK_HEAD, "BY": by}),
                                 ["first@a", "second@b"]))
        refused = [r for r in runs if r.code == Code.LOCKED]
        for r in refused:
            assert "holder unknown" not in r.error and "@" in r.error.split("lock of ems_system: ")[1], r.error
        assert [p.name for p in lab.state.iterdir()] == [], "no lock or temporary lock folder left"


def test_a_pull_that_fails_without_a_word_still_stops_the_program(lab):
    """fetch_images fails closed: a pull that died saying nothing (killed) is a failed pull, never an app left
    unpinned while the deploy goes on."""
    lab.state.mkdir()
    run = lab.snippet("pull_image() { return 1; }; run add_image ems repo/ems v2 ''; run fetch_images; echo went-on",
                      {"run", "add_image", "fetch_images"})
    assert run.code == Code.PULL and "the pull of repo/ems failed" in run.error and "went-on" not in run.stdout


def test_a_pull_killed_before_it_answers_still_stops_the_program(lab):
    """No "ok" line from a pull (its whole job killed) is a failed pull: silence is never success."""
    run = lab.snippet("pull_line() { kill -9 $BASHPID; }; run add_image ems repo/ems v2 ''; run fetch_images; "
                      "echo went-on", {"run", "add_image", "fetch_images"})
    assert run.code == Code.PULL and "the pull of repo/ems failed" in run.error and "went-on" not in run.stdout


def test_pulls_at_once_need_no_disk(lab):
    """The pulls answer through a pipe: a STATE that cannot be written (full) does not refuse the images (the
    e2e disk-full case stops later, at the history, with its own message). Pins come back in the added order."""
    pin = "v2@sha256:" + "a" * 64
    run = lab.snippet(f"pull_image() {{ /bin/sleep 0.$((RANDOM % 3)); echo {pin}; }}; STATE=/nonexistent/state; "
                      "run add_image ems repo/ems v2 ''; run add_image sms repo/sms v2 ''; run fetch_images",
                      {"run", "add_image", "fetch_images"})
    assert run.code == 0, run.error
    assert [d["app"] for d in run.result.all("pin")] == ["ems", "sms"]


def test_names_are_matched_as_text_never_as_a_regular_expression(lab):
    """current_pin read state/current with `sed "s/^pin $1 //p"`: an app named ems.x also matched emsAx's line
    (a '.' in a regex is any character). after_prefix compares text."""
    lab.state.mkdir()
    (lab.state / "current").write_text("release r1\ntag v1\npin emsAx v9@sha256:" + "9" * 64 + "\n"
                                       "pin ems.x v1@sha256:" + "1" * 64 + "\n")
    run = lab.snippet("current_pin ems.x; current_pin ems; current_line tag", {"current_pin", "current_line"})
    assert run.stdout.splitlines() == ["v1@sha256:" + "1" * 64, "v1"]


def test_a_call_no_test_scripted_fails_loudly(lab):
    """The stub answers only what a test (or the healthy host every test starts from) scripted: anything else
    exits 97 and is remembered, and the lab fixture fails the test, so no code path passes on answers nobody
    wrote (an empty `docker ps` once let the gate see no container and pass)."""
    run = lab.run("docker volume prune -f; echo \"exit $?\"\n")
    assert "exit 97" in run.stdout and "stub: no rule answers: docker volume prune -f" in run.stderr
    assert lab.unscripted() == ["docker volume prune -f"]
    (lab.path / "unscripted").unlink()   # (seen: the fixture would fail this test for it)
    lab.allow("docker", "volume prune -f")
    assert "exit 0" in lab.run("docker volume prune -f; echo \"exit $?\"\n").stdout


def test_a_health_url_is_fetched_as_written_never_globbed(lab):
    """Issue 20 item 11: curl expands [1-40] and {a,b} in a URL: one health check became 40 requests."""
    run = lab.snippet('health_ok "http://127.0.0.1:8080/[1-40]/{a,b}" && echo ok', {"health_ok"})
    assert "ok" in run.stdout
    assert lab.commands("curl") == ["--globoff -fsS -k -o /dev/null --max-time 5 http://127.0.0.1:8080/[1-40]/{a,b}"]


@pytest.mark.parametrize("url, pin", [
    ("https://api.ems.edumigsoft.com.br/health", "api.ems.edumigsoft.com.br:443:127.0.0.1:443"),
    ("http://api.sms.example/sms/health", "api.sms.example:80:127.0.0.1:80"),
    ("https://u@app.example:8443/h?x=1", "app.example:8443:127.0.0.1:8443"),
    ("http://127.0.0.1/ems/health", None), ("http://localhost:8080/health", None),
    ("http://[::1]:8080/health", None), ("https://10.0.0.5/health", None),
])
def test_a_health_url_naming_a_host_is_asked_of_this_hosts_own_port_with_that_name(lab, url, pin):
    """The gate judges this host: a name goes to 127.0.0.1 on its port (Host and SNI kept), whatever DNS says
    (a load balancer, a neighbour); an address is asked as written. The certificate is doctor's to judge."""
    run = lab.snippet(f'health_ok "{url}" && echo ok', {"health_ok"})
    assert "ok" in run.stdout
    assert lab.commands("curl") == [f"--globoff -fsS -k {'--connect-to ' + pin + ' ' if pin else ''}"
                                    f"-o /dev/null --max-time 5 {url}"]
