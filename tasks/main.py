"""The tasks as one collection, and the console command that runs them from any folder with a hosts.yml
(``pip install .`` installs it as ``fab-vps``): Fabric's own ``fab`` program with this collection built in,
so every option ``fab`` has (``-H``, ``--list``, ``--help TASK``) works the same."""
from __future__ import annotations

import functools

from fabric import Config, Executor
from fabric import __version__ as fabric_version
from fabric.main import Fab
from invoke import Collection
from invoke import __version__ as invoke_version
from invoke.exceptions import Exit, ParseError
from paramiko import __version__ as paramiko_version

from . import (
    __version__,
    backup,
    backups,
    bootstrap,
    deploy,
    doctor,
    envfiles,
    exec,
    logs,
    migrate,
    offsite,
    prune,
    recover,
    releases,
    rollback,
    schema,
    setup,
    status,
    swarm,
    token,
    trust,
    unlock,
)

namespace = Collection(deploy.deploy, rollback.rollback, releases.releases, status.status, unlock.unlock,
                       trust.trust_host, bootstrap.bootstrap, setup.setup, migrate.migrate_layout, token.rotate_token,
                       token.token_status, backup.backup, backups.backups, backup.restore, offsite.backup_key,
                       offsite.backup_check, recover.recover, logs.logs, exec.exec_, prune.prune,
                       doctor.doctor, envfiles.env_check, envfiles.env_set, swarm.swarm, schema.schema)


class HostsAreNames(Executor):
    """Fabric's executor, except that ``-H a,b`` names hosts of hosts.yml: a task runs once, as with
    ``--host a,b`` (one transaction over them, names checked against the inventory), instead of once per
    address Fabric would dial with a Connection the tool does not use."""

    def expand_calls(self, calls, apply_hosts=True):
        names = self.core[0].args.hosts.value
        expanded = self._tasks_only(calls, apply_hosts and not names)
        if not (apply_hosts and names):
            return expanded
        for call in expanded:
            if "host" in call.kwargs:
                if call.kwargs["host"]:
                    raise Exit("error: give either -H or --host, not both", code=2)
                call.kwargs["host"] = names
        return expanded

    def _tasks_only(self, calls, apply_hosts):
        """Fabric's calls without its own use of the words after ``--`` (it would run them on each -H address
        with a plain shell): they are fab exec's command, and nothing else's."""
        remainder, self.core.remainder = self.core.remainder, ""
        try:
            if remainder and [c.task.name for c in calls] != ["exec"]:
                raise Exit("error: words after -- are the command of 'fab exec' (fab exec --host NAME --stack S "
                           "-- COMMAND...), and of no other task", code=2)
            return super().expand_calls(calls, apply_hosts=apply_hosts)
        finally:
            self.core.remainder = remainder


def usage_errors_exit_2(program) -> None:
    """Bad arguments exit 2 with the usage line, like every other bad input (Invoke exits 1 on a parse error, and
    a word where a number belongs, `fab deploy -t v1`, ended in a traceback)."""
    def guarded(parse):
        @functools.wraps(parse)
        def wrapper(*args, **kwargs):
            try:
                return parse(*args, **kwargs)
            except (ParseError, ValueError) as e:
                what = f"{e} (an option that takes a number was given something else)" if isinstance(e, ValueError) \
                    else e
                name = "fab-vps" if isinstance(program, FabVps) else "fab"
                raise Exit(f"error: {what}\nusage: {name} TASK [--OPTION VALUE]... ('{name} --help TASK' shows its "
                           "options)", code=2) from None
        return wrapper
    program.parse_core = guarded(program.parse_core)
    program.parse_tasks = guarded(program.parse_tasks)


class FabVps(Fab):
    """Fabric's `fab`, naming itself and what it runs on (what an operator pastes into a bug report)."""

    @property
    def _remainder_only(self):
        """Never Fabric's taskless `fab -H x -- command` (a plain shell on each address, any host key accepted):
        a command runs through fab exec."""
        return False

    def print_version(self):
        for name, number in (("fab-vps", __version__), ("Fabric", fabric_version), ("Paramiko", paramiko_version),
                             ("Invoke", invoke_version)):
            print(f"{name} {number}")


program = FabVps(name="fab-vps", version=__version__, namespace=namespace, executor_class=HostsAreNames,
                 config_class=Config)
usage_errors_exit_2(program)
