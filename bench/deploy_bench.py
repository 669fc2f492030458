"""Deploy speed: `fab deploy` against the floor, one plain ssh session running a shell script that does the
same docker steps (login with the token on stdin, pull, pin, `up -d --wait` each stack, check /version).

Alternating releases, interleaved (tool, floor, tool, floor, ...), several rounds, at 0 ms and at 100 ms
round-trip time (a TCP proxy on 127.0.0.1 delays each direction by 50 ms: this kernel has no netem). Prints
each one's median, the ratio, the seconds the tool adds over the floor, and SSH command executions per deploy.

    .venv/bin/python bench/deploy_bench.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sandbox import Sandbox, system  # noqa: E402

FAB = str(Path(sys.executable).parent / "fab")
FLOOR = r"""
set -e
TAG=$1
while IFS= read -r l; do case $l in "export GITHUB_TOKEN="*) t=${l#export GITHUB_TOKEN=};; esac; done < /root/ems_system/.secrets/github
printf '%s' "$t" | docker login 10.200.0.1:5000 -u edumigsoft --password-stdin >/dev/null 2>&1
cd /root/ems_system/repo/servers
for app in ems sms; do
  d=$(docker pull -q 10.200.0.1:5000/edumigsoft/${app}_server:$TAG)
  sed -i '/^IMAGE_TAG=/d' $app/container/.env; echo "IMAGE_TAG=$TAG" >> $app/container/.env
done
for f in infra/docker-compose.prod.yml containers/postgres/docker-compose.prod.yml ems/container/docker-compose.prod.yml sms/container/docker-compose.prod.yml; do
  p=ems_system-$(basename $(dirname $f)); [ "$p" = ems_system-container ] && p=ems_system-$(basename $(dirname $(dirname $f)))
  docker compose -p $p -f $f up -d --wait --wait-timeout 120 >/dev/null 2>&1
done
curl -fsS http://127.0.0.1:8080/health >/dev/null && curl -fsS http://127.0.0.1:8080/version
"""


class DelayProxy:
    """127.0.0.1:<port> -> target, each direction delayed by ``delay`` seconds (latency, not bandwidth)."""

    def __init__(self, target: tuple[str, int], delay: float):
        self.target, self.delay = target, delay
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _client(self, reader, writer):
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader, writer):
        queue: asyncio.Queue = asyncio.Queue()

        async def send():
            while (item := await queue.get()) is not None:
                due, data = item
                await asyncio.sleep(max(0.0, due - self.loop.time()))
                writer.write(data)
                await writer.drain()
            writer.close()
        sender = self.loop.create_task(send())
        while data := await reader.read(65536):
            queue.put_nowait((self.loop.time() + self.delay, data))
        queue.put_nowait(None)
        await sender


def timed(argv, expect: str | None = None, **kw) -> float:
    """Wall time of ``argv``; it must succeed (and print ``expect`` last, for the floor's /version check)."""
    t = time.monotonic()
    res = subprocess.run(argv, capture_output=True, text=True, **kw)
    if res.returncode != 0 or (expect and res.stdout.split()[-1:] != [expect]):
        raise SystemExit(f"{argv[0]} failed: {res.stdout}\n{res.stderr}")
    return time.monotonic() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    sb = Sandbox()
    host, = sb.up(["bench"])
    host.reset()
    system.seed(host.root, sb.registry.token)
    proxy = DelayProxy((host.address, 22), 0.050)
    key_line = host.known_hosts.read_text().split(None, 1)[1]
    known = host.dir / "bench_known_hosts"
    known.write_text(f"{host.address} {key_line}[127.0.0.1]:{proxy.port} {key_line}")
    inv = yaml.safe_load((REPO / "hosts.yml").read_text())
    base = dict(sb.inventory_entry(host), known_hosts=str(known))
    inv["hosts"] = {"rtt0": base, "rtt100": dict(base, address="127.0.0.1", port=proxy.port)}
    inv_path = host.dir / "bench_hosts.yml"
    inv_path.write_text(yaml.safe_dump(inv, sort_keys=False))
    env = dict(os.environ, FAB_INVENTORY=str(inv_path))
    timed([FAB, "deploy", "--host", "rtt0", "--tag", "v1.4.2"], env=env, cwd=REPO)  # warm: images present

    print(f"{'rtt':>6} {'tool median':>12} {'floor median':>13} {'ratio':>6} {'added':>7} {'ssh execs/deploy':>17}")
    for name, port, address in (("rtt0", 22, host.address), ("rtt100", proxy.port, "127.0.0.1")):
        ssh = ["ssh", "-i", str(sb.client_key), "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
               "-p", str(port), f"root@{address}", "bash", "-s"]
        tool, floor, execs = [], [], []
        for i in range(args.rounds):
            tag = ("v1.4.3", "v1.4.2")[i % 2]
            before = len(host.commands_log.read_text().splitlines())
            tool.append(timed([FAB, "deploy", "--host", name, "--tag", tag], env=env, cwd=REPO))
            execs.append(len(host.commands_log.read_text().splitlines()) - before)
            other = ("v1.4.2", "v1.4.3")[i % 2]
            floor.append(timed(ssh + [other], expect=other, input=FLOOR))
        t, f = statistics.median(tool), statistics.median(floor)
        print(f"{name[3:] + ' ms':>6} {t:11.2f}s {f:12.2f}s {t / f:6.2f} {t - f:+6.2f}s {statistics.median(execs):17.0f}")


if __name__ == "__main__":
    main()
