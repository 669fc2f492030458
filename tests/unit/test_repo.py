"""A system's repo: in hosts.yml (where `fab setup` clones repo/ from) and the setup program it gives: the URL,
ref and git server key checked when the inventory loads (file:line, exit 2), hostile values included. Fast tier."""
import pytest

from tasks.core import inventory
from tasks.core.programs.setup import setup_program

from .test_inventory import error_of, write

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"   # (GitHub's)
INVENTORY = """\
registry: {{server: ghcr.io, username: edumigsoft}}
systems:
  ems_system:
    repo: {repo}
    stacks:
      infra: {{compose: repo/servers/infra/docker-compose.prod.yml}}
hosts:
  vps1: {{address: 203.0.113.10, systems: [ems_system]}}
"""


def with_repo(tmp_path, repo: str):
    return write(tmp_path, INVENTORY.format(repo=repo))


@pytest.mark.parametrize("url, known", [
    ("git@github.com:edumigsoft/ems.git", f"github.com {KEY}"),
    ("ssh://git@git.example.org:2222/srv/ems.git", f"[git.example.org]:2222 {KEY}"),
    ("ssh://git.example.org:22/ems.git", f"git.example.org {KEY}"),
])
def test_an_ssh_repo_pins_its_servers_key_as_a_known_hosts_line(tmp_path, url, known):
    inv = inventory.load(with_repo(tmp_path, f"{{url: '{url}', ref: v1.4, git_host_key: '{KEY} github'}}"))
    target = inv.host("vps1").targets()[0]
    repo = target.system.repo
    assert (repo.url, repo.ref, repo.known_host) == (url, "v1.4", known)
    steps = setup_program(target).steps
    assert ("repo_key", "/root/ems_system/.secrets/git/id_ed25519") in steps
    assert ("repo_clone", "/root/ems_system/repo", url, "v1.4", "/root/ems_system/.secrets/git/id_ed25519", known) in steps
    assert [s[0] for s in steps].index("repo_clone") < [s[0] for s in steps].index("ensure_env"), \
        "the .env files come from the templates the clone brings"


def test_an_https_repo_needs_no_key_and_its_ref_defaults_to_main(tmp_path):
    target = inventory.load(with_repo(tmp_path, "{url: 'https://github.com/edumigsoft/ems.git'}")).host("vps1").targets()[0]
    assert (target.system.repo.ref, target.system.repo.known_host) == ("main", "")
    assert "repo_key" not in [s[0] for s in setup_program(target).steps]


@pytest.mark.parametrize("repo, message", [
    ("{url: 'git@github.com:edumigsoft/ems.git'}", "needs git_host_key"),
    (f"{{url: 'https://github.com/e/ems.git', git_host_key: '{KEY}'}}", "git_host_key is for an SSH url"),
    (f"{{url: '-oProxyCommand=touch /tmp/x', git_host_key: '{KEY}'}}", "must be git@host:path"),
    (f"{{url: 'ssh://-oProxyCommand=x/ems.git', git_host_key: '{KEY}'}}", "must be git@host:path"),
    (f"{{url: 'git@github.com:-u/ems.git', git_host_key: '{KEY}'}}", "must be git@host:path"),
    (f"{{url: 'git@github.com:e/ems.git; rm -rf /', git_host_key: '{KEY}'}}", "must be git@host:path"),
    (f"{{url: 'file:///srv/ems.git', git_host_key: '{KEY}'}}", "must be git@host:path"),
    (f"{{url: 'http://github.com/e/ems.git', git_host_key: '{KEY}'}}", "must be git@host:path"),
    (f"{{url: 'git@github.com:e/ems.git', ref: '--upload-pack=x', git_host_key: '{KEY}'}}", "not a branch, tag"),
    (f"{{url: 'git@github.com:e/ems.git', ref: 'a..b', git_host_key: '{KEY}'}}", "not a branch, tag"),
    ("{url: 'git@github.com:e/ems.git', git_host_key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6'}",
     "not a valid ssh-ed25519 key"),
    ("{url: 'git@github.com:e/ems.git', git_host_key: 'github.com ssh-ed25519 AAAA'}", "not a public key type"),
    ("{url: 'git@github.com:e/ems.git', git_host_key: 42}", "must be a public key"),
    (f"{{url: 'git@github.com:e/ems.git', git_host_key: '{KEY}', branch: main}}", "unknown key 'branch'"),
])
def test_a_repo_that_is_wrong_is_refused_with_its_line(tmp_path, repo, message):
    path = with_repo(tmp_path, repo)
    text = error_of(path)
    assert text.startswith(f"{path}:4: "), text
    assert message in text, text
