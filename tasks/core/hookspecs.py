"""The shape of hosts.yml's ``hooks:``: commands run on the operator's machine around deploy, rollback and
backup (see ``hooks``); builds ``Hooks``."""
from pydantic import Field

from .hooks import Hooks
from .values import Spec, Text, Whole


class HooksSpec(Spec):
    """Commands run by sh on your machine (or CI), in hosts.yml's folder, around `fab deploy`, `rollback` and
    `backup`, with FAB_ACTION, FAB_RELEASE, FAB_HOSTS, FAB_SYSTEMS, FAB_TAGS (and after the run FAB_RESULT,
    FAB_EXIT, FAB_ERROR) in their environment."""
    pre_deploy: Text | None = Field(None, description="before anything changes; exiting non-zero (or timing out) "
                                                      "stops the run: exit 2, nothing changed")
    post_deploy: Text | None = Field(None, description="after a run that succeeded; its failure is said, the run "
                                                       "stays good")
    on_failure: Text | None = Field(None, description="after a run that failed (FAB_EXIT: its exit code)")
    timeout: Whole(1, 3600) = Field(60, description="seconds each hook may run; then it is stopped and counts as "
                                                    "failed")

    def build(self) -> Hooks:
        return Hooks(self.pre_deploy, self.post_deploy, self.on_failure, self.timeout)
