"""A bounded load generator inside a sandbox host's network namespace: GET one URL at a steady rate until told
to stop or its time is up, and count what came back: failures, latency, and the answers by body (an app's
/version says which release served it). Half its workers open a fresh connection for each request (a
browser's first request), half keep one connection alive (a browser's next ones).

    with Load(host, "https://api.ems.edumigsoft.com.br/version", rate=100) as load:
        ...deploy...
    assert load.failed == 0 and "v1.5.0" not in load.answers

A kept-alive connection the server closed between two requests (nginx's old workers close idle ones at a
reload) is opened again and the request sent once more, as HTTP clients do for an idempotent request that got
no answer at all (RFC 9110, 9.2.2); such requests count as ``reopened``, and as failed if the second try fails.

Every request goes to the host itself (127.0.0.1, the URL's port) with the URL's name as Host and, for https,
as SNI: as a user's browser reaches the proxy; the certificate is not checked here (fab doctor does).

Run as ``python -m sandbox.load URL SECONDS STOPFILE RATE WORKERS`` inside the namespace (``Load`` does that);
it prints one JSON list: each request's [status or error name, body, seconds, "fresh"|"kept", reopened].
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.CannotSendRequest)


class Target:
    """Where a URL's requests go: this host's own port, with the URL's name as Host (and SNI for https)."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.tls, self.name = parts.scheme == "https", parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.tls else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.context = ssl._create_unverified_context() if self.tls else None

    def connection(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self.name, self.port, timeout=5)
        conn.default_port = self.port   # (Host: the bare name, as a browser sends it on 443)
        conn.connect = lambda: self._connect(conn)
        return conn

    def _connect(self, conn: http.client.HTTPConnection) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        conn.sock = self.context.wrap_socket(sock, server_hostname=self.name) if self.context else sock


def get(conn: http.client.HTTPConnection, path: str) -> tuple:
    conn.request("GET", path)
    answer = conn.getresponse()
    return answer.status, answer.read().decode(errors="replace").strip()[:40]


class Worker(threading.Thread):
    """One client: a request every ``interval`` seconds (on a schedule, so a slow answer does not lower the
    rate), on a fresh connection each time or on one it keeps."""

    def __init__(self, target: Target, interval: float, keep: bool, until: float, stopfile: str):
        super().__init__(daemon=True)
        self.target, self.interval, self.keep, self.until, self.stopfile = target, interval, keep, until, stopfile
        self.results: list[list] = []
        self.conn: http.client.HTTPConnection | None = None

    def run(self) -> None:
        due = time.monotonic()
        while time.monotonic() < self.until and not os.path.exists(self.stopfile):
            self.results.append(self.one())
            due += self.interval
            time.sleep(max(0.0, due - time.monotonic()))
        if self.conn:
            self.conn.close()

    def one(self) -> list:
        t, reopened = time.monotonic(), False
        try:
            if not self.keep:
                conn = self.target.connection()
                try:
                    status, body = get(conn, self.target.path)
                finally:
                    conn.close()
            else:
                reused = self.conn is not None
                self.conn = self.conn or self.target.connection()
                try:
                    status, body = get(self.conn, self.target.path)
                except STALE:
                    self.conn.close()
                    if not reused:
                        raise
                    reopened = True   # closed by the server while idle: once more, on a new connection
                    self.conn = self.target.connection()
                    status, body = get(self.conn, self.target.path)
            return [status, body, time.monotonic() - t, "kept" if self.keep else "fresh", reopened]
        except (OSError, http.client.HTTPException) as e:
            if self.conn:
                self.conn.close()
                self.conn = None
            return [type(e).__name__, "", time.monotonic() - t, "kept" if self.keep else "fresh", reopened]


def poll(url: str, seconds: float, stopfile: str, rate: float = 40, workers: int = 2) -> list[list]:
    """Every request of ``workers`` clients (half fresh, half kept-alive) together asking ``rate`` per second."""
    until, target = time.monotonic() + seconds, Target(url)
    pool = [Worker(target, workers / rate, i % 2 == 1, until, stopfile) for i in range(workers)]
    for i, w in enumerate(pool):
        time.sleep(1 / rate if i else 0)   # spread over the interval
        w.start()
    for w in pool:
        w.join()
    return [r for w in pool for r in w.results]


class Load:
    """``poll`` in the background inside ``host``'s network namespace for the length of a ``with`` block
    (at most ``seconds``: it stops by itself)."""

    def __init__(self, host, url: str, seconds: float = 300, rate: float = 40, workers: int = 2):
        self.host, self.url, self.seconds, self.rate, self.workers = host, url, seconds, rate, workers
        self.results: list[list] = []

    def __enter__(self) -> Load:
        self.dir = tempfile.mkdtemp(prefix="load-")
        self.stop = os.path.join(self.dir, "stop")
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.host.netns}", sys.executable, "-m", "sandbox.load",
             self.url, str(self.seconds), self.stop, str(self.rate), str(self.workers)],
            cwd=REPO, stdout=subprocess.PIPE, text=True)
        time.sleep(0.3)   # it is polling before the block's work starts
        return self

    def __exit__(self, *exc) -> None:
        Path(self.stop).touch()
        out, _ = self.proc.communicate(timeout=60)
        self.results = json.loads(out)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if r[0] != 200)

    @property
    def reopened(self) -> int:
        return sum(1 for r in self.results if r[4])

    @property
    def answers(self) -> Counter:
        """How many 200 answers each body (release) gave."""
        return Counter(r[1] for r in self.results if r[0] == 200)

    def latency(self, q: float) -> float:
        """The ``q`` quantile (0.5, 0.99) of the requests' seconds."""
        times = sorted(r[2] for r in self.results)
        return statistics.quantiles(times, n=100, method="inclusive")[round(q * 100) - 1] if len(times) > 1 else 0.0

    def summary(self) -> str:
        errors = Counter(str(r[0]) for r in self.results if r[0] != 200)
        return (f"{len(self.results)} requests, {self.failed} failed {dict(errors)}, {self.reopened} reopened, "
                f"answers {dict(self.answers)}")


if __name__ == "__main__":
    url, seconds, stopfile, rate, workers = sys.argv[1:6]
    print(json.dumps(poll(url, float(seconds), stopfile, float(rate), int(workers))))
