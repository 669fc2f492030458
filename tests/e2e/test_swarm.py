"""End-to-end (real tier): `fab swarm` on three sandbox hosts (sw1, sw2, sw3: each its own namespaces, hostname,
dockerd and sshd, routed to each other): the swarm of hosts.yml made and joined with the join tokens never
printed, a second run that changes nothing, a role changed in hosts.yml, labels for placement, a node drained
and activated under a real service, a node in another swarm refused, and status through another manager
when the first is down."""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from sandbox import examples, proc, registry
from sandbox.load import Load
from tasks.core import errors

from .conftest import FAB, REPO

pytestmark = pytest.mark.e2e

NAMES = ("sw1", "sw2", "sw3")
WEB = f"{registry.HUB}/library/nginx:alpine"   # (the Docker Hub stand-in: every sandbox dockerd's mirror)


@pytest.fixture(scope="module")
def nodes(sandbox):
    """The three hosts, each out of any swarm; left out of it afterwards (stopped if they were not running)."""
    started = [n for n in NAMES if not proc.read_pid(sandbox.host(n).dir / "sshd.pid")]
    hosts = sandbox.up(list(NAMES))
    for host in hosts:
        host.route_to_others()
        leave(host)
    yield {h.name: h for h in hosts}
    for host in hosts:
        leave(host)
    for name in started:
        sandbox.host(name).stop()


@pytest.fixture(autouse=True)
def no_swarm(nodes):
    """Each test starts from three hosts in no swarm (a swarm left behind would count its dead members)."""
    for host in reversed(list(nodes.values())):
        leave(host)


def leave(host) -> None:
    host.inside("docker swarm leave --force >/dev/null 2>&1; true")


def inventory(sandbox, path, managers, workers=(), labels=None):
    inv = {"registry": {"server": registry.SERVER, "username": registry.USERNAME},
           "swarm": {"managers": list(managers), "workers": list(workers)}, "hosts": {}}
    for name in NAMES:
        inv["hosts"][name] = {**sandbox.inventory_entry(sandbox.host(name)), "systems": [],
                              **({"labels": labels[name]} if labels and name in labels else {})}
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return path


def fab(path, *args, code: int | None = 0, env: dict | None = None) -> subprocess.CompletedProcess:
    res = subprocess.run([FAB, *args], cwd=REPO, env=dict(os.environ, FAB_INVENTORY=str(path), COLUMNS="200", **(env or {})),
                         capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    if code is not None:
        assert res.returncode == code, f"fab {' '.join(args)}: {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def node_table(host) -> dict[str, tuple[str, str, dict]]:
    """What the swarm says of its nodes, seen from ``host``: inventory name -> (id, role, labels)."""
    ids = host.docker("node", "ls", "-q").stdout.split()
    out = {}
    for line in host.docker("node", "inspect", "--format", "{{json .}}", *ids).stdout.splitlines():
        n = json.loads(line)
        labels = dict(n["Spec"]["Labels"])
        out[labels.pop("fab.host", "?")] = (n["ID"], n["Spec"]["Role"], labels)
    return out


def test_init_makes_the_swarm_of_hosts_yml_without_showing_a_token_and_again_changes_only_what_differs(
        sandbox, nodes, tmp_path):
    path = inventory(sandbox, tmp_path / "hosts.yml", ["sw1", "sw2"], ["sw3"], {"sw1": {"db": "true"}})
    first = fab(path, "swarm", "init", code=errors.WARNING)   # (two managers: the quorum warning)
    assert "2 managers survive the loss of 0" in first.stderr
    made = node_table(nodes["sw1"])
    assert {n: role for n, (_, role, _) in made.items()} == {"sw1": "manager", "sw2": "manager", "sw3": "worker"}
    assert made["sw1"][2] == {"db": "true"} and made["sw2"][2] == {}
    for name in NAMES:
        assert nodes[name].inside("hostname").stdout.strip() == name   # (each node its own name)
    tokens = nodes["sw1"].inside("docker swarm join-token -q worker; docker swarm join-token -q manager").stdout.split()
    seen = first.stdout + first.stderr + "".join(nodes[n].commands_log.read_text() for n in NAMES)
    assert len(tokens) == 2 and not any(t in seen for t in tokens)
    assert tokens[0] in nodes["sw3"].stdin_log.read_text()   # (each travelled on the SSH channel's stdin)
    assert tokens[1] in nodes["sw2"].stdin_log.read_text()
    assert not any(t in nodes["sw1"].stdin_log.read_text() for t in tokens)   # (the pad did, not the tokens)

    path = inventory(sandbox, path, ["sw1", "sw2", "sw3"], [], {"sw1": {"db": "true"}, "sw3": {"zone": "b"}})
    again = fab(path, "swarm", "init")
    assert "joining" not in again.stdout
    now = node_table(nodes["sw1"])
    assert {n: node_id for n, (node_id, _, _) in now.items()} == {n: node_id for n, (node_id, _, _) in made.items()}
    assert now["sw3"][1:] == ("manager", {"zone": "b"})


def test_a_node_drained_hands_its_tasks_over_and_activate_takes_it_back(sandbox, nodes, tmp_path):
    path = inventory(sandbox, tmp_path / "hosts.yml", NAMES)
    fab(path, "swarm", "init")
    nodes["sw1"].docker("service", "create", "--quiet", "--detach=false", "--name", "web", "--replicas", "3",
                        "--endpoint-mode", "dnsrr", "--no-resolve-image", WEB)
    try:
        drained = fab(path, "swarm", "drain", "--host", "sw3")
        assert "sw3" in drained.stdout and "drain" in drained.stdout
        placed = nodes["sw1"].docker("service", "ps", "web", "--filter", "desired-state=running",
                                     "--format", "{{.Node}}").stdout.split()
        assert len(placed) == 3 and "sw3" not in placed
        status = fab(path, "swarm", "status", "--json")
        report = json.loads(status.stdout)
        assert {n["host"]: n["availability"] for n in report["nodes"]}["sw3"] == "drain"
        fab(path, "swarm", "activate", "--host", "sw3")
        assert node_table(nodes["sw1"])["sw3"][1] == "manager"
        assert nodes["sw1"].docker("node", "inspect", "--format", "{{.Spec.Availability}}",
                                   node_table(nodes["sw1"])["sw3"][0]).stdout.strip() == "active"
    finally:
        nodes["sw1"].docker("service", "rm", "web", check=False)


def test_a_node_in_another_swarm_is_refused_before_anything_changes(sandbox, nodes, tmp_path):
    path = inventory(sandbox, tmp_path / "hosts.yml", NAMES)
    fab(path, "swarm", "init")
    leave(nodes["sw3"])
    nodes["sw3"].inside(f"docker swarm init --advertise-addr {nodes['sw3'].address} >/dev/null")
    theirs = nodes["sw3"].inside("docker info --format '{{.Swarm.Cluster.ID}}'").stdout
    before = node_table(nodes["sw1"])
    res = fab(path, "swarm", "init", code=errors.BAD_INPUT)
    assert "different swarms" in res.stderr and "nothing was changed" in res.stderr
    assert nodes["sw3"].inside("docker info --format '{{.Swarm.Cluster.ID}}'").stdout == theirs
    assert node_table(nodes["sw1"]) == before


def test_status_answers_through_another_manager_when_the_first_is_down(sandbox, nodes, tmp_path):
    path = inventory(sandbox, tmp_path / "hosts.yml", NAMES)
    fab(path, "swarm", "init")
    nodes["sw1"].stop()
    try:
        res = fab(path, "swarm", "status", code=errors.WARNING)
        assert "node sw1 is down" in res.stderr or "manager sw1 is unreachable" in res.stderr, res.stderr
        assert "sw2" in res.stdout and "leader" in res.stdout
    finally:
        nodes["sw1"].start()
        nodes["sw1"].route_to_others()


def with_one_shots(sandbox) -> None:
    """Two one-shots added to the example's stack on each manager, on the backend's pinned image: ``seed``, a
    service the swarm does not restart (restart_policy condition none: its update is "paused" by the swarm
    when its task ends, even well) and ``migrate``, a job the swarm runs again at each deploy."""
    for name in NAMES:
        stack = sandbox.host(name).root / "enlevohub/repo/swarm/docker-stack.yml"
        spec = yaml.safe_load(stack.read_text())
        image = spec["services"]["backend"]["image"]
        spec["services"]["seed"] = {"image": image, "entrypoint": ["/bin/busybox", "sh", "-c", "cat /www/version"],
                                    "deploy": {"endpoint_mode": "dnsrr", "restart_policy": {"condition": "none"}}}
        spec["services"]["migrate"] = {"image": image, "entrypoint": ["/bin/busybox", "sh", "-c", "sleep 3"],
                                       "deploy": {"endpoint_mode": "dnsrr", "mode": "replicated-job"}}
        stack.write_text(yaml.safe_dump(spec, sort_keys=False))


def backend_tasks(host, down: str = "") -> list[tuple[str, str]]:
    """The running tasks of EnlevoHub's backend service: (image with its digest, node), sorted; none of node
    ``down`` (whose dockerd is gone: the manager's last word on its tasks is stale)."""
    out = host.docker("service", "ps", "--no-trunc", "--filter", "desired-state=running", "--format",
                      "{{.Image}} {{.Node}} {{.CurrentState}}", "enlevohub-app_backend").stdout
    return sorted((image, node) for image, node, state, *_ in (ln.split() for ln in out.splitlines())
                  if state == "Running" and node != down)


def test_a_swarm_stack_deploys_by_digest_and_a_failing_release_takes_the_whole_stack_back(sandbox, nodes, tmp_path):
    """EnlevoHub's example on the swarm (engine: swarm): PostgreSQL on the node labelled db, nginx on edge, three
    backend replicas over the nodes, deployed through sw1 with the images pinned by digest; v1.5.0, whose
    backends fail their healthcheck, is paused by the swarm and the tool puts every service back (exit 5) on the
    digests of the release before, recorded as failed in the history. With sw2 down, a deploy through
    --host sw2,sw1 goes through sw1; sw3, which never ran a deploy, reads the whole history from the swarm, and
    the backend's logs from the nodes its tasks run on."""
    path = examples.enlevohub_swarm(sandbox, tmp_path, NAMES)
    with_one_shots(sandbox)
    fab(path, "swarm", "init")
    fab(path, "deploy", "--host", "sw1", "--tag", "v1.4.2")
    planned = json.loads(fab(path, "deploy", "--host", "sw1", "--tag", "v1.4.3", "--plan", "--json").stdout)
    (backend,) = planned["sw1/enlevohub"]["apps"]
    assert backend["now"].startswith("v1.4.2@sha256:") and backend["after"].startswith("v1.4.3@sha256:"), planned
    assert planned["sw1/enlevohub"]["stacks"] == [{"stack": "app", "action": "up"}], planned
    # a value set in the stack's .env on each manager (each keeps its own) reaches the services at the next deploy
    odd = {"LEVEL": 'in"fo $HOME #x'}
    part = fab(path, "env-set", "--host", "sw1,sw2", "--stack", "app", "LOG_LEVEL", "--from-command", "printenv LEVEL",
               env=odd, code=errors.WARNING)
    assert "set it there too (--host sw3)" in part.stderr and part.stdout.count("LOG_LEVEL added in") == 2, part
    whole = fab(path, "env-set", "--host", "sw1,sw2,sw3", "--stack", "app", "LOG_LEVEL", "--from-command",
                "printenv LEVEL", env=odd)
    assert whole.stdout.count("LOG_LEVEL replaced in") == 2 and whole.stdout.count("LOG_LEVEL added in") == 1, whole
    brought = "ghp_" + secrets.token_hex(18)   # this deploy brings its token: the registry takes only it now, so
    sandbox.registry.set_password(registry.USERNAME, brought)   # the nodes pull with the login it sends them
    try:
        with Load(nodes["sw1"], "http://127.0.0.1/api/version", rate=60, workers=4) as load:
            fab(path, "deploy", "--host", "sw1", "--tag", "v1.4.3", "--token-env", "CI_TOKEN",
                env={"CI_TOKEN": brought})   # (start-first, one replica at a time)
    finally:
        sandbox.registry.set_password(registry.USERNAME, sandbox.registry.token)
    assert load.failed == 0 and len(load.results) > 20, f"good deploy: {load.summary()}"
    kept = [str(f) for n in NAMES for f in nodes[n].root.rglob("*") if f.is_file() and not f.is_symlink()
            and brought.encode() in f.read_bytes()]
    assert kept == [] and not list(Path("/dev/shm").glob("fab-vps-login.*")), kept
    for service in ("seed", "migrate"):   # (waited for: done before the deploy returned, on this release)
        ran = nodes["sw1"].docker("service", "ps", "--no-trunc", "--format", "{{.Image}} {{.CurrentState}}",
                                  f"enlevohub-app_{service}").stdout.splitlines()
        assert any(":v1.4.3@" in task and " Complete " in task for task in ran), (service, ran)
    good = backend_tasks(nodes["sw1"])
    assert len(good) == 3 and len({node for _, node in good}) >= 2, good
    assert all(":v1.4.3@sha256:" in image for image, _ in good), good
    digest = good[0][0].split("@")[1]
    assert backend["after"] == f"v1.4.3@{digest}", "the digest it pinned is the plan's"
    assert nodes["sw1"].http(80, "/api/version") == "v1.4.3"
    spec = json.loads(nodes["sw1"].docker("service", "inspect", "--format", "{{json .Spec.TaskTemplate.ContainerSpec.Env}}",
                                          "enlevohub-app_backend").stdout)
    assert "LOG_LEVEL=" + odd["LEVEL"] in spec, spec
    where = nodes["sw1"].docker("service", "ps", "--format", "{{.Node}}", "enlevohub-app_postgres").stdout.split()
    assert where[0] == "sw3", where
    made = json.loads(fab(path, "backup", "--host", "sw1", "--json").stdout)   # (dumped where PostgreSQL runs)
    (backup,) = made["sw3/enlevohub"]["backups"]
    assert (nodes["sw3"].root / "enlevohub/data/backups" / backup["name"] / "manifest.json").is_file(), backup
    assert not (nodes["sw1"].root / "enlevohub/data/backups").exists()
    listed = json.loads(fab(path, "backups", "--host", "sw2", "--json").stdout)["sw3/enlevohub"]["backups"]
    assert [b["name"] for b in listed] == [backup["name"]], listed
    drill = json.loads(fab(path, "restore", "--host", "sw1", "--from", backup["name"], "--json").stdout)
    assert [d["database"] for d in drill["databases"]] == ["enlevohub"], drill
    checked = json.loads(fab(path, "doctor", "--host", "sw1,sw3", "--json", code=None).stdout)   # (where it runs)
    on = {label: {f["check"]: (f["level"], f["text"]) for f in found if f["check"] in ("database", "backups")}
          for label, found in checked.items()}
    assert on["sw1/enlevohub"] == {"database": ("ok", "stack app: its database runs on sw3 (a swarm task): "
                                                      "checked there, with its backups")}, checked
    assert on["sw3/enlevohub"]["backups"][0] == "ok", checked

    with Load(nodes["sw1"], "http://127.0.0.1/api/version", rate=60, workers=4) as load:
        bad = fab(path, "deploy", "--host", "sw1", "--tag", "v1.5.0", code=errors.ROLLED_BACK)
    assert load.failed == 0 and "v1.5.0" not in load.answers, f"failed release: {load.summary()}"
    assert "the update of enlevohub-app_backend stopped (paused)" in bad.stdout + bad.stderr
    back = backend_tasks(nodes["sw1"])
    assert len(back) == 3 and all(image.endswith("@" + digest) for image, _ in back), back
    assert nodes["sw1"].http(80, "/api/version") == "v1.4.3"
    history = json.loads(fab(path, "releases", "--host", "sw1", "--json").stdout)["enlevohub"]
    assert [(r["tag"], r["state"]) for r in history[:3]] == [("v1.5.0", "failed"), ("v1.4.3", "good"),
                                                              ("v1.4.2", "good")], history

    nodes["sw2"].stop()   # a manager down: the deploy goes through the next one named, the swarm in quorum
    try:
        proc.wait_for("the swarm to see sw2 down", lambda: "sw2 Down" in nodes["sw1"].docker(
            "node", "ls", "--format", "{{.Hostname}} {{.Status}}").stdout, 60)
        again = fab(path, "deploy", "--host", "sw2,sw1", "--tag", "v1.4.2")
        assert "warning: sw2: " in again.stderr and "trying another manager" in again.stderr, again.stderr
        assert nodes["sw1"].http(80, "/api/version") == "v1.4.2"
    finally:
        nodes["sw2"].start()
        nodes["sw2"].route_to_others()
    stored = nodes["sw3"].docker("config", "ls", "--format", "{{.Name}}").stdout.split()
    assert "fab.enlevohub.lock" not in stored and len([n for n in stored if ".state." in n]) <= 3, stored
    history = json.loads(fab(path, "releases", "--host", "sw3", "--json").stdout)["enlevohub"]   # (none of its own)
    assert [(r["tag"], r["state"]) for r in history[:4]] == [("v1.4.2", "good"), ("v1.5.0", "failed"),
                                                              ("v1.4.3", "good"), ("v1.4.2", "good")], history
    said = fab(path, "logs", "--host", "sw3", "--stack", "app", "--service", "backend", "--tail", "20").stdout
    nodes_said = {m.split("@")[1].split()[0] for m in said.split() if m.startswith("sw3/enlevohub/app/backend.")}
    assert len(nodes_said) >= 2, said   # (the tasks' logs, whichever node they run on, through one manager)


def test_a_node_s_dockerd_killed_during_a_deploy_leaves_the_stack_converged_or_back_never_half(sandbox, nodes,
                                                                                                 tmp_path):
    """sw2, a worker running backend replicas, loses its dockerd (SIGKILL) while v1.4.3 rolls out: the swarm
    marks it down and places its tasks on sw1 and sw3; the deploy either converges there (exit 0, the release
    good) or puts every service back (exit 5, failed): the live nodes run one release, and the history says
    which."""
    path = examples.enlevohub_swarm(sandbox, tmp_path, ("sw1",))
    inv = yaml.safe_load(path.read_text())
    inv["swarm"] = {"managers": ["sw1"], "workers": ["sw2", "sw3"]}
    inv["systems"]["enlevohub"]["stacks"]["app"]["wait"] = 45   # (a blocked update goes back after it)
    for name in ("sw2", "sw3"):
        inv["hosts"][name] = {**sandbox.inventory_entry(sandbox.host(name)), "systems": [],
                              **({"labels": inv["hosts"][name]["labels"]} if "labels" in inv["hosts"][name] else {})}
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    fab(path, "swarm", "init")
    fab(path, "deploy", "--host", "sw1", "--tag", "v1.4.2")
    assert "sw2" in {node for _, node in backend_tasks(nodes["sw1"])}
    deploy = subprocess.Popen([FAB, "deploy", "--host", "sw1", "--tag", "v1.4.3"], cwd=REPO, text=True,
                              env=dict(os.environ, FAB_INVENTORY=str(path), COLUMNS="200"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        proc.wait_for("the update to start", lambda: "updating" in nodes["sw1"].docker(
            "service", "inspect", "--format", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
            "enlevohub-app_backend", check=False).stdout, 120)
        os.kill(proc.read_pid(nodes["sw2"].dir / "dockerd.pid"), signal.SIGKILL)
        out, _ = deploy.communicate(timeout=400)
    finally:
        deploy.kill()
    try:
        assert deploy.returncode in (0, errors.ROLLED_BACK), out
        tag = "v1.4.3" if deploy.returncode == 0 else "v1.4.2"
        live = backend_tasks(nodes["sw1"], "sw2")
        assert len(live) == 3 and all(f":{tag}@" in image for image, _ in live), (tag, live, out)
        assert nodes["sw1"].http(80, "/api/version") == tag
        history = json.loads(fab(path, "releases", "--host", "sw1", "--json").stdout)["enlevohub"]
        assert (history[0]["tag"], history[0]["state"]) == ("v1.4.3", "good" if tag == "v1.4.3" else "failed")
    finally:
        nodes["sw2"].start()
        nodes["sw2"].route_to_others()


def test_a_compose_system_moves_to_the_swarm_with_its_data_and_its_history(sandbox, nodes, tmp_path):
    """docs/swarm.md's move from the compose engine, step by step: EnlevoHub deployed with compose on sw1 (rows in
    its PostgreSQL); the swarm made, hosts.yml switched to engine: swarm (its stack file, sw1 labelled db and
    edge); the first swarm deploy is refused while compose still runs the project, changing nothing; once the
    operator stopped it (docker compose down: the volumes stay), the swarm's PostgreSQL runs on the same
    volume (the rows are there) and the history goes on from the compose releases."""
    (tmp_path / "compose").mkdir()
    host, compose_inv = examples.install(sandbox, tmp_path / "compose", "enlevohub", "enlevohub",
                                         examples.ENLEVOHUB_ENV, "sw1")
    host.route_to_others()
    fab(compose_inv, "setup", "--host", "sw1")
    fab(compose_inv, "deploy", "--host", "sw1", "--tag", "v1.4.2")
    host.docker("exec", "enlevohub-app-postgres-1", "psql", "-U", "enlevohub", "-d", "enlevohub", "-c",
                "CREATE TABLE obras (id int); INSERT INTO obras SELECT generate_series(1, 7)")

    inv = yaml.safe_load((REPO / "examples/enlevohub/swarm.yml").read_text())   # (the step: hosts.yml switched)
    inv["registry"] = {"server": registry.SERVER, "username": registry.USERNAME}
    inv["hosts"] = {name: {**sandbox.inventory_entry(sandbox.host(name)), "systems": []} for name in NAMES}
    inv["hosts"]["sw1"].update(systems=["enlevohub"], labels={"db": "true", "edge": "true"})   # (where the data is)
    swarm_inv = tmp_path / "hosts.yml"
    swarm_inv.write_text(yaml.safe_dump(inv, sort_keys=False))
    values = {**examples.ENLEVOHUB_ENV["."], "REGISTRY": registry.SERVER}   # (the step: swarm/.env written)
    (host.root / "enlevohub/repo/swarm/.env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    fab(swarm_inv, "swarm", "init")

    refused = fab(swarm_inv, "deploy", "--host", "sw1", "--tag", "v1.4.3", code=None)
    assert refused.returncode == errors.BAD_INPUT, refused.stdout + refused.stderr
    assert "compose still runs project enlevohub-app here" in refused.stdout + refused.stderr
    assert host.docker("service", "ls", "-q").stdout.strip() == ""   # (nothing deployed on the swarm)
    assert host.http(80, "/api/version") == "v1.4.2"                   # (compose's still serving)

    host.inside("docker compose -p enlevohub-app down")   # (the step: compose stopped; its volumes stay)
    fab(swarm_inv, "deploy", "--host", "sw1", "--tag", "v1.4.3")
    assert host.http(80, "/api/version") == "v1.4.3"
    db = host.docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name=enlevohub-app_postgres").stdout.split()
    rows = host.docker("exec", db[0], "psql", "-U", "enlevohub", "-d", "enlevohub", "-tAc",
                       "SELECT count(*) FROM obras").stdout.strip()
    assert rows == "7", rows
    history = json.loads(fab(swarm_inv, "releases", "--host", "sw1", "--json").stdout)["enlevohub"]
    assert [(r["tag"], r["state"]) for r in history] == [("v1.4.3", "good"), ("v1.4.2", "good")], history
