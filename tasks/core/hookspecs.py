"""The shape of hosts.yml's ``hooks:``: commands run on the operator's machine around deploy, rollback and
backup (see ``hooks``); builds ``Hooks``."""
from typing import Literal

from pydantic import Field
from pydantic import model_validator as checks

from .hooks import Hooks
from .notify import Notify
from .values import ApiUrl, EnvVar, Spec, Text, Whole, refuse


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


class NotifySpec(Spec):
    """A JSON POST (with a Slack-compatible text field) from your machine when a deploy, rollback or backup ends
    as on: asks; never a secret or a .env value in it."""
    webhook: ApiUrl | None = Field(None, description="the receiver's URL (https://; http:// only to 127.0.0.1)")
    webhook_env: EnvVar | None = Field(None, description="or the environment variable holding it (a Slack URL is "
                                                         "a credential: keep it out of hosts.yml)")
    on: list[Literal["failure", "warning", "success"]] = Field(
        ["failure", "warning"], description="which ends are sent: a failure, a warning (exit 8: a token expiring "
                                            "soon), a success")
    timeout: Whole(1, 60) = Field(10, description="seconds each try may take")
    retries: Whole(0, 5) = Field(2, description="tries after the first (1 s, 2 s, ... apart)")

    @checks(mode="after")
    def _one_url(self):
        if (self.webhook is None) == (self.webhook_env is None):
            raise refuse("needs one of webhook: URL and webhook_env: VARIABLE")
        if not self.on or len(set(self.on)) != len(self.on):
            raise refuse("on: lists failure, warning and/or success, each once", "on")
        return self

    def build(self) -> Notify:
        return Notify(self.webhook, self.webhook_env, tuple(self.on), self.timeout, self.retries)


def build(hooks: HooksSpec | None, notify: NotifySpec | None) -> Hooks | None:
    """What runs around a run: hosts.yml's hooks and its notification (None: neither is set)."""
    if hooks is None and notify is None:
        return None
    hooks = hooks or HooksSpec()
    return Hooks(hooks.pre_deploy, hooks.post_deploy, hooks.on_failure, hooks.timeout, notify and notify.build())
