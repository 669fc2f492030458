"""A bounded load generator inside a sandbox host's network namespace: GET one URL over and over (a fresh
connection each time, as a browser's first request does) until told to stop or its time is up, and count
what came back: failures, and the answers by body (an app's /version says which release served it).

    with Load(host, 80, "/ems/version") as load:
        ...deploy...
    assert load.failed == 0 and "v1.5.0" not in load.answers

Run as ``python -m sandbox.load PORT PATH SECONDS STOPFILE`` inside the namespace (``Load`` does that); it
prints one JSON object: every request's status (or error) and body, and its seconds.
"""
from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def poll(port: int, path: str, seconds: float, stopfile: str, pause: float = 0.01) -> list[tuple]:
    """(status or the error's name, body, seconds) of each GET until ``stopfile`` exists or time is up."""
    results, end = [], time.monotonic() + seconds
    while time.monotonic() < end and not os.path.exists(stopfile):
        t = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            answer = conn.getresponse()
            results.append((answer.status, answer.read().decode(errors="replace").strip()[:40], time.monotonic() - t))
            conn.close()
        except (OSError, http.client.HTTPException) as e:
            results.append((type(e).__name__, "", time.monotonic() - t))
        time.sleep(pause)
    return results


class Load:
    """``poll`` in the background inside ``host``'s network namespace for the length of a ``with`` block
    (at most ``seconds``: it stops by itself)."""

    def __init__(self, host, port: int, path: str, seconds: float = 300):
        self.host, self.port, self.path, self.seconds = host, port, path, seconds
        self.results: list[tuple] = []

    def __enter__(self) -> Load:
        self.dir = tempfile.mkdtemp(prefix="load-")
        self.stop = os.path.join(self.dir, "stop")
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.host.netns}", sys.executable, "-m", "sandbox.load",
             str(self.port), self.path, str(self.seconds), self.stop],
            cwd=REPO, stdout=subprocess.PIPE, text=True)
        time.sleep(0.3)   # it is polling before the block's work starts
        return self

    def __exit__(self, *exc) -> None:
        Path(self.stop).touch()
        out, _ = self.proc.communicate(timeout=60)
        self.results = [tuple(r) for r in json.loads(out)]

    @property
    def failed(self) -> int:
        return sum(1 for status, _, _ in self.results if status != 200)

    @property
    def answers(self) -> Counter:
        """How many 200 answers each body (release) gave."""
        return Counter(body for status, body, _ in self.results if status == 200)

    def summary(self) -> str:
        return f"{len(self.results)} requests, {self.failed} failed, answers {dict(self.answers)}"


if __name__ == "__main__":
    port, path, seconds, stopfile = sys.argv[1:5]
    print(json.dumps(poll(int(port), path, float(seconds), stopfile)))
