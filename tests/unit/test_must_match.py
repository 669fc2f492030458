"""hosts.yml's must_match: (fab env-check): built as written, every hostile value refused with its line."""
import pytest

from tasks.core import inventory

from .test_inventory import GOOD, error_of, write


def system_with(keys: str) -> str:
    return GOOD.replace("    stacks:\n", f"    {keys}\n    stacks:\n", 1)


def test_groups_are_built_as_written(tmp_path):
    path = write(tmp_path, system_with("must_match: [[infra:A_B, ems:DB_PASSWORD, ems:x1]]"))
    assert inventory.load(path).host("vps1").systems[0].must_match == (("infra:A_B", "ems:DB_PASSWORD", "ems:x1"),)


@pytest.mark.parametrize("keys, message", [
    ("must_match: [[infra:A]]", "at least 2 items"),
    ("must_match: [infra:A, ems:B]", "must_match.0"),
    ("must_match: [[infra:A, 'ems:B; reboot']]", "must be STACK:KEY"),
    ("must_match: [[infra:A, ems]]", "must be STACK:KEY"),
    ("must_match: [[infra:A, '../x:B']]", "must be STACK:KEY"),
    ("must_match: [[infra:A, 'ems:1B']]", "must be STACK:KEY"),
    ("must_match: [[infra:A, nowhere:B]]", "the system has no stack 'nowhere'"),
    ("must_match: {a: b}", "must_match"),
])
def test_a_hostile_must_match_is_refused_with_its_line(tmp_path, keys, message):
    msg = error_of(write(tmp_path, system_with(keys)))
    assert "hosts.yml:4" in msg and message in msg, msg
