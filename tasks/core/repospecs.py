"""The shape of a system's ``repo:`` in hosts.yml: where `fab setup` clones its repo/ from; builds ``model.Repo``."""
from pydantic import Field
from pydantic import model_validator as checks

from . import grammar, model
from .values import HostKey, Matching, Spec, refuse


class RepoSpec(Spec):
    """Where `fab setup` clones the system's repo/ from: over SSH with a deploy key the VPS makes for itself
    (its public half printed to add as a read-only deploy key), the git server's host key pinned here."""
    url: Matching(grammar.GIT_URL, "must be git@host:path, ssh://[user@]host[:port]/path or https://host/path") = \
        Field(description="the repository, e.g. git@github.com:edumigsoft/ems.git")
    ref: Matching(grammar.GIT_REF, "is not a branch, tag or commit name") = Field(
        "main", description="what setup checks out (deploy --ref moves it later)")
    git_host_key: HostKey | None = Field(
        None, description="the git server's public host key, TYPE BASE64 (required over SSH: the VPS trusts no "
                          "other; GitHub publishes its keys)")

    @property
    def over_ssh(self) -> bool:
        return not self.url.startswith("https://")

    @checks(mode="after")
    def _pinned(self):
        if self.over_ssh and not self.git_host_key:
            raise refuse("needs git_host_key: the git server's host key (TYPE BASE64), checked against what its "
                         "owner publishes", "git_host_key")
        if not self.over_ssh and self.git_host_key:
            raise refuse("git_host_key is for an SSH url (https checks the server's certificate)", "git_host_key")
        return self

    def build(self) -> model.Repo:
        if not self.over_ssh:
            return model.Repo(self.url, self.ref)
        parts = grammar.GIT_URL.fullmatch(self.url)
        host, port = parts["host"] or parts["shost"], parts["port"]
        name = f"[{host}]:{port}" if port and port != "22" else host
        return model.Repo(self.url, self.ref, f"{name} {self.git_host_key}")
