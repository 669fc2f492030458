"""The shape of hosts.yml's ``swarm:``: the Docker Swarm `fab swarm init` makes of hosts of the file."""
from pydantic import Field

from .values import Placement, Spec


class SwarmSpec(Spec):
    """The Docker Swarm that `fab swarm init` makes of hosts of this file: its managers (an odd number keeps a
    quorum when one is lost: 3 survive 1) and its workers."""
    managers: Placement = Field(description="hosts or groups; the first creates the swarm")
    workers: Placement = Field([], description="hosts or groups that run tasks but hold no copy of the cluster's "
                                               "state")
