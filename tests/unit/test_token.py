"""token-status's verdict from what the VPS reported, and the token value check (no SSH)."""
from datetime import datetime, timezone

import pytest

from tasks.core.errors import BAD_INPUT, REMOTE_FAILED, WARNING, ToolError
from tasks.core.grammar import check_token
from tasks.core.programs.protocol import Result
from tasks.core.programs.token import describe
from tasks.token import read_token

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
MTIME = str(int(datetime(2026, 10, 24, 12, 0, tzinfo=timezone.utc).timestamp()))
MISSING = object()


def report(file=None, login=None, api=None, rotated=None) -> Result:
    """A token_check Result as the VPS reports it; MISSING leaves a line out."""
    data = {"file": file or {"mode": "600", "mtime": MTIME, "dir_mode": "700"},
            "login": login or {"result": "ok"},
            "api": api or {"status": "200", "expiry": "2027-02-01 00:00:00 UTC", "scopes": "read:packages",
                           "has_scopes": "1"}}
    if rotated:
        data["rotated"] = {"at": rotated}
    return Result(data={k: [v] for k, v in data.items() if v is not MISSING})


def api(**kw):
    return {"status": "200", "expiry": "2027-02-01 00:00:00 UTC", "scopes": "read:packages", "has_scopes": "1", **kw}


def test_healthy_token():
    line = describe(report(), 14, NOW)
    assert "mode 600" in line and "30 days old (file written 2026-10-24)" in line and "login ok" in line
    assert "expires 2027-02-01 (in 69 days)" in line


def test_recorded_rotation_time_wins_over_mtime():
    assert "2 days old (rotated 2026-11-21)" in describe(report(rotated="2026-11-21T12:00:00Z"), 14, NOW)


@pytest.mark.parametrize("kw, code, phrase", [
    ({"file": {"missing": "1"}}, BAD_INPUT, "missing"),
    ({"file": {"mode": "640", "mtime": MTIME, "dir_mode": "700"}}, BAD_INPUT, "mode 640"),
    ({"file": {"mode": "600", "mtime": MTIME, "dir_mode": "755"}}, BAD_INPUT, "folder 755"),
    ({"login": {"result": "failed", "error": "401 Unauthorized"}}, REMOTE_FAILED, "login fails now: 401 Unauthorized"),
    ({"api": api(expiry="2026-11-30 00:00:00 UTC")}, WARNING, "expires in 6 days"),
    ({"api": api(scopes="repo, gist")}, BAD_INPUT, "FAIL: scopes repo, gist lack read:packages: no pull works with "
                                                   "it; give the host a new token: fab rotate-token"),
    ({"api": api(expiry="2026-11-20 00:00:00 UTC")}, BAD_INPUT, "FAIL: expired 4 days ago"),
    ({"api": api(status="401")}, WARNING, "the GitHub API answered 401 for this token"),
])
def test_problems_and_warnings(kw, code, phrase):
    with pytest.raises(ToolError) as e:
        describe(report(**kw), 14, NOW)
    assert e.value.code == code and phrase in str(e.value)


def test_no_expiry_header_unreachable_api_and_not_asked():
    assert "no expiry" in describe(report(api=api(expiry="")), 14, NOW)
    assert "GitHub API not reachable" in describe(report(api={"unreachable": "1"}), 14, NOW)
    assert "expiry unknown: not a GitHub registry, so GitHub is not asked" in describe(report(api=MISSING), 14, NOW)


@pytest.mark.parametrize("token", ["ghp_" + "a" * 36, "github_pat_11AB_cd-ef.gh"])
def test_token_values_accepted(token):
    assert check_token(token) == token


@pytest.mark.parametrize("token", ["", "short", "ghp_abc def", "ghp_$(reboot)xx", "ghp_abc\nexport X=1", "a" * 256])
def test_token_values_refused_without_repeating_them(token):
    with pytest.raises(ToolError) as e:
        check_token(token)
    assert e.value.code == BAD_INPUT and (not token or token not in str(e.value))


def test_one_token_source_only(monkeypatch):
    monkeypatch.setenv("T", "ghp_" + "b" * 36)
    assert read_token("T", None, False) == "ghp_" + "b" * 36
    assert read_token(None, "printf ghp_cccccccccc", False) == "ghp_cccccccccc"
    with pytest.raises(ToolError, match="give one source of the new token"):
        read_token("T", "echo x", False)
    with pytest.raises(ToolError, match="exit code 3"):
        read_token(None, "exit 3", False)
    with pytest.raises(ToolError, match="not text") as e:   # (issue 20 item 12: a UnicodeDecodeError traceback)
        read_token(None, "printf 'ghp_\\377\\376x'", False)
    assert e.value.code == BAD_INPUT


@pytest.mark.parametrize("rotated", ["yesterday", "2026-13-45T00:00:00Z", "1e9"])
def test_a_damaged_rotation_time_from_the_host_is_a_clear_error(rotated):
    """Issue 20 item 12: a malformed state/token-rotated ended in 'unexpected ValueError' (status, token-status)."""
    from tasks.core.programs.state import parse_status
    with pytest.raises(ToolError, match="the host sent a report the tool cannot read"):
        describe(report(rotated=rotated), 14, NOW)
    with pytest.raises(ToolError, match="the host sent a report the tool cannot read"):
        parse_status(Result(data={"secrets": [{"mode": "600", "mtime": "1"}], "rotated": [{"at": rotated}]}))


def test_a_run_brings_its_registry_token_only_where_one_is_pulled_with(monkeypatch, tmp_path):
    from tasks.core import asked, inventory
    (tmp_path / "hosts.yml").write_text(
        "registry: {server: ghcr.io, username: u, token: per-deploy}\n"
        "systems:\n  s: {stacks: {a: {compose: repo/a.yml, image: o/a}}}\n"
        "  pub: {stacks: {db: {compose: repo/db.yml}}}\n"
        "hosts:\n  h: {address: x, systems: [s]}\n  p: {address: y, systems: [pub]}\n")
    inv = inventory.load(tmp_path / "hosts.yml")
    per, public = inv.host("h").targets(), inv.host("p").targets()
    assert asked.registry_token(public, None, None) == "", "public images: nothing is asked"
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_" + "d" * 36)
    assert asked.registry_token(per, "GITHUB_TOKEN", None) == "ghp_" + "d" * 36
    monkeypatch.setattr("sys.stdin", open("/dev/null"))   # CI: no terminal, no source given
    with pytest.raises(ToolError, match="no source of the registry token: --token-env") as e:
        asked.registry_token(per, None, None)
    monkeypatch.setenv("BAD", "ghp_$(reboot) x")
    with pytest.raises(ToolError, match="the registry token is not a token") as bad:
        asked.registry_token(per, "BAD", None)
    assert e.value.code == bad.value.code == BAD_INPUT and "reboot" not in str(bad.value)
