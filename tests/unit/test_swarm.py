"""swarm: in hosts.yml and `fab swarm`'s arguments: the cluster built from hosts and groups, and every hostile
value refused with the file's line (or before anything connects), exit 2. Unit tier: no SSH."""
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.core import cli, grammar, inventory
from tasks.core.errors import ToolError
from tasks.core.programs.envfiles import settable
from tasks.envfiles import writable

FAB = Path(sys.executable).parent / "fab"
HEAD = "registry: {server: ghcr.io, username: edumigsoft}\nsystems:\n  s: {stacks: {app: {compose: c.yml}}}\n"
NODES = ("hosts:\n  n1: {address: 10.0.0.1, systems: [s], labels: {db: 'true'}}\n"
         "  n2: {address: 10.0.0.2, systems: [s]}\n  n3: {address: 10.0.0.3, systems: [s]}\n"
         "  w1: {address: 10.0.0.4, systems: []}\ngroups:\n  core: [n2, n3]\n")


def write(tmp_path, swarm: str, nodes: str = NODES) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(HEAD + swarm + nodes)
    return path


def error_of(path) -> str:
    with pytest.raises(ToolError) as e:
        inventory.load(path)
    assert e.value.code == 2
    return str(e.value)


def test_the_swarm_of_hosts_and_groups(tmp_path):
    inv = inventory.load(write(tmp_path, "swarm: {managers: [n1, core], workers: w1}\n"))
    assert inv.swarm.managers == ("n1", "n2", "n3") and inv.swarm.workers == ("w1",)
    assert inv.swarm.quorum == 2 and inv.swarm.role("w1") == "worker" and inv.swarm.role("x") is None
    assert inv.hosts["n1"].labels == (("db", "true"),) and inv.hosts["w1"].systems == ()
    assert inv.hosts["n1"].node_address == "10.0.0.1"


@pytest.mark.parametrize("swarm, nodes, line, message", [
    ("swarm: {managers: []}\n", NODES, 4, "a swarm needs at least one manager"),
    ("swarm: {managers: [n1, nx]}\n", NODES, 4, "swarm managers lists 'nx', which is neither a host nor a group"),
    ("swarm: {managers: [n1], workers: [core, n1]}\n", NODES, 4, "n1 cannot be both a manager and a worker"),
    ("swarm: {managers: n1, workers: ['../x']}\n", NODES, 4, "must be a host or group name"),
    ("swarm: {managers: [n1], leader: n1}\n", NODES, 4, "unknown key 'leader'"),
    ("swarm: {managers: [n1]}\n", NODES.replace("10.0.0.1,", "n1.example.com,"), 6,
     "Swarm node whose address 'n1.example.com' is a name: give swarm_address:"),
    ("swarm: {managers: [n1]}\n", NODES.replace("10.0.0.1,", "10.0.0.1, swarm_address: 10.0.0.300,"), 6,
     "is not an IP address"),
    ("swarm: {managers: [n1]}\n", NODES.replace("10.0.0.1,", "10.0.0.1, swarm_address: 5,"), 6,
     "is not an IP address"),
    ("swarm: {managers: [n1]}\n", NODES.replace("{db: 'true'}", "{fab.host: n9}"), 6, "not a node label name"),
    ("swarm: {managers: [n1]}\n", NODES.replace("{db: 'true'}", "{DB: x}"), 6, "not a node label name"),
    ("swarm: {managers: [n1]}\n", NODES.replace("{db: 'true'}", "{'-x': y}"), 6, "not a node label name"),
    ("swarm: {managers: [n1]}\n", NODES.replace("{db: 'true'}", "{db: \"a\\nb\"}"), 6, "on one line"),
    ("swarm: {managers: [n1]}\n", NODES.replace("{db: 'true'}", "{db: 1}"), 6, "must be a"),
    ("swarm: {managers: [n1]}\n", NODES, 9, "host 'w1' runs no system"),
    ("", NODES, 5, "host 'n1' has node labels but is not in swarm:"),
])
def test_hostile_swarm_values_are_refused_with_their_line(tmp_path, swarm, nodes, line, message):
    text = error_of(write(tmp_path, swarm, nodes))
    assert f"hosts.yml:{line}:" in text and message in text, text


def test_join_tokens_are_masked_wherever_the_tool_prints():
    token = "SWMTKN-1-" + "4" * 50 + "-" + "x" * 25
    assert "SWMTKN" not in grammar.redact(f"docker swarm join --token {token} 10.0.0.1:2377")
    assert "SWMKEY" not in grammar.redact("unlock key: SWMKEY-1-" + "Ab+/" * 10)


@pytest.mark.parametrize("args, message", [
    (["swarm", "dance"], "say one of init, status, drain, activate"),
    (["swarm", "drain"], "needs --host NAME"),
    (["swarm", "drain", "--host", "nope"], "unknown host 'nope'"),
    (["swarm", "activate", "--host", "solo"], "is not a node of the swarm"),
    (["swarm", "status", "--host", "n1"], "--host is for drain and activate"),
])
def test_fab_swarm_refuses_bad_arguments_before_connecting(tmp_path, args, message):
    # (192.0.2.0/24 is TEST-NET-1: nothing answers there, so a connection attempt would fail otherwise)
    nodes = NODES.replace("10.0.0.", "192.0.2.").replace("groups:", "  solo: {address: 192.0.2.9, systems: [s]}\ngroups:")
    res = fab(write(tmp_path, "swarm: {managers: [n1], workers: [w1]}\n", nodes), *args)
    assert res.returncode == 2 and message in res.stderr, res.stderr


def fab(path, *args):
    return subprocess.run([str(FAB), *args], env={"FAB_INVENTORY": str(path), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_an_inventory_without_a_swarm_says_so(tmp_path):
    nodes = NODES.replace(", labels: {db: 'true'}", "").replace("systems: []", "systems: [s]")
    res = fab(write(tmp_path, "", nodes), "swarm", "status")
    assert res.returncode == 2 and "has no swarm:" in res.stderr, res.stderr


SWARM_SYSTEM = "  s: {engine: swarm, stacks: {app: {compose: c.yml}}}\n"


@pytest.mark.parametrize("system, swarm, line, message", [
    (SWARM_SYSTEM, "", 3, "runs on a swarm (engine: swarm) but hosts.yml has no swarm:"),
    (SWARM_SYSTEM, "swarm: {managers: [n1], workers: [core]}\n", 7, "host 'n2' runs 's', a swarm system, but is "
                                                                    "not a manager"),
    ("  s: {engine: kubernetes, stacks: {app: {compose: c.yml}}}\n", "swarm: {managers: [n1, core]}\n", 3,
     "'compose' or 'swarm'"),
    ("  s: {engine: swarm, stacks: {app: {compose: c.yml, scale: {web: 3}}}}\n", "swarm: {managers: [n1, core]}\n",
     3, "scale: is the compose engine's: on a swarm the compose file says it with deploy.replicas"),
    ("  s: {engine: swarm, stacks: {app: {compose: c.yml, hosts: [n1]}}}\n", "swarm: {managers: [n1, core]}\n",
     3, "hosts: is the compose engine's"),
    ("  s: {engine: swarm, stacks: {app: {compose: c.yml, rollout: start-first}}}\n",
     "swarm: {managers: [n1, core]}\n", 3, "deploy.update_config"),
    ("  s: {engine: swarm, stacks: {b: {binary: {path: /opt/x/x, unit: x}}}}\n", "swarm: {managers: [n1, core]}\n",
     3, "a binary stack cannot run on a swarm"),
    ("  s: {engine: swarm, stacks: {app: {compose: c.yml, jobs: {m: {service: w, command: x}}}}}\n",
     "swarm: {managers: [n1, core]}\n", 3, "jobs: is the compose engine's: on a swarm the compose file says it with "
                                           "a service of deploy.mode: replicated-job"),
    *((f"  s: {{engine: swarm, stacks: {{app: {{compose: c.yml}}}}, backup: {{{key}}}}}\n",
       "swarm: {managers: [n1, core]}\n", 3, f"{key.split(':')[0]}: is not done on a swarm yet")
      for key in ("paths: [data]", "volumes: [pgdata]", "offsite: ['sftp:b@h:/r']", "before_deploy: true")),
])
def test_a_swarm_system_s_hostile_values_are_refused_with_their_line(tmp_path, system, swarm, line, message):
    path = tmp_path / "hosts.yml"
    path.write_text(HEAD.replace("  s: {stacks: {app: {compose: c.yml}}}\n", system) + swarm + NODES)
    error = error_of(path)
    assert f"hosts.yml:{line}" in error and message in error, error


def test_a_swarm_system_on_managers_is_built_with_its_engine(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text(HEAD.replace("  s: {stacks: {app: {compose: c.yml}}}\n", SWARM_SYSTEM)
                    + "swarm: {managers: [n1, core], workers: [w1]}\n" + NODES)
    inv = inventory.load(path)
    assert inv.systems["s"].engine == "swarm" and inv.hosts["n1"].systems[0].engine == "swarm"


def test_a_manager_of_a_swarm_system_cannot_log_out_of_its_registry(tmp_path):
    path = tmp_path / "hosts.yml"
    nodes = NODES.replace("n1: {address: 10.0.0.1,", "n1: {address: 10.0.0.1, registry: {logout: true},")
    path.write_text(HEAD.replace("  s: {stacks: {app: {compose: c.yml}}}\n", SWARM_SYSTEM)
                    + "swarm: {managers: [n1, core]}\n" + nodes)
    error = error_of(path)
    assert "hosts.yml:6" in error and "host 'n1' deploys a swarm system: its registry login is sent to the nodes" \
        in error, error


class Reachable:
    """A session that opens for every host but those named DOWN (the unit tier opens no SSH)."""
    DOWN: tuple[str, ...] = ()

    def __init__(self, host):
        if host.name in self.DOWN:
            raise ToolError(f"{host.name}: cannot reach {host.address}:22: connection refused", 7)
        self.host = host


@pytest.mark.parametrize("down, hosts, through", [((), None, "sw1"), (("sw1",), None, "sw2"),
                                                   (("sw1", "sw2"), None, "sw3"), (("sw3",), "sw3,sw2", "sw2"),
                                                   (("sw1", "sw2", "sw3"), None, "sw1")])
def test_a_swarm_system_is_acted_on_once_through_the_first_chosen_manager_that_answers(monkeypatch, capsys, down,
                                                                                        hosts, through):
    monkeypatch.setenv("FAB_INVENTORY", str(Path(__file__).parents[2] / "examples/enlevohub/swarm.yml"))
    monkeypatch.setattr(Reachable, "DOWN", down)
    monkeypatch.setattr(cli, "Session", Reachable)
    sel = cli.select(hosts, None, hosts is None, None, swarm_once=True)
    assert [t.label for t in sel.targets] == [f"{through}/enlevohub"]
    assert capsys.readouterr().err.count("trying another manager") == len(down)
    assert len(cli.select(hosts, None, hosts is None, None).targets) == (2 if hosts else 3), "other tasks: each host"


def test_a_dry_run_that_looks_at_no_host_chooses_the_first_manager_without_connecting(monkeypatch):
    monkeypatch.setenv("FAB_INVENTORY", str(Path(__file__).parents[2] / "examples/enlevohub/swarm.yml"))
    monkeypatch.setattr(Reachable, "DOWN", ("sw1", "sw2", "sw3"))
    monkeypatch.setattr(cli, "Session", Reachable)
    sel = cli.select("sw2,sw1", None, swarm_once=True, connect=False)
    assert [t.label for t in sel.targets] == ["sw2/enlevohub"] and sel.sessions == {}


def test_env_set_on_a_swarm_stack_writes_its_env_on_the_manager_a_value_on_one_line(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text(HEAD.replace("  s: {stacks: {app: {compose: c.yml}}}\n", SWARM_SYSTEM)
                    + "swarm: {managers: [n1, core], workers: [w1]}\n" + NODES)
    target = inventory.load(path).host("n1").targets()[0]
    app = target.system.stacks[0]
    assert settable(target, app, "DB_PASSWORD", 'one "line" $x') == 'DB_PASSWORD="one \\"line\\" \\$x"'
    with pytest.raises(ToolError) as e:
        settable(target, app, "DB_PASSWORD", "sp4ns\nl1nes")
    assert e.value.code == 2 and "docker stack cannot be given" in str(e.value) and "l1nes" not in str(e.value)


def test_env_set_writes_a_swarm_system_on_each_chosen_manager_and_one_other_system_on_one_host(tmp_path):
    path = tmp_path / "hosts.yml"
    other = "  c1: {address: 10.0.0.5, systems: [o]}\n  c2: {address: 10.0.0.6, systems: [o]}\ngroups:"
    path.write_text(HEAD.replace("  s: {stacks: {app: {compose: c.yml}}}\n", SWARM_SYSTEM + "  o: {stacks: {x: "
                                 "{compose: x.yml}}}\n") + "swarm: {managers: [n1, core], workers: [w1]}\n"
                    + NODES.replace("groups:", other))
    inv = inventory.load(path)
    managers = [t for h in ("n1", "n2") for t in inv.host(h).targets()]
    assert writable(cli.Selection(inv, managers)) == managers
    for many in ([t for h in ("c1", "c2") for t in inv.host(h).targets()], managers[:1] + inv.host("c1").targets()):
        with pytest.raises(ToolError) as e:
            writable(cli.Selection(inv, many))
        assert e.value.code == 2 and "one system's env file on one host" in str(e.value)
