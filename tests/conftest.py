import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
TIERS = ("unit", "shell", "e2e")


def pytest_collection_modifyitems(items):
    """Each test is marked with its tier (its folder): `scripts/test -m shell` runs one tier alone."""
    for item in items:
        tier = Path(item.fspath).parent.name
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
