"""setup and migrate-layout end to end: a sandbox VPS built in the old layout (repo, letsencrypt, uploads and
logs at old paths, stacks running from the old compose files, a named volume with data, thousands of uploads
with odd names) moved onto seed 001's hierarchy with nothing lost."""
import hashlib
import json
import os
import signal
import time
from pathlib import Path

import yaml

from tasks.core import errors


def tree(path: Path) -> dict:
    """Every entry under ``path``: type, mode, size, link target and content hash, by relative name."""
    out = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            p = Path(root) / name
            st = p.lstat()
            if p.is_symlink():
                out[str(p.relative_to(path))] = ("link", os.readlink(p))
            elif p.is_dir():
                out[str(p.relative_to(path))] = ("dir", oct(st.st_mode))
            else:
                out[str(p.relative_to(path))] = ("file", oct(st.st_mode), st.st_size,
                                                 hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def old(vps, name: str) -> Path:
    return vps.host.root / "old" / name


def new(vps, rel: str) -> Path:
    return vps.host.root / rel


def running(vps) -> dict:
    """container name -> (image id, mount sources)"""
    out = {}
    for line in vps.host.docker("ps", "-q").stdout.split():
        info = json.loads(vps.host.docker("inspect", line).stdout)[0]
        out[info["Name"].lstrip("/")] = (info["Image"], sorted(m.get("Source") or m.get("Name") for m in info["Mounts"]))
    return out


def volume(vps) -> tuple:
    info = json.loads(vps.host.docker("volume", "inspect", "ems_pgdata").stdout)[0]
    data = Path(info["Mountpoint"]) / "table.dat"
    return info["CreatedAt"], info["Mountpoint"], data.read_text()


def test_migrate_layout_moves_everything_and_loses_nothing(old_vps):
    vps = old_vps
    uploads, acme = tree(old(vps, "uploads")), tree(old(vps, "letsencrypt"))
    assert len(uploads) > 2000 and any("日本語" in k for k in uploads) and any(v[0] == "link" for v in uploads.values())
    images = {name.split("-")[0]: img for name, (img, _) in running(vps).items()}
    vol = volume(vps)
    res = vps.fab("migrate-layout", "--host", "t1", "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "on the new layout" in res.stdout and "switch time" in res.stdout
    assert tree(new(vps, "ems_system/data/uploads")) == uploads, "every upload byte-identical"
    assert tree(new(vps, "infra/letsencrypt")) == acme
    assert tree(old(vps, "uploads")) == uploads, "old copies are kept"
    now = running(vps)
    assert sorted(now) == ["ems_system-ems-ems-1", "ems_system-infra-traefik-1", "ems_system-postgres-postgres-1",
                           "ems_system-sms-sms-1"]
    assert now["ems_system-ems-ems-1"][1] == ["/root/ems_system/data/logs/ems", "/root/ems_system/data/uploads/ems"]
    assert now["ems_system-infra-traefik-1"][1] == ["/root/infra/letsencrypt"]
    for name, (img, _) in now.items():
        assert img == images[name.split("-")[1]], f"{name} must run the image the old stack ran"
    assert volume(vps) == vol, "the named volume is the same one, its data untouched"
    assert vps.version() == "v1.4.2"
    assert vps.running()["action"] == "migrate-layout"
    assert '"task":"migrate-layout","result":"ok"' in (vps.state / "audit.jsonl").read_text()
    assert "switch time" in (vps.state / "migration" / "done").read_text()
    before = vps.snapshot()
    again = vps.ok("migrate-layout", "--host", "t1", "--yes")
    assert "already on the new layout, nothing to do" in again.stdout
    assert vps.snapshot() == before
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")  # the new layout deploys as usual
    assert vps.version() == "v1.4.3"
    vps.ok("migrate-layout", "--host", "t1", "--remove-old")
    assert not old(vps, "uploads").exists() and not old(vps, "ems_system").exists()
    assert tree(new(vps, "ems_system/data/uploads")) == uploads


def remote_program_pid(vps) -> int | None:
    """The `bash -s` the sandbox's sshd runs for this host, if any."""
    wrapper = str(vps.host.dir / "record-command")
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if stat.read_bytes().split(b"\0")[:2] in ([b"/bin/bash", b"-c"], [b"bash", b"-s"]):
                parent = (stat.parent / "stat").read_text().rsplit(")", 1)[1].split()[1]
                if wrapper.encode() in Path(f"/proc/{parent}/cmdline").read_bytes():
                    return int(stat.parent.name)
        except (OSError, IndexError):
            continue
    return None


def test_an_interrupted_migration_is_resumed(old_vps):
    vps = old_vps
    uploads = tree(old(vps, "uploads"))
    proc = vps.spawn("migrate-layout", "--host", "t1", "--yes")
    marker = vps.state / "migration" / "copied-uploads"
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    pid = remote_program_pid(vps)
    assert marker.exists() and pid, "the migration should be past the copy and still running"
    os.kill(pid, signal.SIGKILL)  # the host loses the program (as with a crash); the client sees the channel drop
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0, out
    assert (vps.state / "lock").exists() and not (vps.state / "migration" / "done").exists()
    res = vps.fab("migrate-layout", "--host", "t1", "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "taking over the lock of an interrupted migration" in res.stdout
    assert tree(new(vps, "ems_system/data/uploads")) == uploads
    assert vps.version() == "v1.4.2" and all(n.startswith("ems_system-") for n in running(vps))


def test_new_stacks_failing_put_the_old_ones_back(old_vps):
    vps = old_vps
    inv = yaml.safe_load(vps.inventory.read_text())
    inv["systems"]["ems_system"]["stacks"]["ems"]["health"] = "http://127.0.0.1:8080/no-such-page"
    vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    uploads = tree(old(vps, "uploads"))
    before = running(vps)
    res = vps.fab("migrate-layout", "--host", "t1", "--yes")
    assert res.returncode == errors.ROLLED_BACK, res.stdout + res.stderr
    assert "the old stacks run again from the old paths" in res.stderr
    after = running(vps)
    assert sorted(after) == sorted(before) and all(after[n][1] == before[n][1] for n in after)
    assert tree(old(vps, "uploads")) == uploads and vps.version() == "v1.4.2"
    assert not (vps.state / "migration" / "done").exists()


def test_dry_run_changes_nothing(old_vps):
    before = old_vps.snapshot()
    res = old_vps.ok("migrate-layout", "--host", "t1", "--dry-run")
    assert "migration plan" in res.stdout and "copy_all" in res.stdout and "(it was not sent)" in res.stdout
    assert old_vps.snapshot() == before


def refused(vps, *phrases):
    before = vps.snapshot()
    res = vps.fab("migrate-layout", "--host", "t1", "--yes")
    assert res.returncode == errors.BAD_INPUT, res.stdout + res.stderr
    for phrase in phrases:
        assert phrase in res.stderr, res.stderr
    assert vps.snapshot() == before


def test_preflight_refuses_a_held_lock(old_vps):
    (old_vps.state / "lock").mkdir(parents=True)
    (old_vps.state / "lock" / "info").write_text("ana@laptop since 2026-11-23T10:00:00Z (deploy v1, release r)\n")
    refused(old_vps, "a deploy lock is held: ana@laptop")


def test_preflight_refuses_a_conflicting_target(old_vps):
    target = new(old_vps, "ems_system/repo")
    target.mkdir(parents=True)
    (target / "something-else.txt").write_text("not the old repo\n")
    refused(old_vps, "already holds other content")


def test_preflight_refuses_without_enough_disk(old_vps):
    new(old_vps, "ems_system").mkdir(exist_ok=True)
    old_vps.host.inside("mount -t tmpfs -o size=256k tmpfs /root/ems_system")
    try:
        refused(old_vps, "not enough free disk")
    finally:
        old_vps.host.inside("umount /root/ems_system")


def test_setup_on_a_fresh_host_then_again(vps):
    root = vps.host.root
    for rel in ("infra", "ems_system/data", "ems_system/state", "ems_system/.secrets"):
        os.system(f"rm -rf '{root / rel}'")
    for app in ("ems", "sms"):
        (root / f"ems_system/repo/servers/{app}/container/.env").unlink()
    compose = root / "ems_system/repo/servers/ems/container/docker-compose.prod.yml"
    compose.write_text(compose.read_text() + "networks:\n  default:\n    name: ems_net\n    external: true\n")
    res = vps.ok("setup", "--host", "t1")
    assert "+ network ems_net" in res.stdout and "+ /root/ems_system/.secrets" in res.stdout
    assert "JWT_KEY still hold placeholder values" in res.stdout and "create the token file" in res.stdout
    modes = {rel: oct((root / rel).stat().st_mode)[-3:] for rel in
             ("ems_system/.secrets", "ems_system/state", "ems_system/data/uploads/ems", "infra/letsencrypt",
              "ems_system/repo/servers/ems/container/.env")}
    assert modes == {"ems_system/.secrets": "700", "ems_system/state": "700", "ems_system/data/uploads/ems": "755",
                     "infra/letsencrypt": "755", "ems_system/repo/servers/ems/container/.env": "600"}
    assert (root / "ems_system/repo/servers/ems/container/.env").read_text() == \
        (root / "ems_system/repo/servers/ems/container/.env_example").read_text()
    vps.host.docker("network", "inspect", "ems_net")
    before = vps.snapshot()
    again = vps.ok("setup", "--host", "t1")
    assert "nothing to do, everything was already in place" in again.stdout
    assert vps.snapshot() == before
