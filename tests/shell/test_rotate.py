"""rotate-token against GitHub (sh/token.sh): a new token GitHub calls expired or scope-less replaces nothing;
--revoke-old pulls the running release's images with the new login, then sends the old token (on curl's stdin,
never an argument) to the credentials-revoke API; a revoke GitHub refuses leaves the rotation done. Fast tier."""
import json
from datetime import datetime, timedelta, timezone

import pytest

from tasks.core.errors import WARNING, ToolError
from tasks.core.programs.declare import Intent
from tasks.core.programs.protocol import Code
from tasks.core.programs.token import rotate_program, rotated

from .conftest import TOKEN

NEW = "ghp_" + "N3w" * 12
API = "https://api.github.example"
OLD_PIN = "v1.4.2@sha256:" + "2" * 64


def rotate(lab, revoke=False, answer="HTTP/2 200\r\nx-oauth-scopes: read:packages\r\n\r\n"):
    lab.answer("curl", f"--globoff -sS -m 10 -o /dev/null -D - -H @- {API}/user", answer)
    program = rotate_program(lab.target, Intent("rotate-token", "", "", "a", "b"), API, revoke)
    return lab.run(program, stdin_tail=NEW + "\n")


def running(lab):
    lab.state.mkdir(exist_ok=True)
    (lab.state / "current").write_text(f"release r0\ntag v1.4.2\npin ems {OLD_PIN}\n")


def test_a_new_token_github_calls_expired_replaces_nothing(lab):
    run = rotate(lab, answer="HTTP/2 200\r\ngithub-authentication-token-expiration: 2020-01-01 00:00:00 UTC\r\n"
                             "x-oauth-scopes: read:packages\r\n\r\n")
    assert run.code == Code.REFUSED and "the new token expired on 2020-01-01 00:00:00 UTC" in run.error, run.error
    assert lab.secrets.read_text() == f"export GITHUB_TOKEN={TOKEN}\n"
    (ask,) = lab.calls("curl")
    assert ask.stdin == f"Authorization: token {NEW}\n" and NEW not in " ".join(ask.argv)


def test_revoke_old_pulls_with_the_new_login_then_sends_the_old_token_on_stdin(lab):
    running(lab)
    lab.answer("docker", f"pull -q {lab.target.image_repo(lab.target.system.apps()[0])}@sha256:{'2' * 64}")
    lab.answer("curl", f"--globoff -sS -m 10 -o /dev/null -w %{{http_code}} -X POST * --data-binary @- {API}/credentials/revoke",
               "202")
    run = rotate(lab, revoke=True)
    assert run.code == 0 and run.result.one("revoked") == {"status": "202", "curl": "0"}, run.stdout + run.stderr
    assert lab.secrets.read_text() == f"export GITHUB_TOKEN={NEW}\n"
    revoke = lab.calls("curl")[-1]
    assert json.loads(revoke.stdin) == {"credentials": [TOKEN]}
    assert all(TOKEN not in " ".join(c.argv) and NEW not in " ".join(c.argv) for c in lab.calls())
    commands = lab.commands("docker")
    assert commands.index(next(c for c in commands if c.startswith("pull "))) < len(commands) - 1, \
        "the pull proves the new token before the real login is refreshed"


def test_a_revoke_github_refuses_leaves_the_rotation_done(lab):
    running(lab)
    lab.answer("docker", "pull -q *")
    lab.answer("curl", "* -X POST * --data-binary @- *", "422")
    run = rotate(lab, revoke=True)
    assert run.code == 0 and run.result.one("revoked") == {"status": "422", "curl": "0"}
    assert lab.secrets.read_text() == f"export GITHUB_TOKEN={NEW}\n"


def test_nothing_is_revoked_without_a_running_release_to_pull_or_when_the_token_is_the_same(lab):
    run = rotate(lab, revoke=True)
    assert run.code == 0 and run.result.one("revoked") is None and "the old one is not revoked" in run.stdout
    running(lab)
    lab.answer("docker", "pull -q *")
    again = rotate(lab, revoke=True)   # (NEW is the old token now)
    assert again.code == 0 and again.result.one("revoked") is None and "no other old token" in again.stdout


def test_a_new_token_that_cannot_pull_the_running_release_replaces_nothing(lab):
    running(lab)
    lab.answer("docker", "pull -q *", "denied: permission_denied: read_package\n", code=1)
    run = rotate(lab, revoke=True)
    assert run.code == Code.LOGIN and "the new token cannot pull" in run.error
    assert lab.secrets.read_text() == f"export GITHUB_TOKEN={TOKEN}\n"


def test_a_revoke_whose_connection_failed_says_curl_s_exit_code(lab):
    running(lab)
    lab.answer("docker", "pull -q *")
    lab.answer("curl", "* -X POST * --data-binary @- *", "000", code=60)
    run = rotate(lab, revoke=True)
    assert run.code == 0 and run.result.one("revoked") == {"status": "000", "curl": "60"}
    with pytest.raises(ToolError) as e:
        rotated(run.result)
    assert e.value.code == WARNING and "its certificate is not trusted by the VPS: nothing was sent" in str(e.value)


def test_a_new_token_expiring_soon_replaces_the_old_one_and_is_warned_of(lab):
    soon = (datetime.now(timezone.utc) + timedelta(days=5, hours=1)).strftime("%Y-%m-%d %H:%M:%S UTC")
    run = rotate(lab, answer=f"HTTP/2 200\r\ngithub-authentication-token-expiration: {soon}\r\n"
                             "x-oauth-scopes: read:packages\r\n\r\n")
    assert run.code == 0 and lab.secrets.read_text() == f"export GITHUB_TOKEN={NEW}\n", run.stdout + run.stderr
    with pytest.raises(ToolError) as e:
        rotated(run.result)
    assert e.value.code == WARNING and "token replaced and proven, but the new token expires in 5 days" in str(e.value)
    assert rotated(run.result, 3) == "token replaced and proven"
    unknown = rotate(lab, answer="HTTP/2 401\r\n\r\n")   # (GitHub not vouching refuses nothing, warns of nothing)
    assert unknown.code == 0 and rotated(unknown.result) == "token replaced and proven"
