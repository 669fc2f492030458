"""GHCR token lifecycle end to end: rotation proven before it replaces, nothing changed on failure, several
hosts in parallel, no leak anywhere, and token-status against a GitHub API stand-in."""
import json
import os
import secrets
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from sandbox.webhook import Receiver
from tasks.core import errors, inventory
from tasks.core.programs.declare import Intent
from tasks.core.programs.token import rotate_program
from tests.e2e.conftest import clean_vps

STANDIN = Path(__file__).with_name("github_standin.py")


def new_token() -> str:
    return "ghp_" + secrets.token_hex(18)


def secrets_dir_state(vps):
    d = vps.secrets.parent
    return sorted((p.name, oct(p.stat().st_mode), p.read_bytes()) for p in d.iterdir())


def test_rotate_to_a_new_valid_token(vps, registry_password):
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    token = new_token()
    registry_password(token)  # the new token is issued; the old one stops working at the registry
    res = vps.fab("rotate-token", "--host", "t1", "--token-env", "NEW_TOKEN", env={"NEW_TOKEN": token})
    assert res.returncode == 0, res.stdout + res.stderr
    assert vps.secrets.read_text() == f"export GITHUB_TOKEN={token}\n"
    assert oct(vps.secrets.stat().st_mode)[-3:] == "600" and oct(vps.secrets.parent.stat().st_mode)[-3:] == "700"
    assert [p.name for p in vps.secrets.parent.iterdir()] == ["github"]
    vps.host.inside("docker image prune -af >/dev/null")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")  # logs in with the new token
    assert vps.version() == "v1.4.3"
    assert '"task":"rotate-token","result":"ok"' in (vps.state / "audit.jsonl").read_text()
    assert (vps.state / "token-rotated").exists()


def test_rotate_from_stdin_and_from_a_command(vps, registry_password):
    token = new_token()
    registry_password(token)
    res = vps.fab("rotate-token", "--host", "t1", "--token-stdin", input=token + "\n")
    assert res.returncode == 0, res.stdout + res.stderr
    assert token in vps.secrets.read_text()
    token2 = new_token()
    registry_password(token2)
    vps.ok("rotate-token", "--host", "t1", "--token-command", f"echo {token2}")
    assert token2 in vps.secrets.read_text()


def test_a_wrong_token_is_refused_and_nothing_changes(vps):
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    before = secrets_dir_state(vps)
    config = (vps.host.root / ".docker" / "config.json").read_bytes()
    res = vps.fab("rotate-token", "--host", "t1", "--token-env", "T", env={"T": "ghp_" + "0" * 36})
    assert res.returncode == errors.REMOTE_FAILED, res.stdout + res.stderr
    assert "refused" in res.stdout and "unchanged" in res.stdout
    assert secrets_dir_state(vps) == before, "the old token file must be byte-identical, no temporary file left"
    assert (vps.host.root / ".docker" / "config.json").read_bytes() == config
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    assert '"task":"rotate-token","result":"refused"' in (vps.state / "audit.jsonl").read_text()


def test_bad_token_values_are_refused_locally(vps):
    before = secrets_dir_state(vps)
    for bad in ("short", "ghp_abc$(touch /tmp/x)def", "two words here", ""):
        res = vps.fab("rotate-token", "--host", "t1", "--token-env", "T", env={"T": bad})
        assert res.returncode == errors.BAD_INPUT, res.stderr
        if bad:
            assert bad not in res.stdout + res.stderr
    res = vps.fab("rotate-token", "--host", "t1")  # no source and no terminal
    assert res.returncode == errors.BAD_INPUT and "no source of the new token: --token-env VAR" in res.stderr
    assert secrets_dir_state(vps) == before


def test_a_connection_dropped_before_the_token_arrives_changes_nothing(vps):
    """The program arrives but the channel closes before the token line: the old token keeps working."""
    before = secrets_dir_state(vps)
    host = inventory.load(vps.inventory).host("t1")
    program = rotate_program(host.targets()[0], Intent("rotate-token", "", "", "t", "t")).text
    res = subprocess.run(["ssh", "-i", str(vps.sb.client_key), "-o", f"UserKnownHostsFile={vps.host.known_hosts}",
                          "-o", "BatchMode=yes", f"root@{vps.host.address}", "bash -s"],
                         input=program, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "no token arrived" in res.stdout
    assert secrets_dir_state(vps) == before
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")


def test_all_hosts_in_parallel_one_failing(vps, second_host, tmp_path, registry_password):
    other = clean_vps(vps.sb, second_host, tmp_path / "other.yml")
    os.chmod(other.secrets.parent, 0o755)  # t2 refuses: its secrets folder is open to others
    inv = yaml.safe_load(vps.inventory.read_text())
    inv["hosts"].update(yaml.safe_load(other.inventory.read_text())["hosts"])
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    token = new_token()
    registry_password(token)
    res = vps.fab("rotate-token", "--all", "--token-env", "T", env={"T": token})
    assert res.returncode == errors.BAD_INPUT, res.stdout + res.stderr
    rows = {line.split("│")[1].strip(): line for line in res.stdout.splitlines() if line.count("│") >= 4}
    assert "ok" in rows["t1"] and "FAILED" in rows["t2"] and "open to others" in rows["t2"]
    assert "1 of 2 failed" in res.stderr and "t2/ems_system" in res.stderr
    assert token in vps.secrets.read_text() and token not in other.secrets.read_text()


def test_the_new_token_appears_nowhere_but_the_secrets_file(vps, registry_password):
    token = new_token()
    registry_password(token)
    outputs = [vps.fab("rotate-token", "--host", "t1", "--token-env", "T", env={"T": token}),
               vps.fab("rotate-token", "--host", "t1", "--token-env", "T", "--dry-run", env={"T": token}),
               vps.fab("rotate-token", "--host", "t1", "--token-env", "T", env={"T": token + "x"}),
               vps.fab("token-status", "--host", "t1"), vps.fab("deploy", "--host", "t1", "--tag", "v1.4.2")]
    assert [o.returncode for o in outputs[:3]] == [0, 0, errors.REMOTE_FAILED]
    assert "<the new token, one line>" in outputs[1].stdout
    assert token in vps.secrets.read_text()
    assert token in vps.host.stdin_log.read_text()  # it did travel, on the SSH channel's stdin
    places = {f"output {i}": o.stdout + o.stderr for i, o in enumerate(outputs)}
    places.update({p.name: p.read_text() for p in vps.state.iterdir() if p.is_file()})
    places["commands the VPS ran"] = vps.host.commands_log.read_text()
    for where, text in places.items():
        assert token not in text, f"token found in {where}"


@pytest.fixture
def github_api(vps, tmp_path):
    """Start the GitHub API stand-in on the sandbox host's own 127.0.0.1, over HTTPS with a certificate from
    the sandbox's CA (which the host trusts, as a VPS trusts api.github.com) or, with ``trusted`` False, a
    self-signed one; and point the inventory at it."""
    procs = []

    def start(expiry: str, scopes: str, port: int = 18443, revoked: Path | None = None, trusted: bool = True) -> None:
        stem = tmp_path / "github-api"
        if trusted:
            vps.sb.registry.issue("127.0.0.1", stem)
        else:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                            "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", f"{stem}.key",
                            "-out", f"{stem}.crt"], check=True, capture_output=True)
        procs.append(subprocess.Popen(["nsenter", f"--net=/run/netns/{vps.host.netns}", "python3", str(STANDIN),
                                       str(port), str(stem), expiry, scopes, *([str(revoked)] if revoked else [])]))
        inv = yaml.safe_load(vps.inventory.read_text())
        inv["hosts"]["t1"]["registry"]["github_api"] = f"https://127.0.0.1:{port}"  # opt-in: not ghcr.io
        vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
        deadline = time.monotonic() + 10
        while vps.host.http(port, "/") is None and time.monotonic() < deadline:
            if subprocess.run(["nsenter", f"--net=/run/netns/{vps.host.netns}", "bash", "-c",
                               f"exec 3<>/dev/tcp/127.0.0.1/{port}"], capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
    yield start
    for p in procs:
        p.terminate()
        p.wait()


def github_date(days: int) -> str:
    return (datetime.now(timezone.utc) + timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S UTC")


def test_token_status_healthy_token(vps, github_api):
    github_api(github_date(90), "read:packages")
    res = vps.fab("token-status", "--host", "t1")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "login ok" in res.stdout and "mode 600" in res.stdout and "(in 89 days)" in res.stdout


def test_token_status_warns_of_expiry_refuses_a_scope_less_token_and_notifies_both(vps, github_api):
    """The scheduled check (examples/schedule): a token expiring soon is exit 8, one without read:packages exit
    2 with the rotation to run; by notify:'s default each is a notification with the reason (never the token)."""
    github_api(github_date(3), "read:packages, repo")
    inv = yaml.safe_load(vps.inventory.read_text())
    receiver = Receiver()
    try:
        inv["notify"] = {"webhook": receiver.url}
        vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
        res = vps.fab("token-status", "--host", "t1", "--warn-days", "7")
        github_api(github_date(90), "repo, workflow", port=18444)
        refused = vps.fab("token-status", "--host", "t1")
    finally:
        receiver.close()
    assert res.returncode == errors.WARNING, res.stdout + res.stderr
    assert "WARNING" in res.stdout and "expires in 2 days" in res.stdout
    assert refused.returncode == errors.BAD_INPUT and "lack read:packages" in refused.stdout + refused.stderr
    assert "fab rotate-token" in refused.stdout + refused.stderr
    warned, failed = receiver.got
    assert warned["action"] == "token-status" and warned["exit"] == 8 and "expires in 2 days" in warned["text"], warned
    assert failed["exit"] == 2 and failed["result"] == "failed" and "lack read:packages" in failed["text"], failed
    assert vps.token not in json.dumps(receiver.got)


def test_token_status_without_the_api_and_with_a_bad_token(vps):
    res = vps.fab("token-status", "--host", "t1")  # the sandbox registry is not GHCR: GitHub is not asked
    assert res.returncode == 0 and "expiry unknown" in res.stdout
    vps.secrets.write_text("export GITHUB_TOKEN=ghp_" + "1" * 36 + "\n")
    res = vps.fab("token-status", "--host", "t1")
    assert res.returncode == errors.REMOTE_FAILED and "login fails now" in res.stdout


def test_deploy_warns_when_the_token_expires_soon(vps, github_api):
    github_api(github_date(5), "read:packages")
    res = vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    assert "the GHCR token expires in 4 days" in res.stdout and "rotate-token" in res.stdout
    closer = vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3", "--warn-days", "3")
    assert "the GHCR token expires" not in closer.stdout, "4 days left is past --warn-days 3"


def test_a_deploy_refuses_a_token_github_calls_expired_and_changes_nothing(vps, github_api):
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    github_api(github_date(-1), "read:packages")   # (the sandbox registry still takes it: GitHub's word decides)
    before = vps.snapshot()
    res = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3")
    assert res.returncode == errors.BAD_INPUT, res.stdout + res.stderr
    assert "the registry token in /root/ems_system/.secrets/github expired on" in res.stderr and \
        "nothing was changed" in res.stderr and "fab rotate-token" in res.stderr, res.stderr
    assert vps.snapshot()[1] == before[1] and vps.version() == "v1.4.2", "not a container changed"


def test_rotate_token_revoke_old_sends_the_old_token_to_github_once_the_new_one_pulled(vps, github_api,
                                                                                        registry_password, tmp_path):
    revoked = tmp_path / "revoked"
    github_api(github_date(90), "read:packages", revoked=revoked)
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    old, token = vps.token, new_token()
    registry_password(token)
    res = vps.fab("rotate-token", "--host", "t1", "--token-env", "NEW_TOKEN", "--revoke-old", env={"NEW_TOKEN": token})
    assert res.returncode == 0 and "the old one revoked" in res.stdout, res.stdout + res.stderr
    assert [json.loads(line) for line in revoked.read_text().splitlines()] == [{"credentials": [old]}]
    assert vps.secrets.read_text() == f"export GITHUB_TOKEN={token}\n"
    logged = vps.host.commands_log.read_text()
    assert old not in logged and token not in logged and old not in res.stdout + res.stderr


def test_revoke_old_sends_nothing_to_an_api_whose_certificate_the_vps_does_not_trust(vps, github_api,
                                                                                      registry_password, tmp_path):
    revoked = tmp_path / "revoked"
    github_api(github_date(90), "read:packages", revoked=revoked, trusted=False)
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    token = new_token()
    registry_password(token)
    res = vps.fab("rotate-token", "--host", "t1", "--token-env", "NEW_TOKEN", "--revoke-old", env={"NEW_TOKEN": token})
    assert res.returncode == errors.WARNING and "not trusted" in res.stdout + res.stderr, res.stdout + res.stderr
    assert not revoked.exists() or revoked.read_text() == "", "TLS failed before the old token was sent"
    assert vps.secrets.read_text() == f"export GITHUB_TOKEN={token}\n", "the rotation stands"


def test_rotate_token_refuses_a_new_token_github_calls_scope_less(vps, github_api, registry_password):
    github_api(github_date(90), "repo")
    token = new_token()
    registry_password(token)   # (it logs in: GitHub's word on its scopes refuses it)
    before = secrets_dir_state(vps)
    res = vps.fab("rotate-token", "--host", "t1", "--token-env", "NEW_TOKEN", env={"NEW_TOKEN": token})
    assert res.returncode == errors.BAD_INPUT and "the new token lacks read:packages" in res.stdout + res.stderr
    assert secrets_dir_state(vps) == before


def test_logout_after_pull_leaves_no_credentials_on_the_vps(vps):
    import json
    inv = yaml.safe_load(vps.inventory.read_text())
    inv["hosts"]["t1"]["registry"]["logout"] = True
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    config = json.loads((vps.host.root / ".docker" / "config.json").read_text())
    assert vps.sb.registry.token not in json.dumps(config) and not config.get("auths")
    assert vps.version() == "v1.4.2"


def test_a_per_deploy_token_pulls_and_leaves_nothing_on_the_vps_and_a_rollback_brings_one_too(vps, registry_password):
    """registry.token: per-deploy: no secrets file; the token (the only one the registry takes now) comes from
    the CI's environment, logs in into a temporary docker config and is nowhere on the host afterwards: not in
    a file of its tree (root's home, its docker's container configs, /dev/shm), an argv or an output."""
    inv = yaml.safe_load(vps.inventory.read_text())
    inv["hosts"]["t1"]["registry"]["token"] = "per-deploy"
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    vps.secrets.unlink()
    token = new_token()
    registry_password(token)   # the seeded token is refused from now on: only the brought one pulls
    refused = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.2")   # CI (no stdin) without a source of it
    assert refused.returncode == errors.BAD_INPUT and "--token-env" in refused.stderr, refused.stdout + refused.stderr
    assert not (vps.state / "releases.jsonl").exists() or "v1.4.2" not in (vps.state / "releases.jsonl").read_text()
    outputs = [vps.fab("deploy", "--host", "t1", "--tag", "v1.4.2", "--token-env", "CI_TOKEN", env={"CI_TOKEN": token}),
               vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3", "--dry-run", env={"CI_TOKEN": token}),
               vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3", "--token-command", f"echo {token}"),
               vps.fab("rollback", "--host", "t1", "--token-env", "CI_TOKEN", env={"CI_TOKEN": token}),
               vps.fab("status", "--host", "t1"), vps.fab("doctor", "--host", "t1")]
    assert [o.returncode for o in outputs[:5]] == [0, 0, 0, 0, 0], [o.stdout + o.stderr for o in outputs]
    assert vps.version() == "v1.4.2" and "<this run's registry token, one line>" in outputs[1].stdout
    assert "none kept (registry.token: per-deploy" in outputs[4].stdout
    assert token in vps.host.stdin_log.read_text(), "it did travel, on the SSH channel's stdin"
    assert not vps.secrets.exists() and not list(Path("/dev/shm").glob("fab-vps-login.*"))
    trees = [vps.host.root, vps.host.dir / "docker" / "containers", Path("/dev/shm")]
    files = [p for t in trees if t.exists() for p in t.rglob("*")
             if p.is_file() and not p.is_symlink() and p.stat().st_size < 4 << 20]
    leaks = [str(p) for p in files if token.encode() in p.read_bytes()]
    assert any(p.name == "config.v2.json" for p in files) and any(p.name == "releases.jsonl" for p in files)
    assert leaks == [], leaks
    places = {f"output {i}": o.stdout + o.stderr for i, o in enumerate(outputs)}
    places["commands the VPS ran"] = vps.host.commands_log.read_text()
    for where, text in places.items():
        assert token not in text, f"token found in {where}"
