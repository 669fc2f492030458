"""Day two, end to end on the EMS example (seeds 000/001): fab logs of a stack, a service, followed until
Ctrl-C (the host's readers ended with it) and redacted like everything the tool prints; fab exec with its
words exact, stdin piped through, a terminal when fab has one and the command's exit code fab's own; fab prune
keeping exactly the rollback targets (a rollback after it works by digest); a deploy refused on a host
whose Docker disk is too small for its images; and fab doctor finding the seeds' faults on a real host."""
from __future__ import annotations

import json
import os
import pty
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from sandbox import examples, images, proc, registry

from .conftest import FAB, REPO, Vps, clean_vps

FAKE_TOKEN = "ghp_" + "L" * 36


@pytest.fixture(scope="module")
def ems(sandbox, tmp_path_factory) -> Vps:
    """The EMS example deployed once for this file's tests (each leaves it as it found it)."""
    vps = Vps(sandbox, *examples.ems(sandbox, tmp_path_factory.mktemp("ems")))
    vps.ok("setup", "--host", "t1")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    return vps


def sql_error(vps, table: str) -> None:
    """A statement PostgreSQL logs as an ERROR naming ``table``."""
    vps.host.docker("exec", "postgres_shared_db", "psql", "-U", "ems_user", "-d", "db_ems", "-qc",
                    f'SELECT * FROM "{table}"', check=False)


def readers_left() -> str:
    return subprocess.run(["pgrep", "-af", "compose -p postgres .*logs"], capture_output=True, text=True).stdout


def test_logs_of_a_stack_and_a_service_followed_until_ctrl_c_and_redacted(ems):
    vps = ems
    sql_error(vps, FAKE_TOKEN)
    out = vps.ok("logs", "--host", "t1", "--stack", "postgres", "--tail", "50").stdout
    assert "t1/ems_system/postgres/" in out and "database system is ready to accept connections" in out, out
    assert FAKE_TOKEN not in out and 'relation "***" does not exist' in out, "redacted like all output"
    one = vps.ok("logs", "--host", "t1", "--stack", "postgres", "--service", "postgres", "--tail", "3").stdout
    assert 0 < len(one.splitlines()) <= 3, one
    recent = vps.ok("logs", "--host", "t1", "--stack", "postgres", "--since", "1d").stdout
    assert "ready to accept connections" in recent

    follower = vps.spawn("logs", "--host", "t1", "--stack", "postgres", "-f", "--tail", "0",
                         env={"PYTHONFAULTHANDLER": "1"})
    time.sleep(4)
    sql_error(vps, "followed_table")
    proc.wait_for("the followed line", lambda: readers_left() != "", 10)
    time.sleep(3)
    follower.send_signal(signal.SIGINT)
    out = stopped(follower, 30)
    assert follower.returncode == 0 and 'relation "followed_table" does not exist' in out, out
    proc.wait_for("the host's readers to end", lambda: readers_left() == "", 10)


def stopped(run: subprocess.Popen, timeout: float) -> str:
    """What ``run`` printed once it ended; if it does not end in time, where each of its threads was (its
    faulthandler's dump on SIGABRT) is the failure."""
    try:
        return run.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        run.send_signal(signal.SIGABRT)
        pytest.fail(f"still running {timeout} s after its SIGINT:\n{run.communicate(timeout=30)[0]}")


def test_exec_runs_a_command_in_a_container_exactly_as_typed(ems):
    vps, psql = ems, ("exec", "--host", "t1", "--stack", "postgres", "--")
    words = vps.fab(*psql, "printf", "%s|", "a b", "c;d", "$HOME", '"q"', "it's", "")
    assert words.returncode == 0 and words.stdout == 'a b|c;d|$HOME|"q"|it\'s||', words.stdout + words.stderr
    code = vps.fab(*psql, "sh", "-c", "echo to stderr >&2; exit 7")
    assert code.returncode == 7 and code.stderr == "to stderr\n", code.stderr
    piped = vps.fab(*psql, "psql", "-U", "ems_user", "-d", "db_ems", "-tA", input="SELECT 41 + 1;\n")
    assert piped.returncode == 0 and piped.stdout.strip() == "42", piped.stdout + piped.stderr
    assert vps.fab(*psql, "tty").stdout.strip() == "not a tty"


def test_exec_gives_the_command_a_terminal_when_fab_has_one(ems):
    out, code = on_a_terminal(ems, "exec", "--host", "t1", "--stack", "postgres", "--", "sh", "-c", "tty; exit 3")
    assert code == 3 and "/dev/pts/" in out, out


def on_a_terminal(vps: Vps, *args: str) -> tuple[str, int]:
    """fab run with a pseudo-terminal as its stdin, stdout and stderr: what it wrote there, and its exit code."""
    main, side = pty.openpty()
    run = subprocess.Popen([FAB, *args], cwd=REPO, env=vps.env(), stdin=side, stdout=side, stderr=side)
    os.close(side)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:   # (EIO: every end of the terminal closed)
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    return out.decode(errors="replace"), run.wait(timeout=60)


def test_traefik_gets_real_certificates_from_pebble_and_doctor_reads_their_expiry(ems, sandbox, tmp_path):
    """The EMS example's Traefik as seed 001 runs it: its ACME resolver gets a certificate for each Host() name
    from the sandbox's Pebble through a real HTTP-01 challenge (Pebble resolves the names to this host and
    fetches the token from its :80); the name's certificate chains to Pebble's root; :80 redirects to HTTPS; and
    fab doctor reads the certificate Traefik serves for each name: Pebble's live 10 days, so renewal is due."""
    vps = ems
    root = tmp_path / "pebble-root.pem"
    root.write_text(sandbox.acme.root_pem())
    for url in (examples.EMS_URL, examples.SMS_URL):
        name = url.split("//")[1]
        verified = ("curl", "-fsS", "--max-time", "3", "--cacert", str(root), "--connect-to", f"{name}:443:127.0.0.1:443",
                    f"{url}/version")
        proc.wait_for(f"a certificate for {name}", lambda v=verified: vps.host.inside(shlex.join(v), check=False)
                      .returncode == 0, 90, vps.host.dir / "dockerd.log")
    assert vps.host.inside(shlex.join(verified)).stdout.strip() == "v1.4.3"
    redirect = vps.host.inside("curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' --connect-to "
                               f"{name}:80:127.0.0.1:80 http://{name}/version").stdout
    assert redirect.split()[0] in ("301", "302", "307", "308") and redirect.split()[1] == f"{url}/version", redirect
    found = json.loads(vps.fab("doctor", "--host", "t1", "--json").stdout)["t1/ems_system"]
    tls = sorted((f["level"], f["text"]) for f in found if f["check"] == "tls")
    assert [(level, text.split(":")[0]) for level, text in tls] == [
        ("warn", "api.ems.edumigsoft.com.br"), ("warn", "api.sms.edumigsoft.com.br")], tls
    assert all("the certificate expires in 10 days" in text and "issued by Pebble Intermediate CA" in text
               for _, text in tls), tls


def test_infrastructure_runs_what_it_ran_until_refreshed_and_a_rollback_brings_its_digest_back(ems):
    """Traefik's tag moves on Docker Hub (the sandbox's stand-in): a deploy keeps the build that runs, --refresh
    infra takes the new one, and a rollback to the release before runs the recorded digest again."""
    vps, hub = ems, f"{registry.HUB}/library/traefik:v3.7"
    before = traefik(vps)
    assert vps.releases()[0]["infra"]["infra/traefik"] == f"traefik:v3.7@{before}", vps.releases()[0]
    try:
        vps.host.inside(f"printf 'FROM traefik:v3.7\\nLABEL fab.test=refreshed\\n' | DOCKER_BUILDKIT=0 docker build "
                        f"-q -t {hub} - >/dev/null && docker push -q {hub} >/dev/null")
        vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
        assert traefik(vps) == before, "a plain deploy keeps the build that runs"
        vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3", "--refresh", "infra")
        after = traefik(vps)
        assert after != before and vps.releases()[0]["infra"]["infra/traefik"] == f"traefik:v3.7@{after}"
        vps.ok("rollback", "--host", "t1")
        assert traefik(vps) == before, "the rollback ran the recorded digest again"
        assert vps.running()["infra"]["infra/traefik"] == f"traefik:v3.7@{before}"
    finally:
        vps.host.inside(f"docker tag traefik@{before} {hub} && docker push -q {hub} >/dev/null")
        vps.host.inside("docker tag traefik@" + before + " traefik:v3.7")


def traefik(vps: Vps) -> str:
    """The digest of the image the running Traefik container was made from."""
    image = vps.host.docker("inspect", "--format", "{{.Image}}", "traefik").stdout.strip()
    digests = vps.host.docker("image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}",
                              image).stdout.split()
    return next(d.split("@")[1] for d in digests if d.startswith("traefik@"))


def test_prune_keeps_exactly_the_rollback_targets_and_a_rollback_after_it_works(ems):
    """Good releases v1.4.3, v1.4.2, v1.4.2 re-pushed (three digests of ems) and a failed v1.5.0: --keep 2
    keeps the last two good ones' images, and a rollback to the pruned v1.4.3 pulls it again by digest."""
    vps, repo = ems, f"{registry.SERVER}/{images.APPS[0]}"
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    assert vps.fab("deploy", "--host", "t1", "--tag", "v1.5.0").returncode == 5
    builder = vps.sb.builder
    try:
        builder.push_variant(vps.sb.registry, images.APPS[0], "v1.4.2", build="pruned")
        vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    finally:
        builder.push_variant(vps.sb.registry, images.APPS[0], "v1.4.2", build="original")
    kept = {r["images"]["ems"].split("@")[1] for r in vps.releases() if r["state"] == "good"} - {digest_of(vps, "v1.4.3")}
    assert len(kept) == 2

    listed = vps.ok("prune", "--host", "t1", "--keep", "2", "--dry-run").stdout
    assert f"{repo}:v1.4.3" in listed and f"{repo}:v1.5.0" in listed and "would free up to" in listed, listed
    assert present(vps, f"{repo}:v1.4.3"), "a dry run removes nothing"

    out = vps.ok("prune", "--host", "t1", "--keep", "2").stdout
    assert "freed" in out and "a release keeps it" in out, out
    assert not present(vps, f"{repo}:v1.4.3") and not present(vps, f"{repo}:v1.5.0")
    assert all(present(vps, f"{repo}@{d}") for d in kept), "the last two good releases' images stay"
    vps.ok("rollback", "--host", "t1", "--to", "v1.4.3")
    assert vps.running()["tag"] == "v1.4.3" and present(vps, f"{repo}:v1.4.3") is False
    assert present(vps, f"{repo}@{digest_of(vps, 'v1.4.3')}"), "pulled again by its recorded digest"


def digest_of(vps: Vps, tag: str) -> str:
    """The digest the oldest good release of ``tag`` recorded for ems."""
    return next(r["images"]["ems"].split("@")[1] for r in reversed(vps.releases())
                if r["state"] == "good" and r["tag"] == tag)


def present(vps: Vps, ref: str) -> bool:
    return vps.host.docker("image", "inspect", ref, check=False).returncode == 0


@pytest.fixture
def small_disk(sandbox, tmp_path):
    """A sandbox host whose Docker disk is a 96 MiB tmpfs, clean, with the repository's hosts.yml."""
    running = bool(proc.read_pid(sandbox.host("small", kind="small").dir / "sshd.pid"))
    sandbox.up(["small"], kind="small")
    yield clean_vps(sandbox, "small", tmp_path / "hosts.yml")
    if not running:
        sandbox.host("small").stop()


def test_a_deploy_refuses_when_dockers_disk_lacks_room_for_its_images(small_disk):
    vps = small_disk
    before = vps.snapshot()
    res = vps.fab("deploy", "--host", "small", "--tag", "v1.4.3")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "not enough disk for this release's images" in res.stderr and "MiB free, about" in res.stderr, res.stderr
    after = vps.snapshot()
    changed = {k for k in set(before[0]) | set(after[0]) if before[0].get(k) != after[0].get(k)}
    # the refusal is audited, and the registry login it needed to size the images is kept (as every deploy's)
    assert changed <= {"ems_system/state", "ems_system/state/audit.jsonl", ".docker", ".docker/config.json"}, changed
    assert after[1] == before[1], "no container changed"
    assert "ems_server" not in vps.host.docker("image", "ls").stdout, "nothing pulled"


def db_findings(vps: Vps) -> list[dict]:
    return [f for f in json.loads(vps.fab("doctor", "--host", "t1", "--json").stdout)["t1/ems_system"]
            if f["check"] == "database"]


def data_made_by(vps: Vps, major: str) -> None:
    """PostgreSQL restarted on its volume's PG_VERSION saying ``major``: a real server's refusal (it restarts
    forever) when that is not its own, healthy again when it is."""
    folder = vps.host.docker("volume", "inspect", "--format", "{{.Mountpoint}}", "postgres_postgres_data").stdout.strip()
    (Path(folder) / "PG_VERSION").write_text(major + "\n")
    vps.host.docker("restart", "postgres_shared_db")
    if major != "15":
        logs = ("logs", "--since", "30s", "postgres_shared_db")
        proc.wait_for("PostgreSQL's refusal", lambda: "database files are incompatible with server" in (
            (said := vps.host.docker(*logs)).stdout + said.stderr), 30)
    else:
        proc.wait_for("postgres_shared_db", lambda: vps.host.docker(
            "inspect", "--format", "{{.State.Health.Status}}", "postgres_shared_db").stdout.strip() == "healthy", 60)


def test_doctor_finds_a_missing_network_a_refused_password_and_a_placeholder_and_says_the_fix(sandbox, tmp_path):
    """The EMS example on a fresh host (nothing set up): Traefik's external network is missing and PostgreSQL is
    not running; once set up and deployed, the EMS app's login works, then a password the volume does not have
    is seed 001's "password authentication failed", a volume of another PostgreSQL major seed 000's "database
    files are incompatible"; names whose DNS points elsewhere get no certificate (seed 001's "certificate not
    issued"); a backup three days old; a .env copied from its template keeps the template's placeholders: each found, with its fix."""
    vps = Vps(sandbox, *examples.ems(sandbox, tmp_path))
    for name in examples.EMS_NAMES:   # their DNS points elsewhere: Let's Encrypt (Pebble) cannot issue
        sandbox.acme.point(name, "10.200.254.2")
    res = vps.fab("doctor", "--host", "t1", "--json")
    found = {(f["check"], f["level"]): f for f in json.loads(res.stdout)["t1/ems_system"]}
    assert res.returncode == 11, res.stdout + res.stderr
    assert ("docker", "ok") in found and ("compose", "ok") in found and ("clock", "ok") in found, found
    missing = found[("networks", "fail")]
    assert "is missing" in missing["text"] and missing["fix"] == "fab setup --host t1 (creates it)"
    assert found[("database", "fail")]["text"] == "stack postgres: PostgreSQL is not running"
    vps.ok("setup", "--host", "t1")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    folder = vps.host.root / "ems_system/repo/servers/ems/container"
    env = (folder / ".env").read_text()
    logins = [(f["level"], f["text"]) for f in db_findings(vps)]
    assert logins == [("ok", "stack postgres: PostgreSQL 15 on data made by 15"),
                      ("ok", "ems logs in to postgres as ems_user (database db_ems)"),
                      ("ok", "sms logs in to postgres as sms_user (database db_sms)")], logins
    (folder / ".env").write_text(env.replace("DB_PASSWORD=", "DB_PASSWORD=not-", 1))   # (the volume keeps its own)
    found = {(f["check"], f["level"]): f for f in json.loads(vps.fab("doctor", "--host", "t1", "--json").stdout)[
        "t1/ems_system"]}
    refused = found[("database", "fail")]
    assert "password authentication failed" in refused["text"] and "another password" in refused["text"], refused
    (folder / ".env").write_text(env)
    data_made_by(vps, "14")   # as a volume of PostgreSQL 14 under the example's postgres:15-alpine
    (old,) = (f for f in db_findings(vps) if f["level"] == "fail")   # (its clients' logins would only echo it)
    assert "runs PostgreSQL 15 but its data was made by PostgreSQL 14" in old["text"], old
    assert old["fix"].startswith("name postgres:14 in its compose file again"), old
    data_made_by(vps, "15")
    vps.ok("backup", "--host", "t1")
    for manifest in (vps.host.root / "ems_system/data/backups").glob("*/manifest.json"):   # three days pass
        made = json.loads(manifest.read_text())
        made["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3 * 86400))
        manifest.write_text(json.dumps(made))
    (folder / ".env").write_text((folder / ".env_example").read_text())
    res = vps.fab("doctor", "--host", "t1", "--json")
    found = {(f["check"], f["level"]): f for f in json.loads(res.stdout)["t1/ems_system"]}
    assert ("networks", "fail") not in found and ("networks", "ok") in found, found
    assert found[(".env", "fail")]["text"].startswith("/root/ems_system/repo/servers/ems/container/.env: "), found
    assert ("compose files", "fail") not in found, "a stack never deployed is read with stand-ins for its tags"
    assert found[("backups", "warn")]["text"].endswith("72 h old (limit 48 h)"), found
    assert "not api.sms.edumigsoft.com.br: no certificate was issued for it (Traefik serves its default)" in found[
        ("tls", "fail")]["text"], found
    plain = vps.fab("doctor", "--host", "t1")
    assert plain.returncode == 11 and "FAIL" in plain.stdout and "placeholder" in plain.stdout, plain.stdout
