"""What ``fab backup`` saves of a system and how long it keeps it: the retention counts, a backup before each
deploy, and the files and named volumes copied beside the database dumps. Built by ``backupspecs``' BackupSpec;
``Target.file_parts`` turns the plan into paths on one host."""
from __future__ import annotations

from dataclasses import dataclass

# The series of a system's file backups (files-<UTC time>), beside one series per database stack: a stack
# cannot take this name while the system backs up files.
FILES = "files"


@dataclass(frozen=True)
class Retention:
    """How many backups to keep per series: the ``last`` newest, and the newest of each of the last ``daily``
    days, ``weekly`` ISO weeks and ``monthly`` months that have one (a backup may count for several; restic's
    rules). The newest is always kept."""
    last: int
    daily: int
    weekly: int
    monthly: int

    def __str__(self) -> str:
        return f"keep last {self.last}, daily {self.daily}, weekly {self.weekly}, monthly {self.monthly}"


@dataclass(frozen=True)
class BackupPlan:
    """A system's backups: ``paths`` (folders or files, relative to <root>/<system> or absolute) and
    ``volumes`` (named volumes, as the compose files name them) are copied into one verified backup per run,
    the databases dumped in the same run; then sent to each ``offsite`` restic repository."""
    keep: Retention
    before_deploy: bool = False          # a verified dump of every database before each deploy, in its release
    paths: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    offsite: tuple[str, ...] = ()       # restic repositories each run's verified backups are sent to
    max_age: int | None = None          # seconds: an older newest backup (or copy) makes fab backups exit 8

    @property
    def has_files(self) -> bool:
        return bool(self.paths or self.volumes)
