"""The one exception the tool raises for expected failures, and the exit codes scripts and CI can rely on."""
from __future__ import annotations

# Exit codes (documented in docs/tasks.md; stable for scripts and monitors).
FAILED = 1          # unexpected failure (a bug, or something the tool did not foresee)
BAD_INPUT = 2       # bad inventory, arguments, tag, secrets file: nothing was changed
BUSY = 3            # another deploy holds the lock, or the history changed under us: nothing was changed
REMOTE_FAILED = 4   # login or pull failed before anything restarted: nothing that runs was changed
ROLLED_BACK = 5     # the new release failed its health gate and the previous good release is back
NEEDS_ATTENTION = 6  # a release failed and the previous good one could not be restored (or there was none)
UNREACHABLE = 7     # SSH connection failed or the host key is unknown or changed
WARNING = 8         # something works but needs attention soon: a token expiring or lacking read:packages, a backup
                    # older than backup: {max_age}
NOT_STARTED = 9     # compose could not start the new release (a conflict, a missing image): the previous is back
BACKUP_FAILED = 10  # a backup, drill or restore failed: the live databases and the kept backups are as they were
FOUND_BROKEN = 11   # fab doctor found something broken (a FAIL): its fix is printed beside it
JOB_FAILED = 12     # a run-once job failed: a `before` one switched nothing, an `after` one's release was put back


class ToolError(Exception):
    """An expected failure with a message written for the operator and an exit code for scripts."""

    def __init__(self, message: str, code: int = FAILED):
        super().__init__(message)
        self.code = code


# From least to most serious: what a run over several hosts exits with when they ended differently.
SEVERITY = (WARNING, FOUND_BROKEN, BAD_INPUT, BUSY, UNREACHABLE, REMOTE_FAILED, BACKUP_FAILED, NOT_STARTED, ROLLED_BACK,
            FAILED, NEEDS_ATTENTION)


def worst(codes) -> int:
    """The most serious of ``codes`` (0 when every one is 0)."""
    failed = [c for c in codes if c]
    return max(failed, key=lambda c: SEVERITY.index(c) if c in SEVERITY else len(SEVERITY)) if failed else 0
