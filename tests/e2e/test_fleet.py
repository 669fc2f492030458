"""End-to-end (real tier): deploys over several sandbox hosts (t1, t2, t3: each its own namespaces, dockerd and
sshd) as one transaction: a rolling deploy where host 2 of 3 fails its gate, a lock held on one host, the JSON
event stream, Fabric's -H naming hosts of hosts.yml, and seed 002 spread over four hosts that route to each
other (PostgreSQL on one, a backend on three, nginx on one)."""
from __future__ import annotations

import json
import shutil

import pytest
import yaml

from sandbox import proc, registry, system
from tasks.core import errors

from .conftest import REPO, Vps, clean_vps

EXAMPLES = REPO / "examples"

pytestmark = pytest.mark.e2e

NAMES = ("t1", "t2", "t3")

# t2's ems refuses v1.4.3 in its own Docker healthcheck (the image and the inventory are the same everywhere):
# a release that fails its gate on one host of three, while the release before it stays healthy there.
PICKY_HEALTH = ('test: ["CMD", "/bin/busybox", "sh", "-c", "! /bin/busybox grep -q v1.4.3 /www/version && '
                '/bin/busybox wget -q -O /dev/null http://127.0.0.1:8080/health"]')


@pytest.fixture(scope="module")
def fleet_hosts(sandbox):
    started = [n for n in NAMES[1:] if not proc.read_pid(sandbox.host(n).dir / "sshd.pid")]
    sandbox.up(list(NAMES))
    yield NAMES
    for name in started:
        sandbox.host(name).stop()


@pytest.fixture
def fleet(sandbox, fleet_hosts, tmp_path):
    """Three clean EMS hosts in one inventory, as group web; v1.4.2 deployed on each."""
    vpss = [clean_vps(sandbox, name, tmp_path / f"{name}.yml") for name in fleet_hosts]
    inv = yaml.safe_load(vpss[0].inventory.read_text())
    inv["hosts"] = {name: e for v in vpss for name, e in yaml.safe_load(v.inventory.read_text())["hosts"].items()}
    inv["groups"] = {"web": list(fleet_hosts)}
    for v in vpss:
        v.inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
    vpss[0].ok("deploy", "--group", "web", "--tag", "v1.4.2")
    return vpss


def _rows(out: str) -> dict[str, str]:
    return {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 4}


def test_every_host_switched_then_one_failing_reverts_the_switched_and_leaves_the_rest(fleet):
    t1, t2, t3 = fleet
    assert [v.version() for v in fleet] == ["v1.4.2"] * 3
    assert {v.running()["release"] for v in fleet} == {fleet[0].running()["release"]}   # one fleet release id
    compose = t2.host.root / "ems_system/repo/servers/ems/container/docker-compose.prod.yml"
    text = compose.read_text()
    compose.write_text(text.replace(text[text.index("test:"):text.index("\n", text.index("test:"))], PICKY_HEALTH))

    res = t1.fab("deploy", "--group", "web", "--tag", "v1.4.3", "--batch", "1")
    assert res.returncode == errors.ROLLED_BACK, res.stdout + res.stderr
    rows = _rows(res.stdout)
    assert "reverted" in rows["t1"] and "failed" in rows["t2"] and "untouched" in rows["t3"], res.stdout
    assert "1 reverted" in res.stderr and "1 failed" in res.stderr and "1 untouched" in res.stderr
    assert [v.version() for v in fleet] == ["v1.4.2"] * 3
    assert [(r["action"], r["state"]) for r in t1.releases()][:2] == [("rollback", "good"), ("deploy", "reverted")]
    again = t1.fab("rollback", "--host", "t1")   # the reverted v1.4.3 is no step back: v1.4.2 runs already
    assert again.returncode == errors.BAD_INPUT and "t1/ems_system: there is no earlier good release" in again.stderr
    assert [r["tag"] for r in t3.releases()] == ["v1.4.2"]      # never touched
    assert not any((v.state / "lock").exists() for v in fleet)  # every lock of the run released


def test_a_lock_held_on_one_host_changes_nothing_anywhere(fleet):
    t1, t2, t3 = fleet
    (t3.state / "lock").mkdir()
    (t3.state / "lock" / "info").write_text("ana@laptop since 2026-11-26T10:00:00Z (deploy v9, release x, pid 1)\n")
    before = [v.snapshot() for v in (t1, t2)]
    res = t1.fab("deploy", "--group", "web", "--tag", "v1.4.3")
    assert res.returncode == errors.BUSY, res.stdout + res.stderr
    assert "ana@laptop" in res.stderr and "nothing was changed on any host" in res.stderr
    assert [v.snapshot() for v in (t1, t2)] == before
    assert (t3.state / "lock" / "info").read_text().startswith("ana@laptop")
    assert [v.version() for v in fleet] == ["v1.4.2"] * 3


def test_json_events_and_fabric_hosts_flag(fleet):
    t1, t2, t3 = fleet
    res = t1.fab("-H", "t1,t3", "deploy", "--tag", "v1.4.3", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "plan" and kinds[-1] == "result"
    assert events[0]["stages"] == [["t1/ems_system", "t3/ems_system"]]
    assert {(e["host"], e["state"]) for e in events if e["event"] == "step" and e["step"] == "pull"} >= \
        {("t1", "ok"), ("t3", "ok")}
    assert events[-1]["exit"] == 0 and {h["result"] for h in events[-1]["hosts"]} == {"switched"}
    assert [v.version() for v in fleet] == ["v1.4.3", "v1.4.2", "v1.4.3"]
    unknown = t1.fab("-H", "t1,nosuch", "status")
    assert unknown.returncode == errors.BAD_INPUT and "unknown host 'nosuch'" in unknown.stderr


# -- seed 002 over servers: PostgreSQL on one host, a backend on three, nginx on one ---------------------------
SERVERS = ("t1", "t2", "t3", "t4")   # en1-en3: the app group (en1 also nginx); en4: PostgreSQL


@pytest.fixture
def five_servers(sandbox, fleet_hosts, tmp_path):
    """examples/enlevohub/five-servers.yml on four sandbox hosts that route to each other: each host gets the
    repo and the .env files its stacks need (the database's address, the backends' addresses in nginx.conf)."""
    started = [] if proc.read_pid(sandbox.host("t4").dir / "sshd.pid") else ["t4"]
    hosts = sandbox.up(list(SERVERS))
    by_name = dict(zip(("en1", "en2", "en3", "en4"), hosts, strict=True))
    env = {"db": {"DB_PASSWORD": "pg-pw-2026"}, "frontend": {"APP_PORT": "80"},
           "backend": {"DB_HOST": by_name["en4"].address, "DB_PASSWORD": "pg-pw-2026", "JWT_SECRET": "jwt-2026",
                       "REGISTRY": registry.SERVER}}
    inv = yaml.safe_load((EXAMPLES / "enlevohub" / "five-servers.yml").read_text())
    inv["registry"] = {"server": registry.SERVER, "username": registry.USERNAME}
    for name, host in by_name.items():
        host.route_to_others()
        host.reset()
        base = host.root / "enlevohub"
        shutil.copytree(EXAMPLES / "enlevohub" / "repo", base / "repo")
        for role, values in env.items():
            (base / "repo/servers" / role / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        conf = base / "repo/servers/frontend/nginx.conf"
        for i in (1, 2, 3):
            conf.write_text(conf.read_text().replace(f"10.0.0.{i}:", f"{by_name[f'en{i}'].address}:"))
        system.write_token(host.root, sandbox.registry.token)
        shutil.move(str(host.root / system.SYSTEM / ".secrets"), str(base / ".secrets"))
        inv["hosts"][name] = {**sandbox.inventory_entry(host), "systems": ["enlevohub"]}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    yield Vps(sandbox, by_name["en1"], path), by_name
    for name in started:
        sandbox.host(name).stop()


def reaches(host, address: str, port: int) -> bool:
    """A TCP connection from the backend container on ``host`` to ``address:port`` opens."""
    return host.inside(f"docker exec enlevohub-backend-backend-1 /bin/busybox nc -w 2 {address} {port} </dev/null",
                       check=False).returncode == 0


def test_seed_002_over_four_servers_database_first_then_the_backends_then_nginx(five_servers):
    vps, hosts = five_servers
    res = vps.fab("deploy", "--all", "--tag", "v1.4.2", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert events[0]["stages"] == [["en4/enlevohub"], ["en1/enlevohub", "en2/enlevohub", "en3/enlevohub"]]
    db_done = next(i for i, e in enumerate(events) if e["event"] == "host" and e["host"] == "en4")
    first_app = next(i for i, e in enumerate(events) if e["event"] == "step" and e["host"] != "en4")
    assert db_done < first_app, "the database host is live before any backend host starts"
    ups = [e["text"] for e in events if e["event"] == "step" and e["state"] == "ok" and e["step"] == "up"]
    assert sorted(ups)[0].startswith("backend") and any(u.startswith("frontend") for u in ups)
    en1 = hosts["en1"]
    assert en1.http(80, "/api/version") == "v1.4.2"   # nginx on server 1 -> a backend on server 1, 2 or 3
    for name in ("en1", "en2", "en3"):   # every backend reaches PostgreSQL on server 4 (and nothing else there)
        assert reaches(hosts[name], hosts["en4"].address, 5432) and not reaches(hosts[name], hosts["en4"].address, 5433)
    assert "enlevohub-frontend" not in hosts["en2"].docker("ps", "--format", "{{.Names}}").stdout

    res = vps.fab("deploy", "--group", "app", "--tag", "v1.4.3", "--batch", "1")   # rolling, backends only
    assert res.returncode == 0, res.stdout + res.stderr
    assert [hosts[n].http(3001, "/version") for n in ("en1", "en2", "en3")] == ["v1.4.3"] * 3
    assert en1.http(80, "/api/version") == "v1.4.3"
    db = json.loads(vps.ok("releases", "--host", "en4", "--json").stdout)["enlevohub"]
    assert [r["tag"] for r in db] == ["config"], "the database host was not part of the app group's deploy"
    only = vps.fab("deploy", "--all", "--stack", "frontend", "--json")
    assert only.returncode == 0, only.stdout + only.stderr
    assert json.loads(only.stdout.splitlines()[0])["stages"] == [["en1/enlevohub"]]
    en1_now = json.loads(vps.ok("releases", "--host", "en1", "--json").stdout)["enlevohub"][0]
    assert en1_now["tag"] == "v1.4.3" and en1_now["images"]["backend"].startswith("v1.4.3@"), "what runs on en1"

    # issue 18 item 3: the database host's releases are all `config`; it goes back to its release of v1.4.2's run
    back = vps.fab("rollback", "--all", "--to", "v1.4.2")
    assert back.returncode == 0, back.stdout + back.stderr
    assert [hosts[n].http(3001, "/version") for n in ("en1", "en2", "en3")] == ["v1.4.2"] * 3
    first = json.loads(vps.ok("releases", "--host", "en2", "--json").stdout)["enlevohub"][-1]["release"]
    assert f"en4/enlevohub: back to release {first} (config" in back.stdout
