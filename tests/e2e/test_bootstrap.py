"""Issue 21 end to end: `fab bootstrap` on the bare sandbox host (Debian 13 booted by systemd, sshd and nothing
else; sandbox/bare_host.py), whose Docker Engine and Compose plugin the tool installs from the package mirror the
harness serves (Debian's own signed index and packages; the host reaches nothing else), started by the host's own
systemd. Then `fab setup` and the EMS example, behind the real Traefik and PostgreSQL, deployed and rolled back."""
from __future__ import annotations

import time

import pytest
import yaml

from sandbox import examples, mirror, proc
from tasks.core import errors

from .conftest import FIGURES, Vps, booted_host

HOST = "bare1"


@pytest.fixture(scope="module")   # (stopped after this file, if it was not running: it loads the others)
def bare_host(sandbox):
    yield from booted_host(sandbox, HOST, "bare")


@pytest.fixture
def ems(sandbox, tmp_path, bare_host) -> Vps:
    """The EMS example on the bare host made bare again, with ``mirror`` as its bootstrap source."""
    vps = Vps(sandbox, *examples.ems(sandbox, tmp_path, HOST))
    use_mirror(vps, mirror.URL)
    return vps


def use_mirror(vps: Vps, url: str) -> None:
    inv = yaml.safe_load(vps.inventory.read_text())
    inv["hosts"][HOST]["bootstrap"] = {"mirror": url}
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))


def has_docker(host) -> bool:
    return host.run("command -v docker", check=False).returncode == 0


def test_a_bare_host_bootstrapped_from_the_mirror_runs_the_ems_example_and_rolls_it_back(ems):
    vps, host = ems, ems.host
    assert not has_docker(host)
    refused = vps.fab("deploy", "--host", HOST, "--tag", "v1.4.2")
    assert refused.returncode == errors.BAD_INPUT, refused.stdout + refused.stderr
    assert "docker is not installed on this host: 'fab bootstrap' installs Docker Engine" in refused.stderr

    dry = vps.ok("bootstrap", "--host", HOST, "--dry-run")
    assert "run bootstrap_docker distro" in dry.stdout and not has_docker(host)

    use_mirror(vps, mirror.URL.replace("/debian", "/nowhere"))   # (a mirror URL with a typo)
    wrong = vps.fab("bootstrap", "--host", HOST)
    assert wrong.returncode == errors.FAILED and "apt-get update failed:" in wrong.stderr, wrong.stdout + wrong.stderr
    assert not has_docker(host)

    use_mirror(vps, mirror.URL)
    started = time.monotonic()
    done = vps.ok("bootstrap", "--host", HOST)
    FIGURES.append(f"bootstrap of the bare host (Debian 13, from the package mirror): {time.monotonic() - started:.1f} s")
    assert "tools installed curl git rsync restic ca-certificates, Docker installed from distro" in done.stdout, done.stdout
    assert host.run("cat /etc/apt/sources.list.d/fab-mirror.list").stdout == f"deb {mirror.URL} trixie main\n"
    assert host.systemctl("is-active", "docker").stdout.strip() == "active"
    main_pid = host.systemctl("show", "--property=MainPID", "--value", "docker").stdout.strip()
    assert host.run(f"cat /proc/{main_pid}/comm").stdout.strip() == "dockerd", "the host's systemd runs dockerd"
    again = vps.ok("bootstrap", "--host", HOST)
    assert "nothing to do, everything was in place" in again.stdout

    vps.ok("setup", "--host", HOST)
    vps.ok("deploy", "--host", HOST, "--tag", "v1.4.2")
    assert host.get(f"{examples.EMS_URL}/version") == "v1.4.2" and host.get(f"{examples.SMS_URL}/version") == "v1.4.2"
    vps.ok("deploy", "--host", HOST, "--tag", "v1.4.3")
    assert host.get(f"{examples.EMS_URL}/version") == "v1.4.3"
    vps.ok("rollback", "--host", HOST)
    assert host.get(f"{examples.EMS_URL}/version") == "v1.4.2" and host.get(f"{examples.SMS_URL}/version") == "v1.4.2"
    projects = host.docker("ps", "--format", '{{.Label "com.docker.compose.project"}}').stdout.split()
    assert sorted(projects) == ["ems_system-ems", "ems_system-infra", "ems_system-sms", "postgres"], \
        "every stack runs under the Docker bootstrap installed"


def test_a_deploy_user_is_proven_to_log_in_before_roots_login_is_closed_then_the_tool_runs_as_it(ems, tmp_path):
    """--create-user with a key the operator does not log in with: the user is made, its login fails, and
    root's login stays open; with the operator's key it is proven, root's login closes, and the tool then
    bootstraps and deploys as that user through its sudo."""
    vps, host = ems, ems.host
    stranger = tmp_path / "stranger"
    proc.sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "stranger", "-f", str(stranger))
    wrong = vps.fab("bootstrap", "--host", HOST, "--create-user", "deploy", "--authorized-key", f"{stranger}.pub",
                    "--lock-root")
    assert wrong.returncode == errors.UNREACHABLE, wrong.stdout + wrong.stderr
    assert "user deploy created, 1 key(s) added" in wrong.stdout
    assert host.run("cat /etc/sudoers.d/fab-deploy").stdout == "deploy ALL=(root) NOPASSWD: ALL\n"
    assert not host.run("ls /etc/ssh/sshd_config.d/00-fab-root.conf", check=False).stdout
    vps.ok("status", "--host", HOST)   # (root still logs in)

    mine = f"{vps.sb.client_key}.pub"
    done = vps.ok("bootstrap", "--host", HOST, "--create-user", "deploy", "--authorized-key", mine, "--lock-root")
    assert "user deploy kept, 1 key(s) added" in done.stdout and "a login as deploy works, and its sudo" in done.stdout
    assert "root's SSH login closed" in done.stdout
    assert host.run("stat -c '%U %a' /home/deploy/.ssh /home/deploy/.ssh/authorized_keys").stdout.split() == \
        ["deploy", "700", "deploy", "600"]
    assert host.run("id -nG deploy").stdout.split() == ["deploy", "docker"]
    as_root = vps.fab("status", "--host", HOST)
    assert as_root.returncode == errors.UNREACHABLE, "root can no longer log in"

    inv = yaml.safe_load(vps.inventory.read_text())
    inv["hosts"][HOST].update(user="deploy", sudo=True)
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    again = vps.ok("bootstrap", "--host", HOST)   # (as deploy, through its sudo)
    assert "nothing to do, everything was in place" in again.stdout
    vps.ok("setup", "--host", HOST)
    vps.ok("deploy", "--host", HOST, "--tag", "v1.4.2")
    assert host.get(f"{examples.EMS_URL}/version") == "v1.4.2"
