"""A fleet run's event pump: worker threads only run programs and post events here; the main thread shows them
(``ui.FleetView``), so the terminal has one writer."""
from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from .target import Target
from .ui import EventDisplay, FleetView


class Events:
    """Worker threads only run programs and post events here; the main thread shows them (``ui.FleetView``),
    so the terminal has one writer."""

    def __init__(self, as_json: bool):
        self.queue: queue.Queue = queue.Queue()
        self.as_json = as_json
        self.view: FleetView | None = None   # opened when the changes start (an upload's progress bar comes before)

    def open(self) -> None:
        self.view = FleetView(self.as_json)

    def close(self) -> None:
        if self.view:
            self.view.close()

    def post(self, event: str, **fields) -> None:
        self.queue.put({"event": event, **fields})

    def display(self, target: Target) -> EventDisplay:
        """Where one host's program reports its steps."""
        return EventDisplay(target.host.name, target.system.name, self.queue.put)

    def drain(self) -> None:
        while True:
            try:
                event = self.queue.get_nowait()
            except queue.Empty:
                break
            if self.view:
                self.view.show(event)
        if self.view:
            self.view.tick()

    def parallel(self, items: list, work: Callable, width: int) -> list:
        """``work(item)`` for each item on at most ``width`` threads; this thread shows their events meanwhile."""
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=max(1, min(width, len(items)))) as pool:
            futures = [pool.submit(work, item) for item in items]
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                self.drain()
        self.drain()
        return [f.result() for f in futures]
