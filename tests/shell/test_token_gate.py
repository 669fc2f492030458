"""The deploy's token gate (sh/registry.sh): GitHub's answer about the token, asked beside the login and the
pulls, refuses a token that has expired or cannot read packages before anything that runs changes, with what to
run; an answer that says nothing refuses nothing. Fast tier: bash with the answer written here."""
from datetime import datetime, timedelta, timezone

import pytest

from tasks.core.programs.protocol import Code


def github_date(days: int) -> str:
    return (datetime.now(timezone.utc) + timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S UTC")


def gate(lab, *headers: str):
    answer = lab.path / "probe"
    answer.write_text("".join(f"{h}\r\n" for h in headers) + "\r\n")
    return lab.snippet(f"PROBE={answer}; sleep 0 & PROBE_PID=$!; token_gate; echo passed", {"token_gate"})


@pytest.mark.parametrize("headers, why", [
    (("HTTP/2 200", f"github-authentication-token-expiration: {github_date(-2)}", "x-oauth-scopes: read:packages"),
     "expired on " + github_date(-2)[:10]),
    (("HTTP/2 200", "x-oauth-scopes: repo, workflow"), "lacks read:packages (its scopes: repo, workflow)"),
    (("HTTP/2 200", "x-oauth-scopes: "), "lacks read:packages (its scopes: none)"),
])
def test_an_expired_or_scope_less_token_refuses_the_deploy_with_what_to_run(lab, headers, why):
    run = gate(lab, *headers)
    assert run.code == Code.REFUSED and "passed" not in run.stdout
    assert f"the registry token in {lab.secrets} {why}" in run.error and "fab rotate-token" in run.error, run.error


@pytest.mark.parametrize("headers", [
    ("HTTP/2 200", f"github-authentication-token-expiration: {github_date(3)}", "x-oauth-scopes: repo, read:packages"),
    ("HTTP/2 200", "x-oauth-scopes: write:packages, read:packages"),
    ("HTTP/2 200",),                                      # a fine-grained token: no scopes header, never expires
    ("HTTP/2 401", f"github-authentication-token-expiration: {github_date(-2)}"),   # GitHub refuses: unknown
    ("HTTP/2 200", "github-authentication-token-expiration: not a date", "x-oauth-scopes: read:packages"),
    (),                                                   # GitHub did not answer
])
def test_a_usable_token_or_an_answer_that_says_nothing_refuses_nothing(lab, headers):
    run = gate(lab, *headers)
    assert run.code == 0 and "passed" in run.stdout, run.stdout + run.stderr


def test_a_brought_token_github_calls_expired_is_refused_with_how_to_bring_another(lab):
    """registry.token per-deploy: there is no secrets file to name nor rotate-token to run."""
    answer = lab.path / "probe"
    answer.write_text(f"HTTP/2 200\r\ngithub-authentication-token-expiration: {github_date(-1)}\r\n\r\n")
    run = lab.snippet(f"PER_DEPLOY=1; PROBE={answer}; sleep 0 & PROBE_PID=$!; token_gate; echo passed", {"token_gate"})
    assert run.code == Code.REFUSED and "passed" not in run.stdout
    assert "this run's registry token expired on" in run.error and "--token-env" in run.error, run.stdout + run.stderr
