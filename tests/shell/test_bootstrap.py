"""fab bootstrap's program under bash, fast tier: the OS read from os-release files as the distributions ship
them, the package manager, Docker's tools and systemctl stubbed (they record their arguments); every path under
/etc in a scratch folder (SYSROOT). The bare-host install itself is end to end."""
from dataclasses import replace
from pathlib import Path

import pytest

from tasks.core import model
from tasks.core.programs.bootstrap import NewUser, bootstrap_program, bootstrapped, lock_root_program
from tasks.core.programs.protocol import Code

OS_RELEASE = {   # the lines that matter of each distribution's /etc/os-release
    "debian12": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n',
    "debian13": 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\nVERSION_ID="13"\nVERSION_CODENAME=trixie\n',
    "ubuntu2204": 'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\n'
                  "VERSION_CODENAME=jammy\n",
    "ubuntu2404": 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n'
                  "VERSION_CODENAME=noble\n",
    "ol9": 'NAME="Oracle Linux Server"\nVERSION="9.4"\nID="ol"\nID_LIKE="fedora"\nVERSION_ID="9.4"\n'
           'PRETTY_NAME="Oracle Linux Server 9.4"\n',
    "rocky8": 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="8.10"\n'
              'PRETTY_NAME="Rocky Linux 8.10 (Green Obsidian)"\n',
    "alpine": 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME="Alpine Linux v3.20"\n',
    "ubuntu2004": 'PRETTY_NAME="Ubuntu 20.04.6 LTS"\nID=ubuntu\nVERSION_ID="20.04"\nVERSION_CODENAME=focal\n',
}
HIDDEN = {"docker", "curl", "git", "tar", "rsync", "restic", "apt-get", "dnf", "systemctl", "sudo", "useradd", "usermod", "getent",
          "visudo", "chown", "sshd", "id"}


def bare(lab, os: str, have: tuple[str, ...] = ()) -> dict:
    """A host running ``os`` with only the tools ``have`` of HIDDEN (stubbed), and the env to run on it. (A
    stub cannot appear when apt installs it: a host that installs Docker here has a `docker` whose `compose
    version` fails before the install, the path a host without the plugin takes.)"""
    sysroot = lab.path / "sysroot"
    (sysroot / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
    (sysroot / "etc/yum.repos.d").mkdir(parents=True, exist_ok=True)
    (sysroot / "etc/os-release").write_text(OS_RELEASE[os])
    (sysroot / "etc/ssl/certs").mkdir(parents=True, exist_ok=True)
    (sysroot / "etc/ssl/certs/ca-certificates.crt").write_text("")
    system = lab.path / "system-bin"
    if not system.exists():
        system.mkdir()
        for folder in ("/usr/bin", "/bin", "/usr/sbin"):
            for tool in Path(folder).iterdir():
                if tool.name not in HIDDEN and not (system / tool.name).exists():
                    (system / tool.name).symlink_to(tool)
    for tool in ("docker", "curl"):
        (lab.bin / tool).unlink()
    for tool in have:
        (lab.bin / tool).symlink_to(Path(__file__).parent / "stub")
    return {"PATH": f"{lab.bin}:{system}"}


def run(lab, env: dict, docker: str = "distro", mirror: str | None = None, user: NewUser | None = None):
    host = replace(lab.target.host, bootstrap=model.Bootstrap(docker, mirror))
    return lab.run(bootstrap_program(host, str(lab.path / "sysroot"), user), env=env)


def versions(lab, compose: str = "v2.24.6") -> None:
    lab.answer("docker", "version --format *", "27.3.1\n")
    lab.answer("docker", "compose version --short", compose + "\n")


@pytest.mark.parametrize("os, packages", [
    ("debian13", "docker.io docker-cli docker-compose"), ("ubuntu2204", "docker.io docker-compose-v2"),
    ("ubuntu2404", "docker.io docker-compose-v2")])
def test_a_bare_debian_family_host_gets_the_distributions_docker_and_compose(lab, os, packages):
    env = bare(lab, os, have=("apt-get", "systemctl", "git", "tar", "curl", "rsync", "restic", "docker"))
    lab.allow("apt-get", "*")
    lab.allow("systemctl", "enable --now docker")
    lab.answer("docker", "compose version", code=1, once=True)   # (not there before the install)
    versions(lab)
    lab.answer("docker", "version --format *", code=1, once=True)   # (installed, not started)
    result = run(lab, env)
    assert result.code == 0, result.stdout + result.stderr
    assert lab.commands("apt-get") == ["update -q", f"install -y -q --no-install-recommends {packages}"]
    assert lab.commands("systemctl") == ["enable --now docker"]
    got = bootstrapped(result.result)
    assert (got.docker, got.engine, got.compose) == ("installed from distro", "27.3.1", "2.24.6")


def test_docker_ce_and_a_mirror_write_dockers_repository_then_install_its_packages(lab):
    env = bare(lab, "debian12", have=("apt-get", "systemctl", "git", "tar", "curl", "rsync", "restic", "docker"))
    lab.answer("curl", "-fsSL --max-time 60 http://10.0.0.1:8080/docker/debian/gpg", "-----BEGIN PGP-----\n")
    lab.allow("apt-get", "*")
    lab.allow("systemctl", "*")
    versions(lab)
    lab.answer("docker", "compose version", code=1, once=True)
    result = run(lab, env, "docker-ce", "http://10.0.0.1:8080/docker")
    assert result.code == 0, result.stdout + result.stderr
    etc = lab.path / "sysroot/etc"
    assert (etc / "apt/sources.list.d/docker.list").read_text() == \
        "deb [signed-by=/etc/apt/keyrings/docker.asc] http://10.0.0.1:8080/docker/debian bookworm stable\n"
    assert (etc / "apt/keyrings/docker.asc").stat().st_mode & 0o777 == 0o644
    assert lab.commands("apt-get")[-1] == \
        "install -y -q --no-install-recommends docker-ce docker-ce-cli containerd.io docker-compose-plugin"


def test_a_rhel_family_host_gets_dockers_repository_with_dnf(lab):
    env = bare(lab, "ol9", have=("dnf", "systemctl", "git", "tar", "curl", "rsync", "restic", "docker"))
    lab.allow("dnf", "*")
    lab.allow("systemctl", "*")
    versions(lab)
    lab.answer("docker", "compose version", code=1, once=True)
    result = run(lab, env)
    assert result.code == 0, result.stdout + result.stderr
    assert "ships Podman, not Docker: Docker's repository it is" in result.stdout
    repo = (lab.path / "sysroot/etc/yum.repos.d/docker-ce.repo").read_text()
    assert "baseurl=https://download.docker.com/linux/centos/$releasever/$basearch/stable\n" in repo
    assert "gpgcheck=1\n" in repo
    assert lab.commands("dnf") == ["install -y -q docker-ce docker-ce-cli containerd.io docker-compose-plugin"]


@pytest.mark.parametrize("os, said", [
    ("alpine", "unsupported OS: Alpine\\ Linux\\ v3.20"), ("ubuntu2004", "unsupported OS: Ubuntu\\ 20.04.6\\ LTS"),
    ("debian12", "debian 12's own packages have no Compose v2 (its docker-compose is 1.x): set bootstrap: "
                 "{docker: docker-ce}")])
def test_an_os_or_a_source_it_cannot_serve_is_refused_before_anything_changes(lab, os, said):
    env = bare(lab, os, have=("apt-get", "git", "tar", "curl", "rsync", "restic"))
    result = run(lab, env)
    assert result.code == Code.REFUSED and said in result.result.errors[0], result.stdout
    assert lab.commands("apt-get") == [] and not list((lab.path / "sysroot/etc/apt/sources.list.d").iterdir())


def test_a_host_that_has_docker_keeps_it_and_a_second_run_changes_nothing(lab):
    env = bare(lab, "debian12", have=("apt-get", "systemctl", "git", "tar", "curl", "rsync", "restic", "docker"))
    lab.answer("docker", "compose version", "Docker Compose version v2.24.6\n")
    versions(lab)
    result = run(lab, env)
    assert result.code == 0 and not bootstrapped(result.result).changed, result.stdout
    assert lab.commands("apt-get") == [], "nothing installed, not even apt's lists refreshed"
    assert lab.commands("systemctl") == [], "a daemon that answers is left as it is run"


def test_missing_tools_are_installed_and_a_too_old_compose_is_refused_with_its_version(lab):
    env = bare(lab, "ubuntu2404", have=("apt-get", "systemctl", "docker"))
    lab.allow("apt-get", "*")
    lab.allow("systemctl", "*")
    lab.answer("docker", "compose version", "Docker Compose version v2.12.2\n")
    versions(lab, compose="v2.12.2")
    result = run(lab, env)
    assert lab.commands("apt-get")[-1] == "install -y -q --no-install-recommends curl git tar rsync restic"
    assert result.code == Code.REFUSED and "Compose 2.12.2 is too old: the tool needs 2.20 or newer" in \
        result.result.errors[0]


def test_a_failed_install_says_apts_last_line_and_that_a_rerun_finishes(lab):
    env = bare(lab, "ubuntu2404", have=("apt-get", "git", "tar", "curl", "rsync", "restic"))
    lab.allow("apt-get", "update -q")
    lab.answer("apt-get", "install *", "E: You don't have enough free space in /var/cache/apt/archives/.\n", code=100)
    result = run(lab, env)
    assert result.code == Code.FAILED
    assert "installing docker.io docker-compose-v2 failed: E: You don't have enough free space" in result.result.errors[0]
    assert "run bootstrap again once fixed" in result.result.errors[0]


def test_a_mirror_of_the_distribution_is_written_before_the_tools_come_from_it_and_kept_on_a_rerun(lab):
    env = bare(lab, "debian13", have=("apt-get", "systemctl", "docker"))
    lab.allow("apt-get", "*")
    lab.allow("systemctl", "*")
    lab.answer("apt-get", "update -q", "W: Failed to fetch http://deb.debian.org/debian/dists/trixie/InRelease  "
               "Temporary failure resolving 'deb.debian.org'\n")
    lab.answer("docker", "compose version", "Docker Compose version v2.26.1\n")
    versions(lab)
    result = run(lab, env, mirror="http://10.200.0.1:8088/debian")
    assert result.code == 0, result.stdout + result.stderr
    listed = lab.path / "sysroot/etc/apt/sources.list.d/fab-mirror.list"
    assert listed.read_text() == "deb http://10.200.0.1:8088/debian trixie main\n"
    assert listed.stat().st_mode & 0o777 == 0o644
    assert lab.commands("apt-get") == ["update -q", "install -y -q --no-install-recommends curl git tar rsync restic"]
    assert "could not reach every source (a mirror-only host expects this): W: Failed to fetch" in result.stdout
    before = listed.stat().st_mtime_ns
    again = run(lab, env, mirror="http://10.200.0.1:8088/debian")
    assert again.code == 0 and listed.stat().st_mtime_ns == before
    assert "the distribution's packages from" not in again.stdout


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC1GxbD0iALcjQoAbU9fJLtCeRk+6xMTii1e3irrbYz2 ana@laptop"


def with_deploy(lab) -> dict:
    """A Debian 13 host that has Docker already and a user deploy (uid 1001, home /home/deploy)."""
    env = bare(lab, "debian13", have=("apt-get", "systemctl", "git", "tar", "curl", "rsync", "restic", "docker", "sudo", "useradd",
                                       "usermod", "getent", "visudo", "chown", "id"))
    lab.allow("systemctl", "*")
    lab.answer("docker", "compose version", "Docker Compose version v2.26.1\n")
    versions(lab)
    lab.answer("getent", "passwd deploy", "deploy:x:1001:1001::/home/deploy:/bin/bash\n")
    lab.answer("id", "-u deploy", "1001\n")
    lab.answer("id", "-gn deploy", "deploy\n")
    return env


def test_a_deploy_user_is_made_with_its_key_a_checked_sudoers_drop_in_and_the_docker_group(lab):
    env = with_deploy(lab)
    lab.allow("getent", "group docker")
    for tool in ("useradd", "usermod", "visudo", "chown"):
        lab.allow(tool, "*")
    home = lab.path / "sysroot/home/deploy/.ssh"
    home.mkdir(parents=True)
    (home / "authorized_keys").write_text(KEY + "\n")   # (kept: not added twice)
    other = KEY.replace("IC1G", "IC2G").replace("ana@laptop", "ci")
    result = run(lab, env, user=NewUser("deploy", (KEY, other)))
    assert result.code == 0, result.stdout + result.stderr
    assert (home / "authorized_keys").read_text() == f"{KEY}\n{other}\n"
    assert (home / "authorized_keys").stat().st_mode & 0o777 == 0o600 and home.stat().st_mode & 0o777 == 0o700
    drop_in = lab.path / "sysroot/etc/sudoers.d/fab-deploy"
    assert drop_in.read_text() == "deploy ALL=(root) NOPASSWD: ALL\n" and drop_in.stat().st_mode & 0o777 == 0o440
    checked = lab.commands("visudo")[0]
    assert checked.startswith(f"-c -f {lab.path}/sysroot/etc/sudoers.d/.fab-deploy."), "checked aside, then moved"
    assert "-aG docker deploy" in lab.commands("usermod")
    assert bootstrapped(result.result).user == "deploy kept, 1 key(s) added"


def test_a_sudoers_line_visudo_refuses_is_never_moved_into_place(lab):
    env = with_deploy(lab)
    lab.allow("chown", "*")
    lab.answer("visudo", "*", ">>> /etc/sudoers.d/.fab-deploy.x: syntax error near line 1 <<<\n", code=1)
    (lab.path / "sysroot/etc/sudoers.d").mkdir(parents=True)
    result = run(lab, env, user=NewUser("deploy", (KEY,)))
    assert result.code == Code.FAILED and "visudo refused the sudoers line for deploy, nothing changed: >>>" in \
        result.result.errors[0]
    assert list((lab.path / "sysroot/etc/sudoers.d").iterdir()) == []


@pytest.mark.parametrize("sshd_t, sshd_T, said", [
    (1, "permitrootlogin no\n", "sshd -t refused the configuration, root's login left open"),
    (0, "permitrootlogin yes\n", "sshd would still let root in (a setting read before")])
def test_roots_login_stays_open_when_sshd_would_not_take_the_change(lab, sshd_t, sshd_T, said):
    env = bare(lab, "debian13", have=("sshd", "systemctl"))
    (lab.path / "sysroot/etc/ssh/sshd_config.d").mkdir(parents=True)
    lab.answer("sshd", "-t", "/etc/ssh/sshd_config line 3: Bad configuration option\n", code=sshd_t)
    lab.answer("sshd", "-T *", sshd_T)
    result = lab.run(lock_root_program(str(lab.path / "sysroot")), env=env)
    assert result.code != 0 and said in result.result.errors[0], result.stdout
    assert list((lab.path / "sysroot/etc/ssh/sshd_config.d").iterdir()) == [] and lab.commands("systemctl") == []


def test_roots_login_is_closed_in_a_drop_in_read_first_then_sshd_reloads(lab):
    env = bare(lab, "debian13", have=("sshd", "systemctl"))
    (lab.path / "sysroot/etc/ssh/sshd_config.d").mkdir(parents=True)
    lab.allow("sshd", "-t")
    lab.answer("sshd", "-T -C user=root,host=localhost,addr=127.0.0.1", "port 22\npermitrootlogin no\n")
    lab.allow("systemctl", "reload ssh")
    result = lab.run(lock_root_program(str(lab.path / "sysroot")), env=env)
    assert result.code == 0, result.stdout + result.stderr
    assert (lab.path / "sysroot/etc/ssh/sshd_config.d/00-fab-root.conf").read_text() == "PermitRootLogin no\n"
    assert lab.commands("systemctl") == ["reload ssh"]
