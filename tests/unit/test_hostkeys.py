"""known_hosts as OpenSSH reads it: stale entries replaced by trust-host, marker lines understood, revoked
keys refused, and every ProxyJump bastion checked like the host itself (no SSH: keys made here)."""
import re

import paramiko
import pytest

from tasks.core import hostkeys, model, ssh
from tasks.core.errors import BAD_INPUT, UNREACHABLE, ToolError


@pytest.fixture
def keys(tmp_path):
    import subprocess
    out = []
    for i in range(3):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / f"k{i}")], check=True)
        out.append(paramiko.Ed25519Key.from_private_key_file(str(tmp_path / f"k{i}")))
    return out


def line(name, k):
    return f"{name} {k.get_name()} {k.get_base64()}\n"


def test_trust_replaces_the_stale_entry_and_keeps_everything_else(tmp_path, keys):
    old, new, other = keys
    path = tmp_path / "known_hosts"
    hashed = paramiko.HostKeys.hash_host("[10.0.0.5]:2222")
    path.write_text("# mine\n" + line("[10.0.0.5]:2222", old) + line("other.example,[10.0.0.5]:2222", old)
                    + line(hashed, old) + line("other.example", other) + "@revoked * " + line("", other).lstrip())
    path.chmod(0o600)
    assert hostkeys.record(str(path), "[10.0.0.5]:2222", new) == 3
    text = path.read_text()
    assert text == ("# mine\n" + line("other.example", old) + line("other.example", other)
                    + "@revoked * " + line("", other).lstrip() + line("[10.0.0.5]:2222", new))
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    known = hostkeys.KnownHosts([str(path)])
    assert known.keys.lookup("[10.0.0.5]:2222")[new.get_name()] == new


def test_marker_lines_are_read_not_crashed_on(tmp_path, keys):
    good, revoked, ca = keys
    path = tmp_path / "known_hosts"
    path.write_text(line("a.example", good) + line("b.example", revoked) + "@revoked * " + line("", revoked).lstrip()
                    + "@cert-authority *.corp " + line("", ca).lstrip() + "garbage line here\n")
    known = hostkeys.KnownHosts([str(path)])
    assert known.keys.lookup("a.example") is not None
    assert known.keys.lookup("b.example") is None, "a revoked key is never trusted, even when listed"
    policy = hostkeys.Refuse(known, "vps1")
    with pytest.raises(ToolError, match="marked @revoked") as e:
        policy.missing_host_key(None, "b.example", revoked)
    assert e.value.code == UNREACHABLE
    with pytest.raises(ToolError, match="@cert-authority, which this tool does not support"):
        policy.missing_host_key(None, "x.corp", paramiko.Ed25519Key.from_private_key_file(str(tmp_path / "k0")))


def test_a_proxyjump_bastion_is_checked_like_the_host(tmp_path, monkeypatch):
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("Host 203.0.113.10\n  ProxyJump jump@bastion.example:2200\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    host = model.Host("vps1", "203.0.113.10", (), model.Registry("ghcr.io", "u", False, None), "root", 22, "/root",
                      None, None, ())
    conn = ssh.connection(host)
    assert conn.gateway is not None and conn.gateway.host == "bastion.example"
    for hop in (conn, conn.gateway):
        assert isinstance(hop.client._policy, hostkeys.Refuse), "Fabric's AutoAddPolicy must not survive"


@pytest.mark.parametrize("make", [lambda p: p.mkdir(), lambda p: p.write_text("|1|x ssh-ed25519 AAAA\n", "utf-16")])
def test_a_known_hosts_file_that_cannot_be_read_is_a_clear_error(tmp_path, make):
    """Issue 20 item 12: a known_hosts that is a folder, or UTF-16, ended in a traceback (exit 1)."""
    path = tmp_path / "known_hosts"
    make(path)
    with pytest.raises(ToolError, match=f"cannot read known_hosts file {path}") as e:
        hostkeys.KnownHosts([str(path)])
    assert e.value.code == BAD_INPUT


@pytest.mark.parametrize("refused, said", [
    (lambda key: paramiko.BadHostKeyException("[bastion.example]:2200", key, key),
     "the host key of the ProxyJump bastion [bastion.example]:2200 (on the way to 203.0.113.10) CHANGED"),
    (lambda key: hostkeys.UnknownKey("[bastion.example]:2200"),
     "the host key of the ProxyJump bastion [bastion.example]:2200 (on the way to 203.0.113.10) is unknown"),
    (lambda key: paramiko.BadHostKeyException("203.0.113.10", key, key), "the host key of 203.0.113.10 CHANGED"),
])
def test_a_refused_key_names_the_machine_it_belongs_to(monkeypatch, refused, said):
    """Issue 20 item 13: a changed ProxyJump bastion key was reported as the target's."""
    host = model.Host("vps1", "203.0.113.10", (), model.Registry("ghcr.io", "u", False, None), "root", 22, "/root",
                      None, None, ())
    key = paramiko.RSAKey.generate(1024)

    def refuse(self):
        raise refused(key)
    monkeypatch.setattr(ssh.Connection, "open", refuse)
    with pytest.raises(ToolError, match=re.escape(said)) as e:
        ssh.connect(host)
    assert e.value.code == UNREACHABLE


def test_ssh_configs_host_key_alias_is_where_the_key_is_looked_up_and_trusted(tmp_path, monkeypatch, keys):
    """Issue 20 item 13: `HostKeyAlias` in ssh_config was ignored, so a host known only under its alias was
    refused as unknown. As OpenSSH does: the alias's entry is the host's key (its own name's is not read), and
    trust-host records under the alias."""
    aliased, own = keys[0], keys[1]
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("Host 203.0.113.10\n  HostKeyAlias vps1.prod\n  Port 2222\n")
    (tmp_path / ".ssh" / "known_hosts").write_text(line("vps1.prod", aliased) + line("[203.0.113.10]:2222", own))
    monkeypatch.setenv("HOME", str(tmp_path))
    host = model.Host("vps1", "203.0.113.10", (), model.Registry("ghcr.io", "u", False, None), "root", 2222, "/root",
                      None, None, ())
    conn = ssh.connection(host)
    assert ssh.key_name(conn) == "vps1.prod"
    known = conn.client.get_host_keys()
    assert known.lookup("[203.0.113.10]:2222") == {aliased.get_name(): aliased}
    plain = ssh.connection(model.Host("vps2", "203.0.113.11", (), host.registry, "root", 22, "/root", None, None, ()))
    assert ssh.key_name(plain) == "203.0.113.11" and plain.client.get_host_keys().lookup("vps1.prod") is not None
