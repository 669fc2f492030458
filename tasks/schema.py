"""fab schema: the JSON Schema of hosts.yml, for editors (VS Code's YAML extension and others check and complete
hosts.yml with it) and for scripts that write inventories."""
from __future__ import annotations

import json

from .core.cli import command


@command({"fragment": "the schema of a hosts.d/*.yml file (no registry: it comes from hosts.yml)"})
def schema(c, fragment=False):
    """Print the JSON Schema of hosts.yml (schema/hosts.schema.json is this output, committed)."""
    from .core import hostsfile  # pydantic: only this task and the inventory need it

    print(json.dumps(hostsfile.schema(fragment), indent=2))
