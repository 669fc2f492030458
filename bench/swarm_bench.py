"""Docker Swarm against the compose engine: EnlevoHub's deploy (3 backend replicas behind nginx, start-first)
on a 3-node swarm (examples/enlevohub/swarm.yml, through manager sw1) and with compose on one host
(examples/enlevohub, rollout: start-first), both under load: sandbox/load.py asks /api/version through nginx
all along each deploy.

Rounds alternate the engines (compose, swarm, compose, swarm, ...), each a good deploy to the other release
(v1.4.2 <-> v1.4.3); then once per engine a release that fails (v1.5.0: broken health), which goes back whole.
Prints each deploy's seconds, exit code, requests, failed requests and the answers per release; then the
median seconds of the good deploys per engine and the ratio swarm / compose. Exits 1 if any request failed or
v1.5.0 answered. The swarm is left at the end (each node out of it), as the e2e tests expect.

    .venv/bin/python bench/swarm_bench.py [--rounds 3] [--rate 100]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sandbox import Sandbox, examples  # noqa: E402
from sandbox.load import Load  # noqa: E402
from tasks.core import errors  # noqa: E402

FAB = str(Path(sys.executable).parent / "fab")
NODES = ("sw1", "sw2", "sw3")
COMPOSE_HOST = "bench"


def run(inv: Path, host: str | None, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, FAB_INVENTORY=str(inv), COLUMNS="200")
    return subprocess.run([FAB, *args, *(["--host", host] if host else [])], cwd=REPO, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)


def must(inv: Path, host: str | None, *args: str) -> None:
    res = run(inv, host, *args)
    if res.returncode != 0:
        raise SystemExit(f"fab {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")


def leave(hosts) -> None:
    for h in hosts:
        h.inside("docker swarm leave --force >/dev/null 2>&1; true")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=float, default=100)
    a = ap.parse_args()
    sb = Sandbox()
    sb.up([COMPOSE_HOST, *NODES])
    nodes = [sb.host(n) for n in NODES]
    for h in nodes:
        h.route_to_others()
    leave(reversed(nodes))
    folder = Path(tempfile.mkdtemp(prefix="swarm-bench-"))
    (folder / "compose").mkdir()
    host, compose_inv = examples.install(sb, folder / "compose", "enlevohub", "enlevohub", examples.ENLEVOHUB_ENV,
                                         COMPOSE_HOST)
    examples.enlevohub_for_rollout(host, compose_inv, "start-first")
    (folder / "swarm").mkdir()
    swarm_inv = examples.enlevohub_swarm(sb, folder / "swarm", NODES)
    engines = {"compose": (compose_inv, COMPOSE_HOST, host), "swarm": (swarm_inv, "sw1", nodes[0])}
    try:
        must(compose_inv, COMPOSE_HOST, "setup")
        must(swarm_inv, None, "swarm", "init")
        for inv, name, _ in engines.values():
            must(inv, name, "deploy", "--tag", "v1.4.2")
        bad, took = 0, {e: [] for e in engines}
        print(f"{'engine':8} {'deploy':16} {'fab s':>6} {'exit':>4} {'requests':>8} {'failed':>6}  answers", flush=True)
        tags = ["v1.4.3", "v1.4.2"] * a.rounds
        plan = [(e, tag, 0) for tag in tags for e in engines] + [(e, "v1.5.0", errors.ROLLED_BACK) for e in engines]
        for engine, tag, code in plan:
            inv, name, proxy_host = engines[engine]
            with Load(proxy_host, "http://127.0.0.1/api/version", rate=a.rate, workers=8) as load:
                t = time.monotonic()
                res = run(inv, name, "deploy", "--tag", f"backend={tag}" if engine == "compose" else tag)
                seconds = time.monotonic() - t
            if res.returncode != code:
                raise SystemExit(f"{engine} deploy {tag}: exit {res.returncode}, not {code}:\n{res.stdout}\n{res.stderr}")
            if code == 0:
                took[engine].append(seconds)
            bad += load.failed + load.answers["v1.5.0"]
            answers = ", ".join(f"{k} {v}" for k, v in sorted(load.answers.items()))
            print(f"{engine:8} {'to ' + tag:16} {seconds:6.1f} {res.returncode:4} {len(load.results):8} "
                  f"{load.failed:6}  {answers}", flush=True)
        median = {e: statistics.median(v) for e, v in took.items()}
        print(f"good deploys, median: compose (1 host) {median['compose']:.1f} s, swarm (3 nodes) "
              f"{median['swarm']:.1f} s; swarm / compose = {median['swarm'] / median['compose']:.2f}")
        print(f"failed requests or v1.5.0 answers, all deploys: {bad}")
    finally:
        leave(reversed(nodes))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
