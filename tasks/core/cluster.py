"""A Docker Swarm of inventory hosts (``swarm:`` in hosts.yml): which hosts manage it and which only run its
tasks. Built by ``inventory`` once every host is known (groups resolved to hosts); nothing here connects."""
from __future__ import annotations

from dataclasses import dataclass

# The node label the tool writes on every node it joins: the inventory host the node is (Docker names nodes
# after their hostname, which says nothing to hosts.yml).
HOST_LABEL = "fab.host"


@dataclass(frozen=True)
class Swarm:
    managers: tuple[str, ...]     # host names, in order: the first creates the swarm
    workers: tuple[str, ...]

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.managers + self.workers

    def role(self, host: str) -> str | None:
        """"manager", "worker", or None for a host outside the swarm."""
        return "manager" if host in self.managers else "worker" if host in self.workers else None

    @property
    def quorum(self) -> int:
        """The managers that must be up for the swarm to change anything (Raft's majority)."""
        return len(self.managers) // 2 + 1
