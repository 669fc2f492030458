"""hosts.yml's published JSON Schema (what editors check and complete with) and the models it comes from: the
committed schema is the models' schema, every inventory of the repo validates against it, and the errors of a
file are all reported at once, each with file:line. Unit tier."""
import json
import re
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from tasks.core import hostsfile, inventory
from tasks.core.errors import BAD_INPUT, ToolError

REPO = Path(__file__).resolve().parents[2]
MAIN = json.loads((REPO / "schema" / "hosts.schema.json").read_text())
FRAGMENT = json.loads((REPO / "schema" / "hosts.d.schema.json").read_text())
INVENTORIES = [REPO / "hosts.yml", *sorted((REPO / "examples").glob("*/*.yml"))]
INVENTORIES = [p for p in INVENTORIES if "systems" in (yaml.safe_load(p.read_text()) or {})]


def test_the_committed_schema_is_the_models_schema():
    """Regenerate with: fab-vps schema > schema/hosts.schema.json; fab-vps schema --fragment > schema/hosts.d.schema.json"""
    assert MAIN == json.loads(json.dumps(hostsfile.schema())), "schema/hosts.schema.json is stale"
    assert FRAGMENT == json.loads(json.dumps(hostsfile.schema(fragment=True))), "schema/hosts.d.schema.json is stale"


@pytest.mark.parametrize("path", INVENTORIES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_inventory_of_the_repo_validates_against_the_schema(path):
    data = yaml.safe_load(path.read_text())
    schema = MAIN if "registry" in data else FRAGMENT
    jsonschema.Draft202012Validator(schema).validate(data)
    (hostsfile.HostsFile if "registry" in data else hostsfile.Fragment).model_validate(data)
    assert "yaml-language-server: $schema=" in path.read_text().splitlines()[0], "editors find the schema"


def test_there_are_inventories_to_check():
    assert len(INVENTORIES) >= 5


GOOD = {"registry": {"server": "ghcr.io", "username": "u"},
        "systems": {"s": {"stacks": {"app": {"compose": "repo/c.yml", "image": "u/app"}}}},
        "hosts": {"vps1": {"address": "203.0.113.10", "systems": ["s"]}}}


@pytest.mark.parametrize("path, value", [
    (("hosts", "vps1", "port"), "22"), (("hosts", "vps1", "colour"), "red"), (("hosts", "vps1", "root"), "/srv\t"),
    (("systems", "s", "stacks", "app", "wait"), 0), (("systems", "s", "stacks", "app", "rollout"), "blue-green"),
    (("systems", "s", "stacks", "app", "image"), "u/app:v1"), (("registry", "server"), "-x"),
    # what a terminal would not show as it is (a right-to-left override, a zero-width space, a C1 control):
    (("hosts", "vps1", "address"), "vps\u202e1"), (("hosts", "vps1", "root"), "/srv/\u200bdata"),
    (("systems", "s", "stacks", "app", "compose"), "repo/c\x9b.yml"), (("hosts", "vps1", "identity"), "\ufeffkey"),
    (("hosts", "vps1", "sudo"), "yes"), (("hosts", "vps1", "user"), "-oProxyCommand=x"),
])
def test_the_schema_and_the_models_refuse_the_same_values(tmp_path, path, value):
    data = json.loads(json.dumps(GOOD))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert not jsonschema.Draft202012Validator(MAIN).is_valid(data), "an editor would accept it"
    file = tmp_path / "hosts.yml"
    file.write_text(yaml.safe_dump(data))
    with pytest.raises(ToolError) as e:
        inventory.load(file)
    assert e.value.code == BAD_INPUT


def test_every_error_of_a_file_is_reported_at_once_in_file_order(tmp_path):
    file = tmp_path / "hosts.yml"
    file.write_text(textwrap.dedent("""\
        registry: {server: ghcr.io, username: u}
        systems:
          s:
            stacks:
              app: {compose: repo/c.yml, image: u/app, wiat: 30}
              db: {compose: /etc/c.yml}
        hosts:
          vps1: {address: 203.0.113.10, systems: [s], port: '22'}
        """))
    with pytest.raises(ToolError) as e:
        inventory.load(file)
    lines = str(e.value).splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [f"{file}:5", f"{file}:6", f"{file}:8"], lines
    assert "unknown key 'wiat' (did you mean 'wait'?)" in lines[0]
    assert "inside the system's folder" in lines[1] and "port must be a whole number" in lines[2]


@pytest.mark.parametrize("key, value", [
    ("root", "/srv\t"), ("root", " /srv"), ("root", "/srv\n/etc"), ("root", "/s\x1brv"), ("address", "10.0.0.1 "),
    ("identity", "~/.ssh/key\r"),
])
def test_paths_and_names_with_control_characters_or_surrounding_spaces_are_refused(tmp_path, key, value):
    """A tab after /srv once merged the fields of a shell read: migrate-layout then copied, and --remove-old
    deleted, all of /srv (issue 20)."""
    data = json.loads(json.dumps(GOOD))
    data["hosts"]["vps1"][key] = value
    file = tmp_path / "hosts.yml"
    file.write_text(yaml.safe_dump(data))
    with pytest.raises(ToolError) as e:
        inventory.load(file)
    assert f"{file}:" in str(e.value) and f"hosts.vps1.{key}" in str(e.value)


def test_legacy_paths_refuse_a_trailing_tab(tmp_path):
    data = json.loads(json.dumps(GOOD))
    data["hosts"]["vps1"]["legacy"] = {"s": {"repo": "/opt/ems", "uploads": "/srv\t"}}
    file = tmp_path / "hosts.yml"
    file.write_text(yaml.safe_dump(data))
    with pytest.raises(ToolError, match="legacy.s.uploads '/srv\\\\t' must be a path on one line"):
        inventory.load(file)


def _defaults() -> dict[str, set]:
    """Every key's default in the models (a key of several models may have several: a stack's wait)."""
    out: dict[str, set] = {}
    for model in {*hostsfile.Spec.__subclasses__(), *hostsfile.HostsFile.__subclasses__(), hostsfile.HostsFile}:
        for name, f in model.model_fields.items():
            if not f.is_required() and f.default is not None:
                out.setdefault(name, set()).add(json.dumps(f.default if not hasattr(f.default, "model_dump")
                                                           else f.default.model_dump()))
    return out


def test_the_defaults_the_docs_give_are_the_models_defaults():
    """The defaults lived in three places (model, inventory, README) and disagreed (a binary's wait): the
    docs' example says `# default` only where the models agree."""
    defaults = _defaults()
    said = [(m[1], yaml.safe_load(m[2])) for m in re.finditer(r"^\s+(\w+): (.+?)\s+# defaults?\b", DOC, re.M)]
    assert len(said) >= 9
    for key, value in said:
        assert json.dumps(value) in defaults.get(key, set()), f"docs/hosts-yml.md says {key}: {value!r} by default"


DOC = (REPO / "docs" / "hosts-yml.md").read_text()
