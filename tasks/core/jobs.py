"""A stack's run-once jobs (hosts.yml's ``jobs:``): a schema migration run with the new release's image before
any container of its stack is replaced (``when: before``), or a task run once the whole release is healthy
(``when: after``). Each runs as ``docker compose run --rm`` of one of the stack's services, with the stack's
environment and this release's pins; its failure fails the release (see sh/jobs.sh)."""
from __future__ import annotations

from dataclasses import dataclass

WHEN = ("before", "after")


@dataclass(frozen=True)
class Job:
    name: str                   # unique in its stack: what the release records and the output names
    service: str                # the compose service whose image, environment, volumes and networks it uses
    command: tuple[str, ...]    # its words, run without a shell (``[sh, -c, "..."]`` asks for one)
    when: str                   # before | after
    timeout: int                # seconds; then its container is removed and the job has failed
    entrypoint: tuple[str, ...] = ()   # instead of the image's (one that ignores its arguments and starts the app)
