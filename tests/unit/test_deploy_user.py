"""`fab bootstrap --create-user NAME --authorized-key PATH [--lock-root]`: the options and the key file are
checked before anything runs on a host (exit 2, with the file's line), hostile values included. Fast tier."""
import pytest

from tasks.bootstrap import new_user
from tasks.core.errors import BAD_INPUT, ToolError
from tasks.core.pubkeys import authorized_keys

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC1GxbD0iALcjQoAbU9fJLtCeRk+6xMTii1e3irrbYz2"


def key_file(tmp_path, text: str) -> str:
    path = tmp_path / "id.pub"
    path.write_text(text)
    return str(path)


def refused(fn, *args) -> str:
    with pytest.raises(ToolError) as e:
        fn(*args)
    assert e.value.code == BAD_INPUT
    return str(e.value)


def test_a_pub_file_gives_its_keys_comments_kept_blank_and_hash_lines_skipped(tmp_path):
    path = key_file(tmp_path, f"# the team's keys\n\n{ED25519} ana@laptop\n{ED25519}\n")
    assert authorized_keys(path) == (f"{ED25519} ana@laptop", ED25519)
    assert new_user("deploy", path, True).keys == (f"{ED25519} ana@laptop", ED25519)


@pytest.mark.parametrize("text, said", [
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n", "is a private key: give its .pub file"),
    ("", "holds no public key"),
    ("# nothing\n", "holds no public key"),
    (f'command="/bin/sh" {ED25519}\n', "id.pub:1: 'command=\"/bin/sh\"' is not a public key type"),
    (f"{ED25519[:-8]}\n", "id.pub:1: the key's data is not a valid ssh-ed25519 key"),
    (f"ssh-rsa {ED25519.split()[1]}\n", "id.pub:1: the key's data is not a valid ssh-rsa key"),
    (f"{ED25519} ok\nssh-ed25519 !!!notbase64\n", "id.pub:2: the key's data is not a valid ssh-ed25519 key"),
    (f"{ED25519} ana\x1b[2J\n", "id.pub:1: the key's comment has control or invisible characters"),
    (f"{ED25519} ana\u202etxt\n", "id.pub:1: the key's comment has control or invisible characters"),
])
def test_a_key_file_that_is_not_public_keys_is_refused_with_its_line(tmp_path, text, said):
    assert said in refused(authorized_keys, key_file(tmp_path, text))


def test_an_unreadable_key_file_is_refused(tmp_path):
    assert "cannot read it" in refused(authorized_keys, str(tmp_path / "missing.pub"))
    (tmp_path / "bin.pub").write_bytes(b"\xff\xfe")
    assert "not UTF-8" in refused(authorized_keys, str(tmp_path / "bin.pub"))


@pytest.mark.parametrize("name", ["root", "-oProxyCommand=x", "a b", "ana;rm", "", "x" * 33, "dé"])
def test_a_user_name_that_is_not_a_login_is_refused(tmp_path, name):
    assert "a login name" in refused(new_user, name, key_file(tmp_path, ED25519), False)


def test_the_options_go_together(tmp_path):
    assert "--create-user needs --authorized-key" in refused(new_user, "deploy", None, False)
    assert "go with --create-user" in refused(new_user, None, key_file(tmp_path, ED25519), False)
    assert "go with --create-user" in refused(new_user, None, None, True)
    assert new_user(None, None, False) is None
