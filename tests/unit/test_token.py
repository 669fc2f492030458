"""token-status's verdict from what the VPS reported, and the token value check (no SSH)."""
from datetime import datetime, timezone

import pytest

from tasks import plan
from tasks.errors import BAD_INPUT, REMOTE_FAILED, TOKEN_WARNING, ToolError
from tasks.token import _read_token, describe

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
MTIME = str(int(datetime(2026, 10, 24, 12, 0, tzinfo=timezone.utc).timestamp()))


def report(**kw):
    base = {"file": [f"600 {MTIME} 700"], "login": ["ok"], "api_status": ["200"],
            "api_expiry": ["2027-02-01 00:00:00 UTC"], "api_scopes": ["read:packages"]}
    base.update({k: [v] for k, v in kw.items() if v is not None})
    return {k: v for k, v in base.items() if kw.get(k, "") is not None}


def test_healthy_token():
    line = describe(report(), 14, NOW)
    assert "mode 600" in line and "30 days old (file written 2026-10-24)" in line and "login ok" in line
    assert "expires 2027-02-01 (in 69 days)" in line


def test_recorded_rotation_time_wins_over_mtime():
    assert "2 days old (rotated 2026-11-21)" in describe(report(rotated="2026-11-21T12:00:00Z"), 14, NOW)


@pytest.mark.parametrize("kw, code, phrase", [
    ({"file": "missing"}, BAD_INPUT, "missing"),
    ({"file": f"640 {MTIME} 700"}, BAD_INPUT, "mode 640"),
    ({"file": f"600 {MTIME} 755"}, BAD_INPUT, "folder 755"),
    ({"login": "failed 401 Unauthorized"}, REMOTE_FAILED, "login fails now: 401 Unauthorized"),
    ({"api_expiry": "2026-11-30 00:00:00 UTC"}, TOKEN_WARNING, "expires in 6 days"),
    ({"api_scopes": "repo, gist"}, TOKEN_WARNING, "scopes repo, gist lack read:packages"),
])
def test_problems_and_warnings(kw, code, phrase):
    with pytest.raises(ToolError) as e:
        describe(report(**kw), 14, NOW)
    assert e.value.code == code and phrase in str(e.value)


def test_no_expiry_header_and_unreachable_api():
    assert "no expiry" in describe(report(api_expiry=None), 14, NOW)
    data = report(api_status=None, api_expiry=None, api_scopes=None)
    assert "GitHub API not reachable" in describe(data, 14, NOW)


@pytest.mark.parametrize("token", ["ghp_" + "a" * 36, "github_pat_11AB_cd-ef.gh"])
def test_token_values_accepted(token):
    assert plan.check_token(token) == token


@pytest.mark.parametrize("token", ["", "short", "ghp_abc def", "ghp_$(reboot)xx", "ghp_abc\nexport X=1", "a" * 256])
def test_token_values_refused_without_repeating_them(token):
    with pytest.raises(ToolError) as e:
        plan.check_token(token)
    assert e.value.code == BAD_INPUT and (not token or token not in str(e.value))


def test_one_token_source_only(monkeypatch):
    monkeypatch.setenv("T", "ghp_" + "b" * 36)
    assert _read_token("T", None, False) == "ghp_" + "b" * 36
    assert _read_token(None, "printf ghp_cccccccccc", False) == "ghp_cccccccccc"
    with pytest.raises(ToolError, match="one token source"):
        _read_token("T", "echo x", False)
    with pytest.raises(ToolError, match="exit code 3"):
        _read_token(None, "exit 3", False)
