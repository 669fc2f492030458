"""A per-deploy registry token (sh/registry.sh: registry.token per-deploy, --token-env): it arrives on stdin
after the program, logs in into a temporary docker config (mode 700) that only the pulls use, and nothing of it
stays: no file, no argument, no output. Fast tier: bash with stub docker."""
import os
import time
from pathlib import Path

from tasks.core.programs.protocol import Code

from .conftest import TOKEN
from .test_deploy_program import deploy_program, intent, pulls_answer

BROUGHT = "ghp_" + "b" * 36   # this run's token; the lab's secrets file holds another (TOKEN)


def per_deploy(lab, *lines: str):
    """The deploy of every stack with a token brought for the run, ``lines`` after it on stdin."""
    t = lab.target
    lab.allow("docker", "compose -p * pull --quiet --policy missing")   # (infra's images, while logged in)
    return lab.run(deploy_program(t, list(t.system.stacks), intent(), per_deploy=True).given(*lines))


def every_file(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def test_the_token_logs_in_into_a_temporary_config_the_pulls_use_and_nothing_of_it_stays(lab):
    lab.secrets.unlink()   # the host keeps no token
    pulls_answer(lab)
    run = per_deploy(lab, BROUGHT)
    assert run.code == 0, run.stdout + run.stderr
    login = next(c for c in lab.calls("docker") if c.argv[1] == "login")
    assert login.stdin == BROUGHT
    config = login.env["DOCKER_CONFIG"]
    assert Path(config).parent in (Path("/dev/shm"), Path(os.environ.get("TMPDIR", "/tmp")))
    assert Path(config).name.startswith("fab-vps-login.") and login.env["DOCKER_CONFIG_MODE"] == "700"
    pulls = [c for c in lab.calls("docker") if c.argv[1] == "pull"]
    assert pulls and all(c.env.get("DOCKER_CONFIG") == config for c in pulls), "the pulls use this run's login"
    ups = [c for c in lab.calls("docker") if c.argv[1] == "compose" and "up" in c.argv]
    assert ups and not any("DOCKER_CONFIG" in c.env for c in ups), "gone once the pulls are done"
    assert not Path(config).exists()
    assert not any(BROUGHT in " ".join(c.argv) for c in lab.calls()) and BROUGHT not in run.stdout + run.stderr
    leaks = [p for p in every_file(lab.root) if BROUGHT.encode() in p.read_bytes()]
    assert leaks == [] and not lab.secrets.exists(), "nothing of it is written on the host"


def test_no_token_on_stdin_refuses_before_anything_changes(lab):
    pulls_answer(lab)
    for lines in ((), ("",)):
        run = per_deploy(lab, *lines)
        assert run.code == Code.REFUSED and "registry token" in run.error and "nothing was changed" in run.error
        assert not [c for c in lab.calls("docker") if c.argv[1] in ("login", "pull")]
        assert not (lab.root / "ems_system/repo/ems/.env").exists() and not (lab.state / "lock").exists()


def test_the_secrets_file_is_neither_checked_nor_read(lab):
    """A per-deploy run does not need the file (a host set up for per-deploy has none); one left there with a
    wide mode does not refuse it and its token is not the one used."""
    lab.secrets.chmod(0o644)
    pulls_answer(lab)
    run = per_deploy(lab, BROUGHT)
    assert run.code == 0, run.stdout + run.stderr
    assert [c.stdin for c in lab.calls("docker") if c.argv[1] == "login"] == [BROUGHT]
    assert TOKEN not in " ".join(c.stdin or "" for c in lab.calls())


def test_a_refused_login_removes_the_temporary_config_too(lab):
    lab.answer("docker", "login *", captured="docker-login-denied.txt", code=1)
    run = per_deploy(lab, BROUGHT)
    assert run.code == Code.LOGIN
    config = next(c for c in lab.calls("docker") if c.argv[1] == "login").env["DOCKER_CONFIG"]
    assert not Path(config).exists()


def test_a_login_folder_a_killed_run_left_goes_with_the_next_login(lab):
    shm = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else Path(os.environ.get("TMPDIR", "/tmp"))
    old, recent = shm / f"fab-vps-login.test{os.getpid()}", shm / f"fab-vps-login.tast{os.getpid()}"
    for d in (old, recent):
        d.mkdir(mode=0o700)
        (d / "config.json").write_text("{}")
    os.utime(old, (time.time() - 3 * 3600,) * 2)
    try:
        pulls_answer(lab)
        assert per_deploy(lab, BROUGHT).code == 0
        assert not old.exists(), "a folder older than any run is swept"
        assert recent.exists(), "another run's folder, maybe still pulling, is left alone"
    finally:
        for d in (old, recent):
            if d.exists():
                (d / "config.json").unlink()
                d.rmdir()
