"""Fleet speed: `fab deploy` over 1, 2, 4 (and 8) sandbox hosts, each its own namespaces, dockerd and sshd.

Alternating releases, several rounds per size. Prints per size: the median wall time, its ratio to one host,
the floor (deploy_bench's plain ssh script, run on the same hosts at once) and the tool's ratio to it, the
controller's CPU seconds (the fab process: user + system) in total and per host, and SSH command executions
per host (each host's sshd records every command). One host is a plain single-host deploy (one SSH command);
several are one transaction (lock, deploy, free: three per host). Every sandbox host shares this machine's
cores, so the floor at once shows what the hosts' own work costs when they run together.

    .venv/bin/python bench/fleet_bench.py [--rounds 3] [--sizes 1,2,4,8]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from deploy_bench import FLOOR  # noqa: E402  (bench/ is this script's folder)

from sandbox import Sandbox, system  # noqa: E402

FAB = str(Path(sys.executable).parent / "fab")


def measured(argv, env) -> tuple[float, float]:
    """Wall seconds and the child's CPU seconds of ``argv``, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    res = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{res.stdout}\n{res.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def floor_at_once(sb, hosts, tag: str) -> float:
    """Wall seconds of the floor script on every host of ``hosts`` at once (plain ssh, one process each)."""
    procs, t = [], time.monotonic()
    for host in hosts:
        ssh = ["ssh", "-i", str(sb.client_key), "-o", f"UserKnownHostsFile={host.known_hosts}",
               "-o", "StrictHostKeyChecking=yes", f"root@{host.address}", "bash", "-s", tag]
        proc = subprocess.Popen(ssh, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc.stdin.write(FLOOR)
        proc.stdin.close()
        procs.append(proc)
    for proc in procs:
        if proc.wait() != 0 or proc.stdout.read().split()[-1:] != [tag]:
            raise SystemExit(f"the floor failed: {proc.stderr.read()}")
    return time.monotonic() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default="1,2,4")
    args = ap.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    sb = Sandbox()
    hosts = sb.up([f"fleet{i}" for i in range(1, max(sizes) + 1)])
    inv = yaml.safe_load((REPO / "hosts.yml").read_text())
    inv["hosts"] = {}
    for host in hosts:
        host.reset()
        system.seed(host.root, sb.registry.token)
        inv["hosts"][host.name] = sb.inventory_entry(host)
    path = sb.state / "fleet_bench_hosts.yml"
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    env = dict(os.environ, FAB_INVENTORY=str(path))
    names = [h.name for h in hosts]
    measured([FAB, "deploy", "--host", ",".join(names), "--tag", "v1.4.3"], env)   # warm: images present

    print(f"{'hosts':>5} {'wall median':>12} {'vs 1 host':>10} {'floor at once':>14} {'vs floor':>9} {'CPU total':>10} "
          f"{'CPU/host':>9} {'ssh execs/host':>15}")
    one = None
    for n in sizes:
        chosen = hosts[:n]
        measured([FAB, "deploy", "--host", ",".join(names[:n]), "--tag", "v1.4.2"], env)   # every host from v1.4.2
        walls, cpus, execs, floors = [], [], [], []
        for i in range(args.rounds):
            before = [len(h.commands_log.read_text().splitlines()) for h in chosen]
            wall, cpu = measured([FAB, "deploy", "--host", ",".join(names[:n]), "--tag", ("v1.4.3", "v1.4.2")[i % 2]],
                                 env)
            walls.append(wall)
            cpus.append(cpu)
            execs.append(statistics.mean(len(h.commands_log.read_text().splitlines()) - b
                                         for h, b in zip(chosen, before, strict=True)))
            floors.append(floor_at_once(sb, chosen, ("v1.4.2", "v1.4.3")[i % 2]))
        wall, cpu, floor = statistics.median(walls), statistics.median(cpus), statistics.median(floors)
        one = one or wall
        print(f"{n:5d} {wall:11.2f}s {wall / one:9.2f}x {floor:13.2f}s {wall / floor:8.2f}x {cpu:9.2f}s "
              f"{cpu / n:8.2f}s {statistics.median(execs):15.0f}")
    for host in hosts:
        host.stop()


if __name__ == "__main__":
    main()
