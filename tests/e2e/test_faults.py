"""The fault suite: each fault injected into a real deploy on a sandbox VPS, then the same promises checked
(a healthy running release, the new one or the previous good one; a history whose every line parses; no lock
left; the stacks' .env files intact and pinned consistently; the token nowhere but its file). Marked `faults`
(also `e2e`): `scripts/test -m faults` runs it alone, and its summary prints the table of figures."""
from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest
import yaml

from sandbox import examples, proc, registry, system
from sandbox.load import Load
from tasks.core import errors

from .conftest import FAB, REPO, Vps
from .test_layout import new, old, remote_program_pid, tree, volume

pytestmark = pytest.mark.faults
PIN = re.compile(r"IMAGE_TAG=(v[0-9.]+)@sha256:[0-9a-f]{64}")
APPS = ("ems", "sms")
RESULTS: list[tuple[str, dict]] = []   # (fault, {promise: kept}) for the summary table


class Cutter:
    """A TCP proxy on 127.0.0.1 in front of a host's sshd whose connections can be cut at once, as a dropped
    Wi-Fi or a VPN going down would (the VPS sees its SSH channel close mid-program)."""

    def __init__(self, target: tuple[str, int], listen: tuple[str, int] = ("127.0.0.1", 0), delay: float = 0.0):
        self.target, self.delay, self.socks, self.lock = target, delay, [], threading.Lock()
        self.server = socket.create_server(listen)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while data := src.recv(65536):
                time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        with self.lock:
            for s in self.socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self.socks.clear()

    def close(self):
        self.cut()
        self.server.close()


# -- what must hold after every fault -------------------------------------------------------------------------
def env_lines(vps) -> dict:
    """Each app's .env without its IMAGE_TAG line (what the operator wrote there must survive)."""
    return {app: [ln for ln in (vps.host.root / system.SYSTEM / f"repo/servers/{app}/container/.env").read_text()
                  .splitlines() if not ln.startswith("IMAGE_TAG=")] for app in APPS}


def wait_unlocked(vps, timeout: float = 180) -> bool:
    """The program on the VPS goes on after the operator's side is gone: wait until it has released the lock."""
    deadline = time.monotonic() + timeout
    while (vps.state / "lock").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return not (vps.state / "lock").exists()


def promises(vps, env_before: dict, allowed: set[str]) -> dict:
    """Check every promise; a dict of promise -> kept (asserted by the caller, tabled by the summary)."""
    kept = {"no lock left": wait_unlocked(vps)}
    version = vps.version()
    kept["healthy after"] = version in allowed and vps.host.http(8080, "/health") is not None
    lines = (vps.state / "releases.jsonl").read_text().splitlines()
    try:
        [json.loads(line) for line in lines]
        releases = vps.fab("releases", "--host", "t1", "--json")
        running = next(r for r in json.loads(releases.stdout)[system.SYSTEM] if r["running"])
        kept["history intact"] = releases.returncode == 0
    except (ValueError, StopIteration):
        kept["history intact"], running = False, None
    pins = {app: PIN.search((vps.host.root / system.SYSTEM / f"repo/servers/{app}/container/.env").read_text())
            for app in APPS}
    kept["nothing lost"] = (env_lines(vps) == env_before and all(pins.values()) and running is not None
                            and running["tag"] == version
                            and all(running["images"][a].split("@")[0] == pins[a].group(1) for a in APPS))
    token = vps.token
    kept["token nowhere"] = not any(token in p.read_text(errors="replace") for p in vps.state.rglob("*") if p.is_file())
    return kept


def check(fault: str, vps, env_before: dict, allowed: set[str]) -> None:
    kept = promises(vps, env_before, allowed)
    RESULTS.append((fault, kept))
    assert all(kept.values()), f"{fault}: {kept}"


@pytest.fixture
def live(vps):
    """A VPS running v1.4.2 (the previous good release every fault may fall back to)."""
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    return vps


def run_until(vps, args: list[str], marker: str, env: dict | None = None) -> subprocess.Popen:
    """Start fab and return once a line containing ``marker`` was printed (a step has finished)."""
    p = subprocess.Popen([FAB, *args], cwd=REPO, env=vps.env(env), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in p.stdout:
        if marker in line:
            return p
    raise AssertionError(f"fab ended before {marker!r}: exit {p.wait()}")


# -- the faults -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("phase, marker", [("pull", "(token from the secrets file)"),
                                           ("up", "infra: docker compose up")])
def test_ssh_cut_mid_deploy(live, tmp_path, phase, marker):
    vps, before = live, env_lines(live)
    cutter, direct = Cutter((vps.host.address, 22)), vps.inventory.read_text()
    try:
        key = (vps.host.dir / "ssh_host_ed25519_key.pub").read_text().split()
        (tmp_path / "kh").write_text(f"[127.0.0.1]:{cutter.port} {key[0]} {key[1]}\n")
        inv = yaml.safe_load(direct)
        inv["hosts"]["t1"].update(address="127.0.0.1", port=cutter.port, known_hosts=str(tmp_path / "kh"))
        vps.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
        p = run_until(vps, ["deploy", "--host", "t1", "--tag", "v1.4.3"], marker)
        cutter.cut()
        out = p.stdout.read()
        assert p.wait(timeout=60) == errors.UNREACHABLE, out
        assert "the host finishes it on its own" in out
    finally:
        cutter.close()
        vps.inventory.write_text(direct)
    check(f"SSH cut mid-{phase}", vps, before, {"v1.4.3"})  # the VPS finished the deploy on its own
    assert (vps.state / "releases.jsonl").read_text().count('"state":"good"') == 2


@pytest.mark.parametrize("phase, tag, marker, allowed", [
    ("lock", "v1.4.3", "taking the deploy lock", {"v1.4.3"}),
    ("pull", "v1.4.3", "(token from the secrets file)", {"v1.4.3"}),
    ("up", "v1.4.3", "postgres: docker compose up", {"v1.4.3"}),
    ("restore", "v1.5.0", "failed its health gate", {"v1.4.2"}),
])
def test_fab_killed_mid_deploy(live, phase, tag, marker, allowed):
    vps, before = live, env_lines(live)
    p = run_until(vps, ["deploy", "--host", "t1", "--tag", tag], marker)
    p.send_signal(signal.SIGKILL)
    p.wait()
    check(f"fab SIGKILLed at {phase}", vps, before, allowed)


def kill_remote_program(vps) -> None:
    """kill -9 of the program on the host, every process of it at once (its subshells too: an OOM killer or
    an operator's `kill -9 -PGID` leaves none behind), without its trap ever running."""
    pid = remote_program_pid(vps)
    assert pid, "the program should still be running on the host"
    os.killpg(os.getpgid(pid), signal.SIGKILL)


@pytest.mark.parametrize("fault", ["remote program killed", "host reboot"])
def test_a_deploy_that_dies_on_the_host_is_finished_by_the_next_one(live, fault):
    """Issue 20 item 14: the program on the host dies mid-up (kill -9, an OOM kill; or the host reboots): its
    lock stays, its release stays `deploying`, its stacks may run it unverified. `fab status` says so; the next
    deploy takes the lock over, brings those stacks up, and records the dead release interrupted."""
    vps, before = live, env_lines(live)
    p = run_until(vps, ["deploy", "--host", "t1", "--tag", "v1.4.3"], "postgres: docker compose up")
    if fault == "host reboot":
        vps.host.reboot()
    else:
        kill_remote_program(vps)
    p.communicate(timeout=120)
    dead = json.loads((vps.state / "releases.jsonl").read_text().splitlines()[-1])
    assert dead["state"] == "deploying" and (vps.state / "lock").exists()
    status = vps.ok("status", "--host", "t1").stdout
    assert "interrupted:" in status and "the next deploy or rollback of them finishes it" in status, status
    res = vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    assert "interrupted:" in res.stdout + res.stderr
    states = [(r["release"], r["state"]) for r in vps.releases()]
    assert (dead["release"], "interrupted") in states and states[0][1] == "good", states
    check(f"{fault} mid-up, then the next deploy", vps, before, {"v1.4.3"})


def test_a_rollout_killed_on_the_host_is_finished_by_the_next_deploy(sandbox, tmp_path):
    """Issue 20 item 14, start-first: the program dies once the new EMS container runs beside the old one, so
    both serve users and nothing will change that by itself. The next deploy takes the lock over and ends it:
    one container, the new release, no request failed through the real Traefik meanwhile."""
    vps = Vps(sandbox, *examples.ems(sandbox, tmp_path))   # (the example ships rollout: start-first)
    vps.ok("setup", "--host", "t1")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    ems_ids = ("ps", "-q", "--filter", "label=com.docker.compose.service=ems")
    p = vps.spawn("deploy", "--host", "t1", "--tag", "ems=v1.4.3")
    deadline = time.monotonic() + 120
    while len(vps.host.docker(*ems_ids).stdout.split()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    kill_remote_program(vps)
    p.communicate(timeout=120)
    assert len(vps.host.docker(*ems_ids).stdout.split()) == 2, "old and new both serve: the story is not over"
    status = vps.ok("status", "--host", "t1").stdout
    assert "interrupted:" in status, status
    with Load(vps.host, f"{examples.EMS_URL}/version", rate=60, workers=4) as load:
        res = vps.fab("deploy", "--host", "t1", "--tag", "ems=v1.4.3")
    states = [r["state"] for r in vps.releases()]
    kept = {"healthy after": res.returncode == 0 and vps.host.get(f"{examples.EMS_URL}/version") == "v1.4.3"
            and len(vps.host.docker(*ems_ids).stdout.split()) == 1,
            "history intact": states[:2] == ["good", "interrupted"],
            "nothing lost": load.failed == 0 and len(load.results) > 20,
            "no lock left": wait_unlocked(vps),
            "token nowhere": not any(vps.token in f.read_text(errors="replace")
                                     for f in vps.state.rglob("*") if f.is_file())}
    RESULTS.append(("remote program killed mid-rollout, then the next deploy", kept))
    assert all(kept.values()), (kept, states, load.summary(), res.stdout + res.stderr)


class Failing(http.server.BaseHTTPRequestHandler):
    """A registry that answers 500 to everything (over TLS, with the registry's own certificate)."""

    def do_GET(self):
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_POST = do_PUT = do_GET

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def registry_replaced_by(sb, mode: str):
    """The real registry stopped; in its place, on its address: a 500 for everything (``500``), or a TCP proxy
    delaying every chunk by 0.2 s in front of the real registry moved to the next port (``slow``)."""
    sb.registry.stop()
    deadline = time.monotonic() + 20
    while proc.port_open(registry.ADDRESS, registry.PORT) and time.monotonic() < deadline:
        time.sleep(0.1)  # the stopped registry may hold its port a moment longer
    servers, real = [], None
    try:
        if mode == "500":
            httpd = http.server.ThreadingHTTPServer((registry.ADDRESS, registry.PORT), Failing)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(sb.registry.dir / "server.crt", sb.registry.dir / "server.key")
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
            servers.append(httpd)
            threading.Thread(target=httpd.serve_forever, daemon=True).start()
        else:
            config = sb.registry.dir / "config-slow.yml"
            config.write_text((sb.registry.dir / "config.yml").read_text().replace(
                registry.SERVER, f"{registry.ADDRESS}:{registry.PORT + 1}"))
            real = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            proc.wait_for("slow registry", lambda: proc.port_open(registry.ADDRESS, registry.PORT + 1), 20,
                          sb.registry.log)
            servers.append(Cutter((registry.ADDRESS, registry.PORT + 1), listen=(registry.ADDRESS, registry.PORT),
                                  delay=0.2))
        yield
    finally:
        for s in servers:
            s.shutdown() if isinstance(s, http.server.HTTPServer) else s.close()
            if isinstance(s, http.server.HTTPServer):
                s.server_close()
        if real:
            real.terminate()
            real.wait()
        sb.registry.start()


@pytest.mark.parametrize("mode, code, allowed", [("500", errors.REMOTE_FAILED, {"v1.4.2"}), ("slow", 0, {"v1.4.3"})])
def test_registry_failing_or_slow(live, mode, code, allowed):
    vps, before = live, env_lines(live)
    with registry_replaced_by(vps.sb, mode):
        res = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3")
    assert res.returncode == code, res.stdout + res.stderr
    check(f"registry {'answering 500' if mode == '500' else 'slow (0.2 s per chunk)'}", vps, before, allowed)


def test_registry_down(live):
    vps, before = live, env_lines(live)
    vps.sb.registry.stop()
    try:
        res = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3")
        assert res.returncode in (errors.REMOTE_FAILED,), res.stdout + res.stderr
    finally:
        vps.sb.registry.start()
    check("registry down", vps, before, {"v1.4.2"})


def fill(vps, folder: str, free_kb: int) -> None:
    """A small tmpfs on ``folder`` of the host (its content copied in), filled up to ``free_kb`` free."""
    vps.host.inside(f"set -e; cd '{folder}'; tmp=$(mktemp -d); cp -a . \"$tmp\"; mount -t tmpfs -o size=512k tmpfs .;"
                    f"cd '{folder}'; cp -a \"$tmp\"/. .; rm -rf \"$tmp\";"
                    f"dd if=/dev/zero of=.filler bs=1k count=4096 2>/dev/null || true;"
                    f"truncate -s -{free_kb}k .filler || rm -f .filler")


def unfill(vps, folder: str) -> None:
    vps.host.inside(f"set -e; tmp=$(mktemp -d); cp -a '{folder}'/. \"$tmp\"; rm -f \"$tmp\"/.filler;"
                    f"umount '{folder}'; rm -rf '{folder}'/*; cp -a \"$tmp\"/. '{folder}'/; rm -rf \"$tmp\"")


@pytest.mark.parametrize("where, free_kb, code, allowed", [
    ("state", 0, errors.FAILED, {"v1.4.2"}),                  # the lock cannot be written
    ("state", 8, errors.FAILED, {"v1.4.2"}),                  # the lock can, the history cannot
    ("repo/servers/ems/container", 0, errors.ROLLED_BACK, {"v1.4.2"}),   # ems's .env cannot be pinned
])
def test_disk_full(live, where, free_kb, code, allowed):
    vps, before = live, env_lines(live)
    history = (vps.state / "releases.jsonl").read_text()
    if where == "state":  # a history big enough that rewriting it needs more room than is left
        rel = json.loads(history.splitlines()[-1])
        old = "\n".join(json.dumps({**rel, "release": f"old{i}"}) for i in range(300)) + "\n"
        (vps.state / "releases.jsonl").write_text(old + history)
        history = old + history
    folder = f"/root/{system.SYSTEM}/{where}"
    fill(vps, folder, free_kb)
    try:
        res = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3")
        inside = vps.host.inside(f"cat {folder}/releases.jsonl 2>/dev/null || true").stdout
    finally:
        unfill(vps, folder)
    assert res.returncode == code, res.stdout + res.stderr
    if where == "state":
        assert inside == history, "a failed write must leave the history exactly as it was"
        assert "disk full" in res.stderr
    check(f"disk full: {where} ({free_kb} KB free)", vps, before, allowed)


def test_dockerd_down_during_a_deploy(live):
    """The daemon crashed: the deploy changes nothing, and once dockerd is back the release runs again."""
    vps, before = live, env_lines(live)
    proc.stop(vps.host.dir / "dockerd.pid", timeout=30)
    try:
        res = vps.fab("deploy", "--host", "t1", "--tag", "v1.4.3")
        assert res.returncode == errors.REMOTE_FAILED, res.stdout + res.stderr
    finally:
        vps.host.start()
    wait_for_version(vps)
    check("dockerd down during a deploy", vps, before, {"v1.4.2"})


def test_dockerd_restarted_mid_up(live):
    """dockerd restarts while the stacks come up: the deploy ends good or rolled back, and once dockerd is back
    (restart: unless-stopped) a release runs that matches its pins and the history."""
    vps, before = live, env_lines(live)
    p = run_until(vps, ["deploy", "--host", "t1", "--tag", "v1.4.3"], "infra: docker compose up")
    proc.stop(vps.host.dir / "dockerd.pid", timeout=30)
    vps.host.start()
    out = p.stdout.read()
    assert p.wait(timeout=300) in (0, errors.ROLLED_BACK), out
    wait_for_version(vps)
    check("dockerd restarted mid-up", vps, before, {"v1.4.2", "v1.4.3"})


def wait_for_version(vps, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while vps.version() is None and time.monotonic() < deadline:
        time.sleep(0.5)


def test_host_reboot_after_deploy(live):
    vps, before = live, env_lines(live)
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    vps.host.stop()
    vps.host.start()
    wait_for_version(vps)
    check("host reboot after deploy", vps, before, {"v1.4.3"})


@pytest.mark.parametrize("n", [2, 10])
def test_concurrent_deploys(live, n):
    vps, before = live, env_lines(live)
    runs = [vps.spawn("deploy", "--host", "t1", "--tag", "v1.4.3", env={"FAB_OPERATOR": f"op{i}@ci"})
            for i in range(n)]
    outs = [(p.communicate(timeout=300)[0], p.returncode) for p in runs]
    codes = sorted(code for _, code in outs)
    assert codes.count(0) >= 1 and set(codes) <= {0, errors.BUSY}, outs
    for out, code in outs:
        if code == errors.BUSY:
            assert re.search(r"holds the lock of ems_system: op\d+@ci since", out), out
    check(f"{n} concurrent deploys", vps, before, {"v1.4.3"})


def summary_table() -> list[str]:
    """The figures: one row per fault, yes/no for each promise (every row must be all-yes)."""
    cols = ["healthy after", "history intact", "nothing lost", "no lock left", "token nowhere"]
    rows = {}
    for fault, kept in RESULTS:
        runs, ok = rows.get(fault, (0, {c: 0 for c in cols}))
        rows[fault] = (runs + 1, {c: ok[c] + bool(kept.get(c)) for c in cols})
    width = max([len(f) for f in rows] + [5])
    out = [f"{'fault':<{width}}  runs  " + "  ".join(cols)]
    for fault, (runs, ok) in rows.items():
        out.append(f"{fault:<{width}}  {runs:>4}  " + "  ".join(
            f"{'yes' if ok[c] == runs else 'NO':>{len(c)}}" for c in cols))
    return out



def new_containers_started(vps) -> bool:
    return any(n.startswith("ems_system-") for n in vps.host.docker("ps", "--format", "{{.Names}}").stdout.split())


@pytest.mark.parametrize("phase", ["copy", "switch"])
def test_migration_killed_and_resumed(old_vps, phase):
    """The program on the host dies (a crash, a reboot) in the middle of copying, or once the old stacks are
    down and the new ones starting: the next migrate-layout takes over and finishes, nothing lost."""
    vps = old_vps
    uploads, vol = tree(old(vps, "uploads")), volume(vps)
    copying = [new(vps, f"ems_system/{rel}.migrating") for rel in ("repo", "data/uploads")]
    reached = {"copy": lambda: any(p.exists() for p in copying),   # uploads' 2000 files: a wide window
               "switch": lambda: new_containers_started(vps)}[phase]
    p = vps.spawn("migrate-layout", "--host", "t1", "--yes")
    deadline = time.monotonic() + 120
    while not reached() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reached(), f"the migration never reached its {phase}"
    pid = remote_program_pid(vps)   # (on a loaded machine the copy may end meanwhile: still mid-migration)
    assert pid, "the migration should still be running"
    os.kill(pid, signal.SIGKILL)
    p.communicate(timeout=60)
    res = vps.fab("migrate-layout", "--host", "t1", "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    kept = {"healthy after": vps.version() == "v1.4.2" and vps.host.http(8080, "/health") is not None,
            "history intact": vps.fab("releases", "--host", "t1", "--json").returncode == 0,
            "nothing lost": tree(new(vps, "ems_system/data/uploads")) == uploads and volume(vps) == vol
            and tree(old(vps, "uploads")) == uploads,
            "no lock left": wait_unlocked(vps),
            "token nowhere": not any(vps.token in f.read_text(errors="replace")
                                     for f in vps.state.rglob("*") if f.is_file())}
    RESULTS.append((f"migration killed at {phase}", kept))
    assert all(kept.values()), kept
