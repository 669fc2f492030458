"""Fabric entry point: only wires the tasks in. The code is in tasks/; `fab --list` shows them all."""
from tasks.deploy import deploy  # noqa: F401
from tasks.hostkey import trust_host  # noqa: F401
from tasks.layout import migrate_layout, setup  # noqa: F401
from tasks.lock import unlock  # noqa: F401
from tasks.rollback import rollback  # noqa: F401
from tasks.show import releases, status  # noqa: F401
from tasks.token import rotate_token, token_status  # noqa: F401
