"""Downtime under load: what users see while the tool changes a release, behind the seeds' real proxies.

A load generator inside the sandbox host's network namespace (sandbox/load.py: bounded, half its clients on
fresh connections, half on kept-alive ones, RATE requests/s) asks the app's /version through the proxy all
along each scenario, and keeps asking after the fab command returned until it has at least MIN requests:

- traefik: examples/ems (seed 001: EMS behind the real Traefik, docker labels, health-filtered routing);
- nginx: examples/enlevohub (seed 002: three backends behind the real nginx);

each with rollout: start-first (Traefik: the drain file; nginx: the upstream block the tool writes) and with
the default stop-first (nginx: the seed's own conf, the backends found through Docker's DNS). Scenarios, in
order: a good deploy, a release that fails its gate (v1.5.0: broken health, working /version), a rollback,
then a rolling deploy of 3 replicas one at a time. Prints per scenario: the fab command's seconds and exit
code, requests, failed, reopened (a kept-alive connection the server closed while idle, asked again once),
p50/p99 latency, the answers per release. Exits 1 if a start-first scenario failed a request or answered
from v1.5.0.

    .venv/bin/python bench/downtime.py [--rate 200] [--min 2000] [--proxies traefik,nginx]
                                       [--strategies start-first,stop-first]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sandbox import Sandbox, examples  # noqa: E402
from sandbox.load import Load  # noqa: E402
from tasks.core import errors  # noqa: E402

FAB = str(Path(sys.executable).parent / "fab")
HOST = "bench"

def prepare_ems(sb, folder: Path, strategy: str):
    host, inv = examples.ems(sb, folder, HOST)
    examples.ems_for_rollout(host, inv, strategy)
    return host, inv


def prepare_enlevohub(sb, folder: Path, strategy: str):
    host, inv = examples.install(sb, folder, "enlevohub", "enlevohub", examples.ENLEVOHUB_ENV, HOST)
    examples.enlevohub_for_rollout(host, inv, strategy)
    return host, inv


# proxy -> (its example installed and prepared for a strategy, /version through the proxy, the app's --tag name)
PROXIES = {"traefik": (prepare_ems, "https://api.ems.edumigsoft.com.br/version", "ems"),
           "nginx": (prepare_enlevohub, "http://127.0.0.1/api/version", "backend")}


def fab(inv: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, FAB_INVENTORY=str(inv), COLUMNS="200")
    return subprocess.run([FAB, *args, "--host", HOST], cwd=REPO, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=600)


def ok(inv: Path, *args: str) -> None:
    res = fab(inv, *args)
    if res.returncode != 0:
        raise SystemExit(f"fab {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")


def to_three_replicas(proxy: str, inv: Path, strategy: str) -> None:
    """The rolling scenario's setting: 3 replicas (EnlevoHub runs 3 already), replaced one at a time."""
    doc = yaml.safe_load(inv.read_text())
    system, stack, service = ("ems_system", "ems", "ems") if proxy == "traefik" else ("enlevohub", "app", "backend")
    spec = doc["systems"][system]["stacks"][stack]
    spec["scale"] = {service: 3}
    if strategy == "start-first":
        spec["rollout"]["batch"] = 1
    inv.write_text(yaml.safe_dump(doc, sort_keys=False))


def measure(host, inv: Path, url: str, args: tuple, rate: float, least: int) -> tuple:
    """The load all along ``fab args``, and after it until ``least`` requests were made."""
    with Load(host, url, rate=rate, workers=8) as load:
        t = time.monotonic()
        res = fab(inv, *args)
        took = time.monotonic() - t
        time.sleep(max(0.5, least / rate - took + 0.5))   # (the load started 0.3 s before; a margin)
    return res, took, load


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--min", type=int, default=2000)
    ap.add_argument("--proxies", default="traefik,nginx")
    ap.add_argument("--strategies", default="start-first,stop-first")
    a = ap.parse_args()
    sb = Sandbox()
    sb.up([HOST])
    bad = 0
    print(f"{'proxy':8} {'strategy':12} {'scenario':20} {'fab s':>6} {'exit':>4} {'requests':>8} {'failed':>6} "
          f"{'reopened':>8} {'p50 ms':>7} {'p99 ms':>7}  answers", flush=True)
    for proxy in a.proxies.split(","):
        prepare, url, app = PROXIES[proxy]
        for strategy in a.strategies.split(","):
            folder = Path(tempfile.mkdtemp(prefix="downtime-"))
            host, inv = prepare(sb, folder, strategy)
            ok(inv, "setup")
            ok(inv, "deploy", "--tag", "v1.4.2")
            for scenario, args, code in (("good deploy", ("deploy", "--tag", f"{app}=v1.4.3"), 0),
                                         ("failed gate", ("deploy", "--tag", f"{app}=v1.5.0"), errors.ROLLED_BACK),
                                         ("rollback", ("rollback", "--to", "v1.4.2"), 0),
                                         ("rolling 3 replicas", ("deploy", "--tag", f"{app}=v1.4.3"), 0)):
                if scenario == "rolling 3 replicas":
                    to_three_replicas(proxy, inv, strategy)
                    ok(inv, "deploy", "--tag", f"{app}=v1.4.2")   # (not measured: to 3 replicas first)
                res, took, load = measure(host, inv, url, args, a.rate, a.min)
                if res.returncode != code:
                    raise SystemExit(f"fab {' '.join(args)}: exit {res.returncode}, not {code}:\n{res.stdout}\n{res.stderr}")
                answers = ", ".join(f"{k} {v}" for k, v in sorted(load.answers.items()))
                print(f"{proxy:8} {strategy:12} {scenario:20} {took:6.1f} {res.returncode:4} {len(load.results):8} "
                      f"{load.failed:6} {load.reopened:8} {load.latency(0.5) * 1000:7.1f} "
                      f"{load.latency(0.99) * 1000:7.1f}  {answers}", flush=True)
                if strategy == "start-first":
                    bad += load.failed + load.answers["v1.5.0"]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
