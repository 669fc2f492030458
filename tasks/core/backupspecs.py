"""The shape of a system's ``backup:`` in hosts.yml: retention, a backup before each deploy, the files and
volumes beside the dumps, the copies off the VPS and the age a monitor accepts; builds ``BackupPlan``."""
from pydantic import Field, StrictBool
from pydantic import model_validator as checks

from . import grammar
from .backupplan import BackupPlan, Retention
from .values import BackupPath, Matching, Names, Spec, Whole, refuse


class RetentionSpec(Spec):
    """How many backups to keep per stack (restic's rules; the newest is always kept)."""
    last: Whole(0, 1000) = 3
    daily: Whole(0, 1000) = 7
    weekly: Whole(0, 1000) = 4
    monthly: Whole(0, 1000) = 6


class BackupSpec(Spec):
    """What `fab backup` saves besides the databases, and how many backups it keeps."""
    before_deploy: StrictBool = Field(False, description="a verified dump of every database before each deploy")
    keep: RetentionSpec = RetentionSpec()
    paths: list[BackupPath] = Field([], description="folders or files copied into each backup: relative to "
                                    "<root>/<system> (data/uploads) or absolute (/root/infra/letsencrypt)")
    volumes: Names(grammar.SAFE_NAME, "volume names") = Field(
        [], description="named volumes copied into each backup, as the compose files name them (storage)")
    offsite: Names(grammar.OFFSITE, "restic repositories: sftp:user@host:/path, rest:https://host/path, "
                   "s3:https://host/bucket, local:/path (no password in them)") = Field(
        [], description="restic repositories each verified backup is sent to, encrypted (the key stays on the VPS)")
    max_age: Matching(grammar.AGE, "is not an age such as 26h, 90m or 8d (1m to 400d)") | None = Field(
        None, description="fab backups exits 8 when the newest verified backup of a series, or copy in a "
        "repository, is older (for a schedule's monitor)")

    @checks(mode="after")
    def _apart(self):
        for i, path in enumerate(self.paths):
            if self.paths.index(path) != i:
                raise refuse(f"{path!r} is listed twice", "paths", i)
            inside = next((p for p in self.paths[:i] if nested(p, path) or nested(path, p)), None)
            if inside:
                raise refuse(f"{path!r} and {inside!r}: one holds the other (list the outer one)", "paths", i)
        for key in ("volumes", "offsite"):
            values = getattr(self, key)
            for i, value in enumerate(values):
                if values.index(value) != i:
                    raise refuse(f"{value!r} is listed twice", key, i)
        if self.max_age and grammar.seconds(self.max_age) > grammar.seconds("400d"):
            raise refuse(f"{self.max_age!r} is more than 400 days", "max_age")
        return self

    def build(self) -> BackupPlan:
        keep = self.keep
        return BackupPlan(Retention(keep.last, keep.daily, keep.weekly, keep.monthly), self.before_deploy,
                          tuple(self.paths), tuple(self.volumes), tuple(self.offsite),
                          grammar.seconds(self.max_age) if self.max_age else None)


def nested(a: str, b: str) -> bool:
    """``a`` is ``b`` or a folder above it (both relative, or both absolute)."""
    return a == b or b.startswith(a.rstrip("/") + "/")
