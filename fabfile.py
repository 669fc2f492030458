"""Fabric entry point: only wires the tasks in (the same collection the installed `fab-vps` command runs).
The code is in tasks/; `fab --list` shows them all."""
from tasks.main import namespace  # noqa: F401  (Fabric loads the collection called namespace)
