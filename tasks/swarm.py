"""fab swarm: the Docker Swarm of hosts.yml's ``swarm:``: made and joined (init), looked at (status), a node's
tasks moved off it and back (drain, activate). Every program runs through a manager, the next one in order
when one cannot be reached: a swarm answers as long as a majority of its managers is up."""
from __future__ import annotations

import json as jsonlib
from dataclasses import asdict

from rich.table import Table

from .core import inventory
from .core.cli import Selection, command
from .core.cluster import Swarm
from .core.errors import BAD_INPUT, UNREACHABLE, WARNING, ToolError
from .core.model import Inventory
from .core.programs.protocol import Program, execute
from .core.programs.swarm import (
    Facts,
    SwarmReport,
    availability_program,
    facts,
    facts_program,
    init_program,
    join_program,
    nodes_program,
    pad,
    report_program,
    swarm_report,
    tokens,
    tokens_program,
)
from .core.ui import console, safe

ACTIONS = {"init": "make the swarm", "status": "look at it", "drain": "move a node's tasks off it",
           "activate": "let a drained node take tasks again"}


@command({"action": "init (create the swarm of hosts.yml's swarm:, join its nodes, set their roles and labels; "
                    "again: joins what is missing), status (nodes, services, replicas, failed tasks), drain or "
                    "activate (with --host: the node whose tasks move off it, or that takes tasks again)",
          "host": "drain / activate: the node, a host of swarm:",
          "json": "status: print the nodes, services and tasks as JSON"})
def swarm(c, action, host=None, json=False):
    """Docker Swarm: fab swarm init | status | drain --host NAME | activate --host NAME."""
    if action not in ACTIONS:
        raise ToolError(f"fab swarm {action!r}: say one of {', '.join(ACTIONS)}", BAD_INPUT)
    inv = inventory.load()
    cluster = inv.swarm
    if cluster is None:
        raise ToolError(f"{inv.path} has no swarm: (managers: [...], workers: [...]) to {ACTIONS[action]} of",
                        BAD_INPUT)
    node = _node(inv, cluster, host, action)
    with Selection(inv, []) as sel:
        if action == "init":
            report = _init(sel, cluster)
        else:
            program = report_program() if node is None else availability_program(node, action)
            report = swarm_report(_through_manager(sel, cluster, program, quiet=node is None or json))
    _show(cluster, report, json)


def _node(inv: Inventory, cluster: Swarm, host: str | None, action: str) -> str | None:
    """drain / activate: the node --host names (checked before anything connects); init and status: none."""
    if action not in ("drain", "activate"):
        if host:
            raise ToolError(f"fab swarm {action} acts on the whole swarm: --host is for drain and activate", BAD_INPUT)
        return None
    if not host:
        raise ToolError(f"fab swarm {action} needs --host NAME: the node to {ACTIONS[action]}", BAD_INPUT)
    if not cluster.role(host):
        inv.host(host)   # (an unknown name: the list of known ones)
        raise ToolError(f"host {host!r} is not a node of the swarm (swarm: in {inv.path})", BAD_INPUT)
    return host


def _run(sel: Selection, name: str, program: Program, quiet: bool = False):
    """``program`` on host ``name``, its steps shown unless ``quiet`` (a read-only one the task reports)."""
    return execute(sel.host_session(sel.inventory.hosts[name]), program, name, quiet=quiet)


def _through_manager(sel: Selection, cluster: Swarm, program: Program, quiet: bool):
    """``program`` run on the first manager that can be reached and answers for the swarm."""
    tried = []
    for name in cluster.managers:
        try:
            return _run(sel, name, program, quiet=quiet)
        except ToolError as e:
            if e.code == BAD_INPUT:
                raise
            tried.append(str(e))
    raise ToolError("no manager of the swarm answered:\n  " + "\n  ".join(tried), UNREACHABLE)


def _init(sel: Selection, cluster: Swarm) -> SwarmReport:
    """The swarm as hosts.yml says: every node's facts read first (a node in another swarm, or in a broken
    state, refuses the run before anything changes); a swarm made on the first manager when none manages one;
    the nodes outside it joined (the token on their stdin); every node's role and labels set."""
    hosts = sel.inventory.hosts
    seen = {n: facts(_run(sel, n, facts_program(hosts[n]), quiet=True)) for n in cluster.nodes}
    _refuse_broken(seen)
    lead, once = next((n for n in cluster.managers if seen[n].manager), None), pad()
    if lead is None:
        strangers = [n for n, f in seen.items() if f.state == "active"]
        if strangers:
            raise ToolError(f"{', '.join(strangers)} already belong to a swarm none of whose managers is in swarm: "
                            "(run `docker swarm leave` there first): nothing was changed", BAD_INPUT)
        lead = cluster.managers[0]
        result = _run(sel, lead, init_program(hosts[lead]).given(once.hex()))
        seen[lead], known = facts(result), set()
    else:
        _refuse_split(cluster, seen)
        result = _run(sel, lead, tokens_program(hosts[lead]).given(once.hex()), quiet=True)
        known = {node.id for node in swarm_report(result).nodes}
        strangers = [n for n, f in seen.items() if f.state == "active" and f.node not in known]
        if strangers:
            raise ToolError(f"{', '.join(strangers)} belong to another swarm than {lead}'s (run `docker swarm leave` "
                            "there first): nothing was changed", BAD_INPUT)
    secret = tokens(result, once)
    for name in cluster.nodes:
        if seen[name].state == "inactive":
            joined = _run(sel, name, join_program(hosts[name], hosts[lead]).given(secret[cluster.role(name)]))
            seen[name] = facts(joined)
    plan = [(seen[n].node, cluster.role(n), hosts[n]) for n in cluster.nodes]
    return swarm_report(_run(sel, lead, nodes_program(plan)))


def _refuse_broken(seen: dict[str, Facts]) -> None:
    broken = [f"{n} ({f.state}{': ' + f.error if f.error else ''})" for n, f in seen.items()
              if f.state not in ("inactive", "active")]
    if broken:
        raise ToolError(f"swarm nodes in a state the tool cannot join or change: {', '.join(broken)}: nothing was "
                        "changed", BAD_INPUT)


def _refuse_split(cluster: Swarm, seen: dict[str, Facts]) -> None:
    clusters = {seen[n].cluster for n in cluster.managers if seen[n].manager}
    if len(clusters) > 1:
        raise ToolError("the managers of swarm: manage different swarms ("
                        + ", ".join(f"{n}: {seen[n].cluster[:12]}" for n in cluster.managers if seen[n].manager)
                        + "): leave one of them first; nothing was changed", BAD_INPUT)


def _show(cluster: Swarm, report: SwarmReport, as_json: bool) -> None:
    """The nodes and services; a node down, a manager unreachable or a service short of replicas is a warning
    (exit 8)."""
    if as_json:
        print(jsonlib.dumps(asdict(report)))
    else:
        _tables(cluster, report)
    problems = report.problems(cluster)
    if problems:
        raise ToolError("; ".join(problems), WARNING)


def _tables(cluster: Swarm, report: SwarmReport) -> None:
    nodes = Table("host", "node", "role", "manager", "availability", "state", "labels",
                  title=f"swarm: {len(cluster.managers)} manager(s), quorum {cluster.quorum}", title_justify="left")
    for n in report.nodes:
        nodes.add_row(safe(n.host or "(not in hosts.yml)"), safe(n.hostname), n.role, n.manager, n.availability,
                      n.state, safe(", ".join(f"{k}={v}" for k, v in sorted(n.labels.items()))))
    console.print(nodes)
    if not report.services:
        console.print("no services yet")
        return
    services = Table("service", "mode", "replicas", "image", "failed tasks", title_justify="left")
    for s in report.services:
        failed = "\n".join(f"{t.node}: {t.error} ({t.state})" for t in report.failures(s.name)[:3])
        services.add_row(safe(s.name), s.mode, report.replicas(s), safe(_short(s.image)), safe(failed))
    console.print(services)


def _short(image: str) -> str:
    """An image as a table shows it: name:tag with the digest's first 12 hex digits."""
    name, _, digest = image.partition("@sha256:")
    return f"{name}@{digest[:12]}" if digest else name
