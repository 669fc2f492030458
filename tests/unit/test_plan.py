"""Command building: tags validated, every value quoted, programs that bash can parse, in inventory order."""
import subprocess
from pathlib import Path

import pytest

from tasks import inventory, plan
from tasks.errors import BAD_INPUT, ToolError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def host():
    return inventory.load(REPO / "hosts.yml").host("vps1")


def intent(**kw):
    base = dict(action="deploy", release="20261123T000000Z-abcd", tag="v1.4.3", by="ana@laptop", origin="laptop")
    return plan.Intent(**{**base, **kw})


@pytest.mark.parametrize("tag", ["v1.4.3", "latest", "1", "_x", "A-b.c_d", "v" * 128])
def test_valid_tags(tag):
    assert plan.check_tag(tag) == tag


@pytest.mark.parametrize("tag", ["v1;rm -rf /", "v1;touch /tmp/pwned", "", ".v1", "-v1", "v1 2", "v" * 129,
                                 "$(id)", "v1\n", "v1@sha256:00", "tag/with/slash"])
def test_invalid_tags_are_refused(tag):
    with pytest.raises(ToolError) as e:
        plan.check_tag(tag)
    assert e.value.code == BAD_INPUT and "not a valid image tag" in str(e.value)


def bash_parses(program: str) -> None:
    proc = subprocess.run(["bash", "-n"], input=program, text=True, capture_output=True)
    assert proc.returncode == 0, proc.stderr


def test_deploy_program_parses_and_follows_inventory_order(host):
    system = host.systems[0]
    program = plan.deploy_program(host, system, list(system.stacks), intent())
    bash_parses(program)
    lines = [line.split()[1] for line in program.splitlines() if line.startswith("stack ")]
    assert lines == ["infra", "postgres", "ems", "sms"]
    assert "fetch ems ghcr.io/edumigsoft/ems_server ''" in program
    assert program.startswith("{\n") and program.rstrip().endswith("}")


def test_values_are_quoted_so_a_hostile_inventory_cannot_inject(tmp_path):
    (tmp_path / "hosts.yml").write_text(
        "registry: {server: ghcr.io, username: u}\n"
        "systems:\n  s1:\n    secrets: \".secrets/it's $(touch pwned)\"\n"
        "    stacks:\n      a: {compose: \"dir with space/$(touch pwned)/c.yml\", image: o/a}\n"
        "hosts:\n  h: {address: x, root: \"/srv/odd dir\", systems: [s1]}\n")
    host = inventory.load(tmp_path / "hosts.yml").host("h")
    program = plan.deploy_program(host, host.systems[0], list(host.systems[0].stacks), intent(by="e'vil$(id)"))
    bash_parses(program)
    assert "SECRETS='/srv/odd dir/s1/.secrets/it'\"'\"'s $(touch pwned)'" in program
    assert "'/srv/odd dir/s1/dir with space/$(touch pwned)/c.yml'" in program
    # run just the assignments: every value must come out verbatim, nothing executed
    head = program.split("\n", 1)[1].split(plan.LIBRARY, 1)[1].split("begin\n", 1)[0]
    out = subprocess.run(["bash", "-c", head + 'printf "%s\\n" "$SECRETS" "$BY"'], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.stdout.splitlines() == ["/srv/odd dir/s1/.secrets/it's $(touch pwned)", "e'vil$(id)"]
    assert not (tmp_path / "pwned").exists()


def test_rollback_program_restores_recorded_digests(host):
    system = host.systems[0]
    pin = "v1.4.2@sha256:" + "a" * 64
    program = plan.deploy_program(host, system, list(system.stacks),
                                  intent(action="rollback", tag="v1.4.2", pins={"ems": pin}, history_sha="f" * 64))
    bash_parses(program)
    assert f"fetch ems ghcr.io/edumigsoft/ems_server {pin}" in program
    assert "EXPECT_HISTORY=" + "f" * 64 in program


def test_the_token_only_ever_flows_through_builtins_into_pipes_or_the_new_file(host):
    """No program holds a secret (the token is read on the VPS), and every use of the token's value is the
    printf builtin writing into a pipe to ``docker login --password-stdin`` / ``curl -H @-`` or into the
    rotation's temporary file: never an argument of a process, never echoed to output."""
    uses = [ln.strip() for ln in plan.LIBRARY.splitlines() if "$GITHUB_TOKEN" in ln or "${GITHUB_TOKEN" in ln]
    assert uses, "the library must use the token somewhere"
    for use in uses:
        if use.startswith(("GITHUB_TOKEN=", "[ -n \"$GITHUB_TOKEN\" ]")):
            continue  # bash assignments and tests: no process sees them
        assert use.count("$GITHUB_TOKEN") == 1 and "printf " in use, use
        after = use.split('"$GITHUB_TOKEN"', 1)[1].lstrip()
        assert after.startswith("| docker login") and "--password-stdin" in after \
            or after.startswith("| DOCKER_CONFIG=$1 docker login") and "--password-stdin" in after \
            or after.startswith("| curl") and "-H @-" in after \
            or after.startswith('> "$tmp"'), use
    system = host.systems[0]
    program = plan.deploy_program(host, system, list(system.stacks), intent())
    assert "set -x" not in program and "xtrace" not in program


def test_stack_selection(host):
    system = host.systems[0]
    assert [s.name for s in plan.selected_stacks(system, ["sms", "ems"])] == ["ems", "sms"]
    assert len(plan.selected_stacks(system, None)) == 4
    with pytest.raises(ToolError, match="no stack web"):
        plan.selected_stacks(system, ["web"])


@pytest.mark.parametrize("image, server, expected", [
    ("edumigsoft/ems_server", "ghcr.io", "ghcr.io/edumigsoft/ems_server"),
    ("edumigsoft/ems_server", "10.200.0.1:5000", "10.200.0.1:5000/edumigsoft/ems_server"),
    ("docker.io/library/nginx", "ghcr.io", "docker.io/library/nginx"),
    ("localhost:5000/x", "ghcr.io", "localhost:5000/x"),
])
def test_image_repo_resolution(host, image, server, expected):
    from dataclasses import replace
    h = replace(host, registry=replace(host.registry, server=server))
    assert plan.image_repo(h, inventory.Stack("a", "c.yml", image)) == expected


def test_read_only_programs_parse(host):
    system = host.systems[0]
    for program in (plan.read_state_program(host, system), plan.status_program(host, system),
                    plan.unlock_program(host, system)):
        bash_parses(program)
        assert "lock_take" not in program.split(plan.LIBRARY)[1]
