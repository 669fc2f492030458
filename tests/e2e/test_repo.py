"""Issue 21, the repository on the host, end to end: a git server over SSH on a second sandbox host (a bare
repository, standing in for GitHub) and `fab setup` on the VPS cloning repo/ from it with a deploy key the VPS
made itself, the server's key pinned from hosts.yml; then deploy --ref fetching through the same key."""
import yaml

from tasks.core import errors

from .test_config import GIT

SERVER = "t2"
BARE = "/root/git/ems.git"


def publish(vps, server) -> None:
    """The seeded repo/ committed and pushed to a bare repository on the git server; repo/ gone from the VPS."""
    vps.host.inside(f"set -e; cd /root/ems_system/repo; printf '.env\\n' > .gitignore; {GIT} init -q; {GIT} add -A; "
                    f"{GIT} commit -qm v1")
    server.inside("rm -rf /root/git; mkdir -p /root/git")
    bundle = vps.host.root / "ems.bundle"
    vps.host.inside("cd /root/ems_system/repo && git bundle create -q /root/ems.bundle main")
    (server.root / "ems.bundle").write_bytes(bundle.read_bytes())
    server.inside(f"set -e; git clone -q --bare /root/ems.bundle {BARE}; git -C {BARE} symbolic-ref HEAD refs/heads/main")
    vps.host.inside("mv /root/ems_system/repo /root/seeded; rm /root/ems.bundle")


def fill_in_env(vps) -> None:
    """The .env files of the clone filled in, as the operator does after setup (the seeded ones)."""
    vps.host.inside("set -e; cd /root/seeded; find . -name .env -exec cp --parents {} /root/ems_system/repo/ \\;; "
                    "rm -rf /root/seeded")


def use_repo(vps, server, host_key: str) -> None:
    inv = yaml.safe_load(vps.inventory.read_text())
    inv["systems"]["ems_system"]["repo"] = {"url": f"ssh://root@{server.address}{BARE}", "ref": "main",
                                            "git_host_key": host_key}
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))


def host_key(host) -> str:
    return " ".join((host.dir / "ssh_host_ed25519_key.pub").read_text().split()[:2])


def test_setup_clones_repo_with_its_own_deploy_key_once_the_server_knows_it_and_deploy_ref_fetches_with_it(
        vps, sandbox, second_host):
    server = sandbox.host(second_host)
    for h in (vps.host, server):
        h.route_to_others()
    publish(vps, server)
    authorized = server.dir / "authorized_keys"
    operator_keys = authorized.read_text()
    try:
        use_repo(vps, server, host_key(vps.host))   # (another host's key: not the server's)
        wrong = vps.fab("setup", "--host", "t1")
        assert wrong.returncode == errors.REMOTE_FAILED, wrong.stdout + wrong.stderr
        assert "the git server's host key is not the git_host_key of hosts.yml" in wrong.stderr
        assert not (vps.host.root / "ems_system/repo").exists()

        use_repo(vps, server, host_key(server))
        unknown = vps.fab("setup", "--host", "t1")
        public = (vps.host.root / "ems_system/.secrets/git/id_ed25519.pub").read_text().strip()
        assert unknown.returncode == errors.REMOTE_FAILED
        assert "the git server refused the deploy key: add it to the repository as a read-only deploy key" in \
            unknown.stderr and public in unknown.stderr
        assert not (vps.host.root / "ems_system/repo").exists(), "nothing half-cloned is left"
        private = vps.host.root / "ems_system/.secrets/git/id_ed25519"
        assert oct(private.stat().st_mode & 0o777) == "0o600" and oct(private.parent.stat().st_mode & 0o777) == "0o700"

        authorized.write_text(operator_keys + public + "\n")   # (adding it as a deploy key on GitHub)
        done = vps.ok("setup", "--host", "t1")
        assert f"deploy key (read-only, on the git server): {public}" in done.stdout
        head = server.inside(f"git -C {BARE} rev-parse main").stdout.strip()
        assert vps.host.inside("git -C /root/ems_system/repo rev-parse HEAD").stdout.strip() == head
        fill_in_env(vps)
        vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
        assert vps.version() == "v1.4.2"

        server.inside(f"set -e; rm -rf /root/dev; {GIT} clone -q {BARE} /root/dev; cd /root/dev; "
                      f"echo '# v2' >> servers/ems/container/docker-compose.prod.yml; {GIT} commit -qam v2; "
                      f"{GIT} push -q origin main")
        v2 = server.inside(f"git -C {BARE} rev-parse main").stdout.strip()
        vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2", "--ref", "main")
        assert vps.host.inside("git -C /root/ems_system/repo rev-parse HEAD").stdout.strip() == v2
        secret = private.read_text().splitlines()[2]   # (a line of the private key itself)
        assert secret not in vps.host.commands_log.read_text() + vps.host.stdin_log.read_text(), \
            "the private key never leaves the VPS"
    finally:
        authorized.write_text(operator_keys)
