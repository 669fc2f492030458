"""Fabric entry point: only wires the tasks in (the same collection the installed `fab-vps` command runs).
The code is in tasks/; `fab --list` shows them all."""
import fabric.main

from tasks.main import HostsAreNames, namespace, usage_errors_exit_2  # noqa: F401  (Fabric loads `namespace`)

# `fab -H a,b TASK` selects hosts of hosts.yml, once, like --host a,b (Fabric would run TASK once per address).
fabric.main.program.executor_class = HostsAreNames
# Bad task arguments exit 2 with the usage line (the core flags before the task are parsed before this file loads).
usage_errors_exit_2(fabric.main.program)
