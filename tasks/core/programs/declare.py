"""What the programs that change a host declare to the library: the operator's intent (the release, who, the
audit record) and the stacks and databases they act on, in their configured order."""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from ..model import Stack
from ..target import Target
from .protocol import Program


@dataclass(frozen=True)
class Untouched:
    """What the stacks a run leaves alone run: their apps' pins (state/current) and their files' hashes (the
    running release's record). Recorded with the release, never pulled or brought up, so that a release names
    the whole system after it, not only the part a ``--stack`` deploy touched."""
    pins: dict = field(default_factory=dict)    # app (or binary stack) -> tag@digest
    files: dict = field(default_factory=dict)   # configuration file (as the record names it) -> sha256
    infra: dict = field(default_factory=dict)   # "stack/service" -> image@digest of its services that pin nothing


@dataclass(frozen=True)
class Intent:
    """What the operator asked for, with who and when, as recorded in history and audit."""
    action: str                 # deploy | rollback | migrate-layout | rotate-token | backup | restore
    release: str                # new release id
    tag: str
    by: str
    origin: str
    pins: dict | None = None    # app -> tag@digest to run (a rollback's, or the apps a deploy keeps as they run)
    history_sha: str | None = None  # the history it was chosen from (a rollback, a partial deploy) must not have changed
    tags: dict | None = None    # app -> tag to pull now (a deploy)
    ref: str | None = None      # move repo/ to this git ref (deploy --ref) or commit (a rollback) first
    artifacts: dict | None = None  # binary stack -> sha256 of the file uploaded for it (a deploy --artifact)
    fleet: str = ""             # the fleet run this is part of (its id is in the lock it holds on every host)
    untouched: Untouched = field(default_factory=Untouched)   # what the stacks it leaves alone run: recorded with it
    infra: dict | None = None   # "stack/service" -> image@digest a rollback runs again (what its release recorded)
    refresh: bool = False       # deploy --refresh infra: the images of the stacks that pin nothing pulled again
    jobs: bool = True           # run the stacks' run-once jobs (hosts.yml's jobs:; a rollback only with --jobs)

    def meta(self) -> str:
        """The fixed part of the history and audit records, JSON-encoded here (no shell escaping games)."""
        return json.dumps({"release": self.release, "tag": self.tag, "action": self.action,
                           "by": self.by, "from": self.origin}, separators=(",", ":"))[1:-1]

    def head(self) -> dict:
        """The program variables every recording program uses (the stacks it leaves alone's services that pin
        nothing as JSON members, encoded here)."""
        kept = json.dumps(self.untouched.infra, separators=(",", ":"), sort_keys=True)[1:-1]
        return {"ACTION": self.action, "RELEASE": self.release, "TAG": self.tag, "BY": self.by,
                "META": self.meta(), **({"FLEET": self.fleet} if self.fleet else {}),
                **({"UNTOUCHED_INFRA": kept} if kept else {})}


def add_stacks(prog: Program, target: Target, stacks: list[Stack]) -> Program:
    """Declare ``stacks`` (in order) to the library's apply and restore."""
    for s in stacks:
        if s.binary:
            b = s.binary
            prog.step("add_binary", s.name, b.path, b.releases, b.unit, b.owner or "", b.mode, b.keep, s.wait,
                      s.health or "")
            continue
        prog.step("add_stack", s.name, target.compose(s), target.env_file(s), target.project(s), s.wait, s.health or "",
                  " ".join(f"{a.name}={a.tag_var}" for a in s.apps), " ".join(f"{svc}={n}" for svc, n in s.scale))
        if target.system.engine == "swarm":
            prog.step("on_swarm", s.name)
        if s.start_first:
            sf = s.start_first
            prog.step("start_first", s.name, sf.drain, sf.batch, *sf.shared_volumes)
            if sf.nginx:
                prog.step("nginx_pool", s.name, sf.nginx.service, target.upstreams(s),
                          *(f"{svc}={port}" for svc, port in sf.nginx.upstreams))
    return prog


def add_jobs(prog: Program, stacks: list[Stack]) -> Program:
    """Declare the run-once jobs of ``stacks`` (in their order): apply runs each ``before`` one just before its
    stack is switched, go_live the ``after`` ones once every stack is healthy."""
    for s in stacks:
        for j in s.jobs:
            prog.step("add_job", s.name, j.name, j.service, j.when, j.timeout, shlex.join(j.entrypoint), *j.command)
    return prog


def placeholder_words(stacks: list[Stack]) -> list[str]:
    """What the library's placeholders_left reads: each stack's configured template (template:STACK=NAME) and
    the values hosts.yml lists as placeholders for it (value:STACK=VALUE)."""
    return [*[f"template:{s.name}={s.env_template}" for s in stacks if s.env_template],
            *[f"value:{s.name}={v}" for s in stacks for v in s.placeholders]]


def add_waves(prog: Program, target: Target, stacks: list[Stack]) -> Program:
    """Declare which of ``stacks`` come up at once (the system's ``together:``), for apply."""
    names = [s.name for s in stacks]
    for wave in target.system.together:
        here = [n for n in wave if n in names]
        if len(here) > 1:
            prog.step("together", *here)
    return prog


def add_databases(prog: Program, target: Target, stacks: list[Stack]) -> Program:
    """Declare the database ``stacks`` (in order) to the library."""
    swarm = ["swarm"] if target.system.engine == "swarm" else []
    for s in stacks:
        db = s.database
        prog.step("add_database", s.name, target.project(s), db.service, db.user or "", " ".join(db.databases), *swarm)
    return prog


def add_files(prog: Program, target: Target) -> Program:
    """Declare the system's files and volumes (``backup: {paths, volumes}``) to the library's files backup
    (which refuses a path holding or inside the token file, SECRETS, or the secrets' folder, KEYS)."""
    prog.head.update(SECRETS=target.secrets, KEYS=target.keys)
    for part, source in target.file_parts():
        if isinstance(source, str):
            prog.step("add_path", part, source)
        else:
            prog.step("add_volume", part, *source)
    return prog
