"""The swarm programs (sh/swarm.sh): a node's facts, the swarm made and joined, its nodes given their role and
labels, drained or activated, and a manager's report; docker's JSON answers read here."""
from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass

from ..cluster import HOST_LABEL, Swarm
from ..model import Host, Stack
from ..target import Target
from .protocol import Program, Result, fields, report

JOIN_TOKEN = re.compile(r"SWMTKN-1-[A-Za-z0-9-]{20,}")
DRAIN_WAIT = 120   # seconds a drain waits for the node's tasks to move before it says which stayed


def facts_program(host: Host) -> Program:
    return Program(f"swarm facts of {host.name}").step("swarm_facts")


def init_program(host: Host) -> Program:
    """A new swarm, ``host`` its first manager; then its join tokens (for the nodes joined next; the pad
    follows the program on stdin)."""
    return Program(f"swarm init on {host.name}").step("swarm_init", host.node_address).step("swarm_tokens")


def tokens_program(host: Host) -> Program:
    """The join tokens of ``host``'s swarm (the pad follows on stdin) and its nodes."""
    return Program(f"swarm join tokens of {host.name}").step("swarm_tokens").step("swarm_report")


def join_program(host: Host, manager: Host) -> Program:
    """``host`` joins the swarm ``manager`` is in; the join token follows the program on stdin."""
    return Program(f"swarm join of {host.name}").step("swarm_join", host.node_address, manager.node_address)


def nodes_program(nodes: list[tuple[str, str, Host]]) -> Program:
    """On a manager: each (node id, role, host) given its role and labels (fab.host naming the host first),
    then the report."""
    prog = Program("swarm nodes")
    for node, role, host in nodes:
        prog.step("swarm_node", node, host.name, role, f"{HOST_LABEL}={host.name}",
                  *(f"{k}={v}" for k, v in host.labels))
    return prog.step("swarm_report")


def availability_program(host: str, action: str) -> Program:
    """fab swarm drain / activate of the node that is ``host``, then the report."""
    availability = {"activate": "active"}.get(action, action)
    return (Program(f"swarm {action} of {host}").step("swarm_availability", host, f"{HOST_LABEL}={host}", availability,
                                                                    DRAIN_WAIT)
            .step("swarm_report"))


def placed_program(target: Target, stacks: list[Stack]) -> Program:
    """On a manager: the inventory host whose node runs each database stack's task (a swarm system's
    database is dumped where it runs)."""
    prog = Program(f"where the databases of {target.label} run")
    for s in stacks:
        prog.step("swarm_placed", s.name, f"{target.project(s)}_{s.database.service}")
    return prog


@report
def placed(result: Result) -> dict[str, str]:
    """Database stack -> the inventory host its task runs on."""
    return {d["stack"]: d["host"] for d in result.all("placed")}


def report_program() -> Program:
    return Program("swarm status").step("swarm_report")


@dataclass(frozen=True)
class Facts:
    """What a node says of itself (docker info's Swarm object)."""
    state: str          # inactive, pending, active, error or locked
    node: str           # its node id ("" outside a swarm)
    manager: bool       # it manages the swarm (can answer for it)
    cluster: str        # the swarm's id, as a manager knows it ("" on a worker)
    error: str


@dataclass(frozen=True)
class Node:
    id: str
    host: str           # the inventory host (its fab.host label; "" for a node the tool did not join)
    hostname: str
    role: str
    availability: str
    state: str          # ready, down, unknown, disconnected
    manager: str        # leader, reachable, unreachable, or "" for a worker
    address: str
    labels: dict[str, str]


@dataclass(frozen=True)
class Service:
    name: str
    mode: str           # replicated, global, replicated-job, global-job
    replicas: int | None   # the replicas asked for (None: global, one per eligible node)
    image: str


@dataclass(frozen=True)
class Task:
    service: str
    node: str           # the hostname of the node it was placed on
    desired: str
    state: str          # docker's "Running 3 minutes ago"
    error: str
    image: str

    @property
    def running(self) -> bool:
        return self.desired == "Running" and self.state.startswith("Running")


@dataclass(frozen=True)
class SwarmReport:
    nodes: list[Node]
    services: list[Service]
    tasks: list[Task]

    def running(self, service: str) -> int:
        return sum(t.running for t in self.tasks if t.service == service)

    def completed(self, service: str) -> int:
        """The tasks of a job (a one-shot service) that ran to completion."""
        return sum(t.state.startswith("Complete") for t in self.tasks if t.service == service)

    def replicas(self, service: Service) -> str:
        """What runs of ``service`` against what it asks: "2/3", "3" for a global one, "1/1 completed" for a job."""
        if service.mode.endswith("job"):
            return f"{self.completed(service.name)}/{service.replicas or 0} completed"
        wanted = "" if service.replicas is None else f"/{service.replicas}"
        return f"{self.running(service.name)}{wanted}"

    def failures(self, service: str) -> list[Task]:
        """The tasks of ``service`` that failed or were rejected, with docker's error."""
        return [t for t in self.tasks if t.service == service and t.error]

    def node_of(self, host: str) -> Node | None:
        return next((n for n in self.nodes if n.host == host), None)

    def problems(self, cluster: Swarm) -> list[str]:
        """What needs a look: a host of swarm: that is not a node (or in the wrong role), a node down, a manager
        unreachable (the quorum's margin), a replicated service short of its replicas."""
        out = []
        for host in cluster.nodes:
            node = self.node_of(host)
            if node is None:
                out.append(f"no node of the swarm is {host} (fab swarm init joins it, or labels it fab.host={host})")
            elif node.role != cluster.role(host):
                out.append(f"{host} is a {node.role}, hosts.yml says {cluster.role(host)} (fab swarm init changes it)")
        if len(cluster.managers) % 2 == 0:
            out.append(f"{len(cluster.managers)} managers survive the loss of {(len(cluster.managers) - 1) // 2}, as "
                       f"{len(cluster.managers) - 1} would: list an odd number (3 survive one lost)")
        out += [f"node {n.host or n.hostname} is {n.state}" for n in self.nodes if n.state != "ready"]
        out += [f"manager {n.host or n.hostname} is {n.manager}" for n in self.nodes
                if n.role == "manager" and n.manager not in ("leader", "reachable")]
        out += [f"service {s.name} runs {self.running(s.name)} of {s.replicas} replicas" for s in self.services
                if s.mode == "replicated" and s.replicas is not None and self.running(s.name) < s.replicas]
        return out


def _json(obj: dict) -> dict:
    value = json.loads(fields(obj, "json")[0])
    if not isinstance(value, dict):
        raise TypeError("a JSON object was expected")
    return value


@report
def facts(result: Result) -> Facts:
    info = _json(result.one("swarm_info"))
    return Facts(str(info["LocalNodeState"]), str(info.get("NodeID") or ""), info.get("ControlAvailable") is True,
                 str((info.get("Cluster") or {}).get("ID") or ""), str(info.get("Error") or ""))


def pad() -> bytes:
    """A one-time pad for swarm_tokens (sent on its stdin, in hex): 128 bytes for each token."""
    return secrets.token_bytes(256)


@report
def tokens(result: Result, pad: bytes) -> dict[str, str]:
    """The join tokens by the role they give, unsealed with the run's ``pad`` (each checked: it goes on to
    another host's stdin)."""
    out = {}
    for i, role in enumerate(("worker", "manager")):
        sealed = bytes.fromhex(fields(result.one("swarm_tokens"), role)[0])
        if len(sealed) > 128:
            raise ValueError("a sealed token longer than its pad")
        token = bytes(a ^ b for a, b in zip(sealed, pad[i * 128:], strict=False)).decode("ascii")
        if not JOIN_TOKEN.fullmatch(token):
            raise ValueError("a join token of an unknown shape")
        out[role] = token
    return out


@report
def swarm_report(result: Result) -> SwarmReport:
    return SwarmReport([_node(_json(d)) for d in result.all("swarm_node")],
                       [_service(_json(d)) for d in result.all("swarm_service")],
                       [_task(_json(d)) for d in result.all("swarm_task")])


def _node(n: dict) -> Node:
    spec, labels = n["Spec"], dict(n["Spec"].get("Labels") or {})
    status = n.get("ManagerStatus") or {}
    manager = "leader" if status.get("Leader") else str(status.get("Reachability") or "")
    return Node(str(n["ID"]), str(labels.pop(HOST_LABEL, "")), str(n["Description"]["Hostname"]), str(spec["Role"]),
                str(spec["Availability"]), str(n["Status"]["State"]), manager, str(n["Status"].get("Addr") or ""),
                {str(k): str(v) for k, v in labels.items()})


MODES = {"Replicated": "replicated", "Global": "global", "ReplicatedJob": "replicated-job",
         "GlobalJob": "global-job"}


def _service(s: dict) -> Service:
    spec = s["Spec"]
    kind = next(k for k in MODES if k in spec["Mode"])
    replicas = spec["Mode"][kind].get("Replicas", spec["Mode"][kind].get("TotalCompletions"))
    return Service(str(spec["Name"]), MODES[kind], None if replicas is None else int(replicas),
                   str(spec["TaskTemplate"]["ContainerSpec"]["Image"]))


def _task(t: dict) -> Task:
    """One line of `docker service ps --format json`: its name is SERVICE.SLOT (or SERVICE.NODEID for a global
    service); docker quotes its error (``"task: non-zero exit (1)"``)."""
    return Task(str(t["Name"]).rsplit(".", 1)[0], str(t["Node"]), str(t["DesiredState"]), str(t["CurrentState"]),
                str(t["Error"]).strip('"'), str(t["Image"]))
