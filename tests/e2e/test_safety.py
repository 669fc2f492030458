"""Bad input gets a clear error and changes nothing; secrets never leak; --dry-run touches nothing; host keys
are checked. Each change-nothing claim compares the host's whole /root tree and its containers before/after."""
import os
import threading
from pathlib import Path

import pytest

from tasks.core import errors


@pytest.fixture
def deployed(vps):
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    return vps


def assert_unchanged(vps, before, res, code, *phrases):
    assert res.returncode == code, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    for phrase in phrases:
        assert phrase in res.stderr, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    after = vps.snapshot()
    assert after[1] == before[1], "containers changed"
    changed = {k for k in set(before[0]) | set(after[0]) if before[0].get(k) != after[0].get(k)}
    # the refusal is audited (on a first deploy, in a state folder made for it)
    assert changed <= {"ems_system/state", "ems_system/state/audit.jsonl"}, f"changed on the VPS: {sorted(changed)}"


def test_bad_tag_is_refused_before_anything_remote(deployed):
    vps = deployed
    before = vps.snapshot()
    commands = vps.host.commands_log.read_text()
    res = vps.fab("deploy", "--host", "t1", "--tag", "v1;touch /tmp/pwned")
    assert_unchanged(vps, before, res, errors.BAD_INPUT, "not a valid image tag")
    assert vps.host.commands_log.read_text() == commands, "a bad tag must not even open a connection"
    assert not Path("/tmp/pwned").exists() and not (vps.host.root / "pwned").exists()


def test_unknown_host_lists_the_known_ones(deployed):
    before = deployed.snapshot()
    res = deployed.fab("deploy", "--host", "vps9", "--tag", "v1.4.2")
    assert_unchanged(deployed, before, res, errors.BAD_INPUT, "unknown host 'vps9'", "knows t1")


def test_rollback_target_not_in_history(deployed):
    before = deployed.snapshot()
    res = deployed.fab("rollback", "--host", "t1", "--to", "v0.0.1")
    assert_unchanged(deployed, before, res, errors.BAD_INPUT, "v0.0.1 is not in the release history",
                     "good releases: v1.4.3")


def test_malformed_inventory(deployed):
    before = deployed.snapshot()
    deployed.inventory.write_text(deployed.inventory.read_text().replace("systems:\n", "systems: [\n", 1))
    res = deployed.fab("deploy", "--host", "t1", "--tag", "v1.4.2")
    assert_unchanged(deployed, before, res, errors.BAD_INPUT, f"{deployed.inventory}:", "not valid YAML")


@pytest.mark.parametrize("damage, phrase", [
    (lambda v: v.secrets.unlink(), "is missing"),
    (lambda v: os.chmod(v.secrets, 0o640), "readable by others (mode 640)"),
    (lambda v: os.chmod(v.secrets, 0o604), "readable by others (mode 604)"),
    (lambda v: os.chmod(v.secrets.parent, 0o755), "open to others (mode 755)"),
    (lambda v: v.secrets.write_text("# no token here\n"), "no 'export GITHUB_TOKEN=...' line"),
])
def test_bad_secrets_file(deployed, damage, phrase):
    damage(deployed)
    before = deployed.snapshot()
    res = deployed.fab("deploy", "--host", "t1", "--tag", "v1.4.2")
    assert_unchanged(deployed, before, res, errors.BAD_INPUT, phrase)


def test_wrong_token_fails_login_and_restarts_nothing(deployed):
    vps = deployed
    vps.secrets.write_text("export GITHUB_TOKEN=ghp_wrongwrongwrongwrongwrongwrongwrong\n")
    before = vps.snapshot()
    res = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.2")
    assert_unchanged(vps, before, res, errors.REMOTE_FAILED, "docker login to", "failed")
    assert "ghp_wrong" not in res.stdout + res.stderr
    assert vps.version() == "v1.4.3"


def test_missing_tag_in_registry_fails_the_pull_and_changes_nothing(deployed):
    before = deployed.snapshot()
    res = deployed.fab("deploy", "--host", "t1", "--tag", "v9.9.9")
    assert_unchanged(deployed, before, res, errors.REMOTE_FAILED, "pull of", "v9.9.9 failed")
    assert deployed.version() == "v1.4.3"


def test_dry_run_prints_the_plan_and_leaves_the_host_byte_for_byte(deployed):
    vps = deployed
    before = vps.snapshot()
    audit = (vps.state / "audit.jsonl").read_bytes()
    res = vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2", "--dry-run")
    assert "docker login" in res.stdout and "--password-stdin" in res.stdout and "(it was not sent)" in res.stdout
    assert "add_image ems 10.200.0.1:5000/edumigsoft/ems_server" in res.stdout and "run fetch_images" in res.stdout
    assert "a read-only look at the host" in res.stdout and "preflight: nothing would refuse this deploy" in res.stdout
    res = vps.ok("rollback", "--host", "t1", "--to", "v1.4.3", "--dry-run")
    assert "@sha256:" in res.stdout
    assert vps.snapshot() == before and (vps.state / "audit.jsonl").read_bytes() == audit


def test_the_token_never_leaks(vps):
    """Not in output, history, audit, dry-run, any command the VPS ran (sshd's record), nor any local argv."""
    token = vps.token
    assert token in vps.secrets.read_text()  # the search below can find it when it is there
    seen_in_argv, scans = [], []
    stop = threading.Event()

    def watch_argv():
        # (a process may end between the listing and the read: skipped, never the end of the watch; Path.glob
        # stats each entry and raised ProcessLookupError once, which silently ended the watch for the rest)
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                try:
                    if pid.isdigit() and token.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                        seen_in_argv.append(pid)
                except OSError:
                    pass
            scans.append(1)

    watcher = threading.Thread(target=watch_argv, daemon=True)
    watcher.start()
    try:
        outputs = [vps.fab("deploy", "--host", "t1", "--tag", "v1.4.2"),
                   vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3"),
                   vps.fab("deploy", "--host", "t1", "--tag", "v1.5.0"),
                   vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3", "--dry-run"),
                   vps.fab("rollback", "--host", "t1", "--to", "v1.4.2", "--dry-run"),
                   vps.fab("rollback", "--host", "t1"),
                   vps.fab("status", "--host", "t1"), vps.fab("releases", "--host", "t1", "--json")]
    finally:
        alive = watcher.is_alive()
        stop.set()
        watcher.join()
    assert alive and len(scans) > 10, "the argv watch ran all along"
    assert [o.returncode for o in outputs] == [0, 0, errors.ROLLED_BACK, 0, 0, 0, 0, 0]
    assert not seen_in_argv, f"token in the argv of {seen_in_argv}"
    places = {f"output of fab {i}": o.stdout + o.stderr for i, o in enumerate(outputs)}
    places.update({p.name: p.read_text() for p in vps.state.iterdir() if p.is_file()})
    places["commands the VPS ran"] = vps.host.commands_log.read_text()
    places["programs sent on stdin"] = vps.host.stdin_log.read_text()
    assert "docker login" in places["programs sent on stdin"]  # the record is real, not empty
    for where, text in places.items():
        assert token not in text, f"token found in {where}"


def test_unknown_and_changed_host_keys_are_refused(vps, tmp_path):
    known = Path(vps.host.known_hosts)
    original = known.read_text()
    try:
        known.write_text("")
        res = vps.fab("status", "--host", "t1")
        assert res.returncode == errors.UNREACHABLE and "host key of" in res.stderr and "unknown" in res.stderr
        other = tmp_path / "k"
        os.system(f"ssh-keygen -q -t ed25519 -N '' -f {other}")
        known.write_text(f"{vps.host.address} {' '.join((tmp_path / 'k.pub').read_text().split()[:2])}\n")
        res = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.2")
        assert res.returncode == errors.UNREACHABLE and "CHANGED" in res.stderr
        assert not (vps.state / "releases.jsonl").exists()
    finally:
        known.write_text(original)


def test_trust_host_adds_a_key_only_when_the_fingerprint_matches(vps):
    import subprocess
    known = Path(vps.host.known_hosts)
    original = known.read_text()
    pub = vps.host.dir / "ssh_host_ed25519_key.pub"
    real = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True).stdout.split()[1]
    try:
        known.write_text("")
        res = vps.fab("trust-host", "--host", "t1", "--fingerprint", "SHA256:" + "A" * 43)
        assert res.returncode == errors.UNREACHABLE and real in res.stdout + res.stderr and known.read_text() == ""
        res = vps.fab("trust-host", "--host", "t1")  # no terminal, no fingerprint: refuses
        assert res.returncode == errors.BAD_INPUT and known.read_text() == ""
        vps.ok("trust-host", "--host", "t1", "--fingerprint", real)
        assert known.read_text().split()[1:] == original.split()[1:]
        vps.ok("status", "--host", "t1")
    finally:
        known.write_text(original)


def test_trust_host_replaces_a_changed_key_so_the_next_command_works(vps, tmp_path):
    """Before, the new key was appended after the stale one, which stayed first: the next command still said
    CHANGED although trust-host had said "trusted"."""
    import subprocess
    known = Path(vps.host.known_hosts)
    original = known.read_text()
    pub = vps.host.dir / "ssh_host_ed25519_key.pub"
    real = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True).stdout.split()[1]
    try:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
        known.write_text(f"{vps.host.address} {' '.join((tmp_path / 'k.pub').read_text().split()[:2])}\n")
        assert vps.fab("status", "--host", "t1").returncode == errors.UNREACHABLE
        vps.ok("trust-host", "--host", "t1", "--fingerprint", real)
        vps.ok("status", "--host", "t1")
        assert [ln.split()[0] for ln in known.read_text().splitlines()] == [vps.host.address]
    finally:
        known.write_text(original)


def test_a_placeholder_left_in_an_env_refuses_the_deploy_and_changes_nothing(deployed):
    """seed 001's .env_example says JWT_KEY=change-me: deployed as is, it would be the real key."""
    vps = deployed
    env = vps.host.root / "ems_system/repo/servers/ems/container/.env"
    env.write_text(env.read_text().replace("JWT_KEY=sandbox-ems", "JWT_KEY=change-me"))
    before = vps.snapshot()
    res = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.2")
    assert_unchanged(vps, before, res, errors.BAD_INPUT, "still placeholders from the .env templates: ems:JWT_KEY")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2", "--allow-placeholders")
    assert vps.version() == "v1.4.2"
