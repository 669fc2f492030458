"""The tasks as one collection, and the console command that runs them from any folder with a hosts.yml
(``pip install .`` installs it as ``fab-vps``): Fabric's own ``fab`` program with this collection built in,
so every option ``fab`` has (``-H``, ``--list``, ``--help TASK``) works the same."""
from __future__ import annotations

from fabric import Config, Executor
from fabric import __version__ as fabric_version
from fabric.main import Fab
from invoke import Collection

from . import deploy, migrate, releases, rollback, setup, status, token, trust, unlock

VERSION = "0.5.0"

namespace = Collection(deploy.deploy, rollback.rollback, releases.releases, status.status, unlock.unlock,
                       trust.trust_host, setup.setup, migrate.migrate_layout, token.rotate_token, token.token_status)


class FabVps(Fab):
    def print_version(self):
        super().print_version()  # name + version, then Paramiko and Invoke
        print(f"Fabric {fabric_version}")


program = FabVps(name="fab-vps", version=VERSION, namespace=namespace, executor_class=Executor, config_class=Config)
