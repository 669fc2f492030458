"""The program builders (pure): tags validated, every value quoted, every step a function the shipped library
defines, only the functions a program needs, in inventory order; pinned by exact steps as Kamal pins its
command builders."""
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from tasks.core import history, inventory, model
from tasks.core.errors import BAD_INPUT, ToolError
from tasks.core.grammar import check_tag
from tasks.core.programs import library, steps
from tasks.core.programs.backup import backup_program, drill_program, list_program, preview_program, restore_program
from tasks.core.programs.bootstrap import bootstrap_program
from tasks.core.programs.declare import Intent
from tasks.core.programs.deploy import deploy_program, going_back, look_program, untouched
from tasks.core.programs.migrate import OldProject, Survey, migrate_program, remove_old_program, survey_program
from tasks.core.programs.offsite import send_offsite
from tasks.core.programs.protocol import Program
from tasks.core.programs.recover import fetch_program as recover_fetch
from tasks.core.programs.recover import scratch_program, teardown_program
from tasks.core.programs.setup import finish_program, setup_program
from tasks.core.programs.state import Current, State, read_state_program, status_program, unlock_program
from tasks.core.programs.token import check_program, rotate_program

REPO = Path(__file__).resolve().parents[2]
PIN = "v1.4.2@sha256:" + "a" * 64


@pytest.fixture
def target():
    return inventory.load(REPO / "hosts.yml").host("vps1").targets()[0]


BACKUP = "postgres-20261126T020000Z"


def with_database(target):
    """The committed system with its PostgreSQL marked as a database and backed up before each deploy."""
    stacks = tuple(replace(s, database=model.Database("postgres", None, ())) if s.name == "postgres" else s
                   for s in target.system.stacks)
    system = replace(target.system, stacks=stacks, backup=replace(target.system.backup, before_deploy=True))
    return replace(target, system=system)


def with_binary(target):
    """The committed system with seed 003's binary as a stack after the apps."""
    ems = next(s for s in target.system.stacks if s.apps)
    escala = replace(ems, name="escala", compose=None, apps=(), health="http://127.0.0.1:8080/health", wait=30,
                     binary=model.Binary("/opt/plantao/escala-plantao", "plantao", "opc:opc", "0755", 5, None))
    return replace(target, system=replace(target.system, stacks=target.system.stacks + (escala,)))


def intent(**kw):
    base = dict(action="deploy", release="20261123T000000Z-abcd", tag="v1.4.3", by="ana@laptop", origin="laptop",
                tags={"ems": "v1.4.3", "sms": "v1.4.3"})
    return Intent(**{**base, **kw})


def every_program(target) -> list[Program]:
    """One of each program the tool can send, with the options that change their steps."""
    legacy = model.Legacy("/opt/ems", "/opt/le", "/opt/up", "/opt/logs", ("pgdata",))
    old = replace(target, host=replace(target.host, legacy=(("ems_system", legacy),)))
    survey = Survey(None, [], 0, 0, [OldProject("container", "/opt/ems/servers/ems/container", "c.yml")], {})
    logout = replace(target, host=replace(target.host, registry=replace(target.host.registry, logout=True)))
    stacks = list(target.system.stacks)
    db = with_database(target)
    pg = db.system.databases[0]
    binary = with_binary(target)
    swarm = inventory.load(REPO / "examples/enlevohub/swarm.yml").host("sw1").targets()[0]
    return [deploy_program(target, stacks, intent(), "https://api.github.com"),
            deploy_program(swarm, list(swarm.system.stacks), intent()), read_state_program(swarm), status_program(swarm),
            deploy_program(binary, list(binary.system.stacks), intent(artifacts={"escala": "b" * 64})),
            status_program(binary), setup_program(replace(binary, system=replace(binary.system, stacks=(
                replace(binary.system.stacks[-1], binary=replace(binary.system.stacks[-1].binary,
                                                                 unit_template="repo/plantao.service")),)))),
            deploy_program(db, list(db.system.stacks), intent()),
            deploy_program(db, list(db.system.stacks), intent(action="rollback"), snapshot=[(pg, BACKUP)]),
            backup_program(db, [pg], intent(action="backup")), preview_program(db, [pg]), list_program(db),
            drill_program(db, pg, BACKUP), restore_program(db, pg, BACKUP, intent(action="restore")),
            deploy_program(logout, stacks, intent()),
            deploy_program(target, stacks, intent(), "https://api.github.com", per_deploy=True),
            deploy_program(swarm, list(swarm.system.stacks), intent(), per_deploy=True),
            deploy_program(target, stacks, intent(action="rollback", pins={"ems": PIN}, tags=None, history_sha="f" * 64)),
            read_state_program(target), status_program(target), unlock_program(target),
            rotate_program(target, intent(action="rotate-token")), check_program(target, ""),
            setup_program(target), finish_program(target, ["/root/infra/letsencrypt"], ["ems_net"]),
            survey_program(old), migrate_program(old, survey, {"ems": PIN}, intent()), remove_old_program(old),
            bootstrap_program(target.host),
            bootstrap_program(replace(target.host, bootstrap=model.Bootstrap("docker-ce", "http://10.0.0.1/docker")))]


@pytest.mark.parametrize("tag", ["v1.4.3", "latest", "1", "_x", "A-b.c_d", "v" * 128])
def test_valid_tags(tag):
    assert check_tag(tag) == tag


@pytest.mark.parametrize("tag", ["v1;rm -rf /", "v1;touch /tmp/pwned", "", ".v1", "-v1", "v1 2", "v" * 129,
                                 "$(id)", "v1\n", "v1@sha256:00", "tag/with/slash"])
def test_invalid_tags_are_refused(tag):
    with pytest.raises(ToolError) as e:
        check_tag(tag)
    assert e.value.code == BAD_INPUT and "not a valid image tag" in str(e.value)


def bash_parses(text: str) -> None:
    proc = subprocess.run(["bash", "-n"], input=text, text=True, capture_output=True)
    assert proc.returncode == 0, proc.stderr


def test_every_step_of_every_program_is_a_function_of_the_shipped_library(target):
    functions = library.load().functions
    for program in every_program(target):
        unknown = program.step_names - set(functions)
        assert not unknown, f"{program.name} calls {unknown}, which no file in tasks/core/sh defines"
        bash_parses(program.text)
        for name in program.step_names | {"run", "on_exit"}:
            assert re.search(rf"^{name}\(\) {{", program.text, re.M), f"{program.name} lacks {name}"


def test_a_program_carries_only_what_it_needs(target):
    unlock = unlock_program(target).text
    assert "lock_break() {" in unlock and "fetch_images() {" not in unlock and "registry_login() {" not in unlock
    assert len(unlock) < 3000   # (lock_holder's liveness checks: pid, start time, boot id)
    deploy = deploy_program(target, list(target.system.stacks), intent()).text
    assert "fetch_images() {" in deploy and "repoint_env() {" not in deploy and "ensure_dir() {" not in deploy


def test_exit_codes_come_from_python_once(target):
    text = deploy_program(target, list(target.system.stacks), intent()).text
    assert "R_LOCKED=10" in text and "R_ROLLED_BACK=13" in text
    assert not re.search(r"\bdie [0-9]", text), "a literal exit code in the shell"


def test_deploy_program_steps_are_pinned(target):
    program = deploy_program(target, list(target.system.stacks), intent())
    base = "/root/ems_system/repo/servers"
    assert program.steps == [
        ("begin",), ("need_docker",),
        ("add_stack", "infra", f"{base}/infra/docker-compose.prod.yml", f"{base}/infra/.env", "ems_system-infra", 120,
         "", "", ""),
        ("add_stack", "postgres", f"{base}/containers/postgres/docker-compose.prod.yml",
         f"{base}/containers/postgres/.env", "ems_system-postgres", 120, "", "", ""),
        ("add_stack", "ems", f"{base}/ems/container/docker-compose.prod.yml", f"{base}/ems/container/.env",
         "ems_system-ems", 120, "http://127.0.0.1:8080/health", "ems=IMAGE_TAG", ""),
        ("add_stack", "sms", f"{base}/sms/container/docker-compose.prod.yml", f"{base}/sms/container/.env",
         "ems_system-sms", 120, "", "sms=IMAGE_TAG", ""), ("together", "ems", "sms"),
        ("lock_take",), ("check_history",), ("check_secrets",),   # (the lock names the stacks: declared first)
        ("check_placeholders",), ("render_start", "infra", "postgres"), ("registry_login",),
        ("add_image", "ems", "ghcr.io/edumigsoft/ems_server", "v1.4.3", ""),
        ("add_image", "sms", "ghcr.io/edumigsoft/sms_server", "v1.4.3", ""), ("fetch_images",),
        ("preflight_stacks",), ("config_snapshot",), ("record", "deploying"), ("go_live",)]
    assert "check_placeholders" not in deploy_program(target, [], intent(), allow_placeholders=True).step_names
    assert program.text.endswith("run add_image sms ghcr.io/edumigsoft/sms_server v1.4.3 ''\nrun fetch_images\n"
                                 "run preflight_stacks\n"
                                 "run config_snapshot\nrun record deploying\n"
                                 "run go_live\nexit 0\n}\n")
    assert program.text.startswith("{\n# deploy v1.4.3 on vps1/ems_system\n")
    assert "\nOWN_PROJECTS='ems_system-infra ems_system-postgres ems_system-ems ems_system-sms'\n" in program.text


def test_each_image_of_a_stack_is_fetched_and_declared_on_its_own(tmp_path):
    """Two images in one compose file: two fetches, two variables; neither can get the other's digest."""
    (tmp_path / "hosts.yml").write_text(
        "registry: {server: ghcr.io, username: u}\nsystems:\n  enlevohub:\n    stacks:\n      app:\n"
        "        compose: repo/docker-compose.yml\n        images:\n"
        "          backend: {image: u/enlevohub-backend, tag_var: BACKEND_TAG}\n"
        "          frontend: {image: u/enlevohub-frontend, tag_var: FRONTEND_TAG}\n"
        "        scale: {backend: 3}\n"
        "hosts:\n  en1: {address: 10.0.0.1, systems: [enlevohub]}\n")
    t = inventory.load(tmp_path / "hosts.yml").host("en1").targets()[0]
    steps = deploy_program(t, list(t.system.stacks), intent(tags={"backend": "v2", "frontend": "v1"})).steps
    assert ("add_stack", "app", "/root/enlevohub/repo/docker-compose.yml", "/root/enlevohub/repo/.env",
            "enlevohub-app", 120, "",
            "backend=BACKEND_TAG frontend=FRONTEND_TAG", "backend=3") in steps
    assert [s for s in steps if s[0] == "add_image"] == [
        ("add_image", "backend", "ghcr.io/u/enlevohub-backend", "v2", ""),
        ("add_image", "frontend", "ghcr.io/u/enlevohub-frontend", "v1", "")]


def test_rollback_program_restores_recorded_digests(target):
    program = deploy_program(target, list(target.system.stacks),
                             intent(action="rollback", tag="v1.4.2", pins={"ems": PIN}, tags=None,
                                    history_sha="f" * 64))
    assert ("add_image", "ems", "ghcr.io/edumigsoft/ems_server", "", PIN) in program.steps
    assert f"\nrun add_image ems ghcr.io/edumigsoft/ems_server '' {PIN}\n" in program.text
    assert "\nEXPECT_HISTORY=" + "f" * 64 + "\n" in program.text


def test_going_back_brings_up_what_the_release_recorded_by_digest_and_commit(target):
    """A rollback's intent: the recorded pins (not the tag) and commit; its stacks: the ones that pin nothing
    (infra, postgres) and those whose apps it recorded (ems, not sms, which it did not run). A release recorded
    before releases named the whole system: sms keeps what it runs, recorded with the rollback and in its label."""
    rel = history.Release("r1", "v1.4.2", "deploy", "ana", "t", "good", pins={"ems": PIN},
                          config={"commit": "c" * 40})
    sms = "v2@sha256:" + "b" * 64
    state = State(releases=[rel], current=Current("r1", "v1.4.2", {"ems": PIN, "sms": sms}), history_sha="f" * 64,
                  lock=None)
    intent, stacks = going_back(state, rel, target, "bo", "laptop", "r9", "fleet1")
    assert (intent.action, intent.release, intent.tag, intent.pins, intent.ref, intent.fleet, intent.history_sha) \
        == ("rollback", "r9", "ems=v1.4.2,sms=v2", {"ems": PIN}, "c" * 40, "fleet1", "f" * 64)
    assert [s.name for s in stacks] == ["infra", "postgres", "ems"]
    assert intent.untouched.pins == {"sms": sms}


def test_a_deploy_of_some_stacks_records_what_the_others_run(target):
    """`--stack sms`: ems's pin (state/current) and its files' hashes (the running release's record) are
    recorded with the release, never pulled; the files of the stacks it brings up are hashed again."""
    files = {"repo/servers/ems/container/docker-compose.prod.yml": "1" * 64,
             "repo/servers/sms/container/docker-compose.prod.yml": "2" * 64}
    rel = history.Release("r1", "v2", "deploy", "ana", "t", "good", pins={"ems": PIN, "sms": PIN},
                          config={"commit": "", "dirty": False, "files": files})
    state = State([rel], Current("r1", "v2", {"ems": PIN, "sms": PIN}), "f" * 64, None)
    sms = [s for s in target.system.stacks if s.name == "sms"]
    rest = untouched(state, target, sms)
    assert rest.pins == {"ems": PIN} and rest.files == {"repo/servers/ems/container/docker-compose.prod.yml": "1" * 64}
    steps = deploy_program(target, sms, intent(tags={"sms": "v1"}, untouched=rest)).steps
    assert ("use_pin", "ems", PIN) in steps and not any(s[:2] == ("add_image", "ems") for s in steps)
    assert ("config_snapshot", "repo/servers/ems/container/docker-compose.prod.yml", "1" * 64) in steps


def test_logout_fetches_the_unpinned_stacks_first(target):
    logout = replace(target, host=replace(target.host, registry=replace(target.host.registry, logout=True)))
    steps = [s[:2] for s in deploy_program(logout, list(target.system.stacks), intent()).steps]
    assert steps.index(("fetch_stack", "infra")) < steps.index(("registry_logout",)) < steps.index(("record", "deploying"))


def test_a_run_that_brings_its_token_reads_it_from_stdin_and_keeps_none(target):
    brought = "ghp_" + "b" * 36
    program = deploy_program(target, list(target.system.stacks), intent(), "https://api.github.com",
                             per_deploy=True).with_token(brought)
    steps = [s[0] for s in program.steps]
    assert steps.index("check_history") < steps.index("receive_token") < steps.index("probe_token_start") \
        < steps.index("registry_login") < steps.index("fetch_images") < steps.index("registry_logout") \
        < steps.index("preflight_stacks"), "received under the lock; gone before anything changes"
    assert ("fetch_stack", "infra") in [s[:2] for s in program.steps], "compose cannot pull once it is gone"
    assert "check_secrets" not in steps and "SECRETS" not in program.head and program.head["PER_DEPLOY"] == "1"
    assert program.tail == brought + "\n" and brought not in program.text + repr(program)
    stored = deploy_program(target, list(target.system.stacks), intent())
    assert "receive_token" not in stored.step_names and stored.with_token(brought).tail == ""


def test_registry_token_per_deploy_in_hosts_yml_makes_every_run_bring_one(target):
    per = replace(target, host=replace(target.host, registry=replace(target.host.registry, per_deploy=True)))
    assert per.brings_token() and not per.keeps_token and target.keeps_token and not target.brings_token()
    assert "receive_token" in deploy_program(per, list(per.system.stacks), intent()).step_names
    assert "check_token_file" not in setup_program(per).step_names and "ensure_dir" not in \
        [s[0] for s in setup_program(per).steps if s[1:2] == (str(Path(per.secrets).parent),)]


def test_a_swarm_keeps_the_run_s_login_until_its_stacks_are_deployed():
    swarm = inventory.load(REPO / "examples/enlevohub/swarm.yml").host("sw1").targets()[0]
    program = deploy_program(swarm, list(swarm.system.stacks), intent(), per_deploy=True)
    assert "receive_token" in program.step_names and "registry_logout" not in program.step_names, \
        "docker stack deploy --with-registry-auth sends the nodes this login; the program's exit removes it"


def test_values_are_quoted_so_a_hostile_inventory_cannot_inject(tmp_path):
    (tmp_path / "hosts.yml").write_text(
        "registry: {server: ghcr.io, username: u}\n"
        "systems:\n  s1:\n    secrets: \".secrets/it's $(touch pwned)\"\n"
        "    stacks:\n      a: {compose: \"dir with space/$(touch pwned)/c.yml\", image: o/a}\n"
        "hosts:\n  h: {address: x, root: \"/srv/odd dir\", systems: [s1]}\n")
    target = inventory.load(tmp_path / "hosts.yml").host("h").targets()[0]
    program = deploy_program(target, list(target.system.stacks), intent(by="e'vil$(id)"))
    bash_parses(program.text)
    assert "SECRETS='/srv/odd dir/s1/.secrets/it'\"'\"'s $(touch pwned)'" in program.text
    assert "'/srv/odd dir/s1/dir with space/$(touch pwned)/c.yml'" in program.text
    # run just the assignments: every value must come out verbatim, nothing executed
    head = program.text.split("\nSTATE=", 1)[1].split("\n# sh/", 1)[0]
    out = subprocess.run(["bash", "-c", "STATE=" + head + '\nprintf "%s\\n" "$SECRETS" "$BY"'], capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.stdout.splitlines() == ["/srv/odd dir/s1/.secrets/it's $(touch pwned)", "e'vil$(id)"]
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("name", ["GITHUB_TOKEN", "OLD_TOKEN"])
def test_the_token_only_ever_flows_through_builtins_into_pipes_or_the_new_file(target, name):
    """No program holds a secret (the token is read on the VPS), and every use of the token's value (the old
    one too, which rotate-token --revoke-old sends to GitHub) is the printf builtin writing into a pipe to
    ``docker login --password-stdin`` / ``curl -H @-`` / ``curl --data-binary @-`` or into the rotation's
    temporary file, or a test of the ``[`` builtin: never an argument of a process, never echoed to output."""
    text = "\n".join(f.text for f in library.load().functions.values())
    uses = [ln.strip() for ln in text.splitlines() if f"${name}" in ln or f"${{{name}" in ln]
    assert uses, "the library must use the token somewhere"
    for use in uses:
        if use.startswith((f"{name}=", f"[ -n \"${name}\" ]", f"[ -z \"${name}\" ]", f"[[ ${name} =~ ",
                           f"[ -z \"${{{name}:-}}\" ]",
                           'if [ -z "$OLD_TOKEN" ] || [ "$OLD_TOKEN" = "$GITHUB_TOKEN" ]; then')):
            continue  # bash assignments and tests: no process sees them
        if use == 'printf \'user = "%s:%s"\\n\' "$REGISTRY_USER" "$GITHUB_TOKEN"':
            continue  # registry_basic: curl's config, only ever read by curl on a pipe (below)
        assert use.count(f"${name}") == 1 and "printf " in use, use
        after = use.split(f'"${name}"', 1)[1].lstrip()
        assert after.startswith("| docker login") and "--password-stdin" in after \
            or after.startswith("| DOCKER_CONFIG=$1 docker login") and "--password-stdin" in after \
            or after.startswith("| curl") and ("-H @-" in after or after.endswith("\\")) \
            or after.startswith('> "$tmp"'), use
    calls = [ln for ln in text.splitlines() if "registry_basic" in ln and not ln.startswith("registry_basic()")]
    assert calls and all(ln.count("registry_basic") == ln.count("-K <(registry_basic)") for ln in calls), calls
    for program in every_program(target):
        assert "set -x" not in program.text and "xtrace" not in program.text


def test_stack_selection(target):
    system = target.system
    assert [s.name for s in system.selected(["sms", "ems"])] == ["ems", "sms"]
    assert len(system.selected(None)) == 4
    with pytest.raises(ToolError, match="no stack web"):
        system.selected(["web"])


@pytest.mark.parametrize("image, server, expected", [
    ("edumigsoft/ems_server", "ghcr.io", "ghcr.io/edumigsoft/ems_server"),
    ("edumigsoft/ems_server", "10.200.0.1:5000", "10.200.0.1:5000/edumigsoft/ems_server"),
    ("docker.io/library/nginx", "ghcr.io", "docker.io/library/nginx"),
    ("localhost:5000/x", "ghcr.io", "localhost:5000/x"),
])
def test_image_repo_resolution(target, image, server, expected):
    t = replace(target, host=replace(target.host, registry=replace(target.host.registry, server=server)))
    assert t.image_repo(model.App("a", image, "IMAGE_TAG")) == expected


def test_targets_own_their_paths(target):
    ems = target.system.stacks[2]
    assert (target.base, target.state_dir, target.secrets, target.letsencrypt) == (
        "/root/ems_system", "/root/ems_system/state", "/root/ems_system/.secrets/github", "/root/infra/letsencrypt")
    assert target.env_file(ems) == "/root/ems_system/repo/servers/ems/container/.env"
    assert target.project(ems) == "ems_system-ems" and target.label == "vps1/ems_system"


def test_backup_programs_are_pinned(target):
    db = with_database(target)
    pg = db.system.databases[0]
    declare = ("add_database", "postgres", "ems_system-postgres", "postgres", "", "")
    assert backup_program(db, [pg], intent(action="backup")).steps == [
        ("begin",), ("need_docker",), ("lock_take",), declare, ("backup_take", "postgres"),
        ("prune_backups", "postgres", 3, 7, 4, 6, "prune"), ("backup_done",)]
    assert preview_program(db, [pg]).steps == [("prune_backups", "postgres", 3, 7, 4, 6, "preview")]
    assert list_program(db).steps == [("backups_report", "postgres")]
    assert drill_program(db, pg, BACKUP).steps == [declare, ("restore_drill", "postgres", BACKUP)]
    restore = restore_program(db, pg, BACKUP, intent(action="restore")).steps
    assert restore[:3] == [("begin",), ("need_docker",), ("lock_take",)] and [s[1] for s in restore[3:5]] == ["ems", "sms"]
    assert restore[5:] == [declare, ("restore_live", "postgres", BACKUP, "start", "ems", "sms")]
    assert "\nBACKUPS=/root/ems_system/data/backups\n" in backup_program(db, [pg], intent()).text


def test_a_deploy_backs_up_after_preflight_or_a_rollback_restores_its_snapshot(target):
    db = with_database(target)
    pg, stacks = db.system.databases[0], list(db.system.stacks)
    steps = [s[0] for s in deploy_program(db, stacks, intent()).steps]
    assert steps[steps.index("preflight_stacks"):] == ["preflight_stacks", "add_database", "backups_before_deploy",
                                                       "prune_backups", "config_snapshot", "record", "go_live"]
    steps = deploy_program(db, stacks, intent(action="rollback"), snapshot=[(pg, BACKUP)]).steps
    names = [s[0] for s in steps]
    assert names[names.index("preflight_stacks"):] == ["preflight_stacks", "add_database", "restore_live",
                                                       "config_snapshot", "record", "go_live"]
    assert ("restore_live", "postgres", BACKUP, "keep-stopped", "ems", "sms") in steps
    assert "backups_before_deploy" not in deploy_program(target, list(target.system.stacks), intent()).step_names


def test_a_binary_is_declared_installed_after_preflight_and_pruned_once_live(target):
    binary = with_binary(target)
    stacks = list(binary.system.stacks)
    program = deploy_program(binary, stacks, intent(tags={"ems": "v1", "sms": "v1", "escala": "v2.1.0"},
                                                    artifacts={"escala": "b" * 64}))
    assert ("add_binary", "escala", "/opt/plantao/escala-plantao", "/opt/plantao/releases", "plantao", "opc:opc",
            "0755", 5, 30,
            "http://127.0.0.1:8080/health") in program.steps
    names = [s[0] for s in program.steps]
    assert names[names.index("preflight_stacks"):] == ["preflight_stacks", "fetch_binary", "config_snapshot",
                                                       "record", "go_live", "prune_releases"]
    assert ("fetch_binary", "escala", "v2.1.0", "b" * 64, "") in program.steps
    assert "\nARTIFACTS=/root/ems_system/state/artifacts\n" in program.text
    assert "escala" not in program.head["OWN_PROJECTS"]
    back = deploy_program(binary, stacks, intent(action="rollback", tags=None, pins={"escala": "v2@sha256:" + "c" * 64}))
    assert ("fetch_binary", "escala", "", "", "v2@sha256:" + "c" * 64) in back.steps


def test_read_only_programs_take_no_lock(target):
    db = with_database(target)
    for program in (preview_program(db, db.system.databases), list_program(db),
                    drill_program(db, db.system.databases[0], BACKUP)):
        assert "lock_take" not in program.step_names and "begin" not in program.step_names
    for program in (read_state_program(target), status_program(target), check_program(target, ""),
                    survey_program(replace(target, host=replace(target.host, legacy=(("ems_system", model.Legacy("/opt/ems", None, None, None, ())),))))):
        assert "lock_take" not in program.step_names and "begin" not in program.step_names


def test_github_is_asked_only_about_ghcr_tokens_or_on_a_registrys_opt_in(target, tmp_path):
    inv = inventory.load(REPO / "hosts.yml")
    assert inv.github_api_for(target.host) == "https://api.github.com"
    other = replace(target.host, registry=replace(target.host.registry, server="registry.example.com"))
    assert inv.github_api_for(other) == "", "a non-GitHub registry's password must never go to api.github.com"
    inv.github_api = "https://github.example.com/api/v3"   # GitHub Enterprise: for ghcr.io tokens only
    assert inv.github_api_for(other) == "" and inv.github_api_for(target.host) == "https://github.example.com/api/v3"
    opted = replace(other, registry=replace(other.registry, github_api="https://api.github.com"))
    assert inv.github_api_for(opted) == "https://api.github.com"


@pytest.mark.parametrize("url, ok", [("https://api.github.com", True), ("http://127.0.0.1:18443", True),
                                     ("http://api.github.com", False), ("http://127.0.0.1.evil.example/", False),
                                     ("https://", False), ("https://x/$(id)", False)])
def test_a_token_is_only_ever_sent_over_https_or_to_the_vpss_loopback(tmp_path, url, ok):
    (tmp_path / "hosts.yml").write_text(f"registry: {{server: r.example, username: u, github_api: '{url}'}}\n"
                                        "systems: {s: {stacks: {a: {compose: c.yml}}}}\n"
                                        "hosts: {h: {address: 10.0.0.1, systems: [s]}}\n")
    if ok:
        assert inventory.load(tmp_path / "hosts.yml").host("h").registry.github_api == url
    else:
        with pytest.raises(ToolError, match=r"hosts.yml:1: .*must be an https:// URL"):
            inventory.load(tmp_path / "hosts.yml")


def test_every_program_is_shellcheck_clean(target):
    """The files are checked alone in scripts/lint; here each assembled program, as a host receives it: a
    head variable no function reads, or a variable read that nothing assigns, fails. (SC2317: the steps are
    called through ``run``, which shellcheck cannot follow.)"""
    assert shutil.which("shellcheck"), "scripts/bootstrap installs shellcheck"
    for program in every_program(target):
        proc = subprocess.run(["shellcheck", "-s", "bash", "-e", "SC2317", "-"], input=program.text, capture_output=True, text=True)
        assert proc.returncode == 0, f"{program.name}:\n{proc.stdout}"


def test_a_system_of_public_images_needs_no_token_and_no_login(tmp_path):
    """Plantão's PostgreSQL: nothing to pin, so no secrets file, no docker login; only the stacks, in order."""
    (tmp_path / "hosts.yml").write_text(
        "registry: {server: ghcr.io, username: u}\nsystems:\n  plantao:\n    stacks:\n"
        "      postgres: {compose: repo/postgres/docker-compose.yml}\n"
        "hosts:\n  p1: {address: 10.0.0.1, systems: [plantao]}\n")
    t = inventory.load(tmp_path / "hosts.yml").host("p1").targets()[0]
    program = deploy_program(t, list(t.system.stacks), intent(tag="config", tags={}, ref="main"))
    assert [s[0] for s in program.steps] == ["begin", "need_docker", "add_stack", "lock_take", "check_history", "checkout_ref",
                                             "check_placeholders", "preflight_stacks", "config_snapshot", "record",
                                             "go_live"]
    assert "GITHUB_TOKEN" not in program.text and "SECRETS=" not in program.text
    check = subprocess.run(["shellcheck", "-s", "bash", "-e", "SC2317", "-"], input=program.text, capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout


def test_the_dry_run_look_changes_nothing(target):
    """--dry-run's look: stacks declared, stand-in pins for digests not pulled yet, preflight reported: no
    lock, no login, no pull, no write, no up."""
    program = look_program(target, list(target.system.stacks), intent())
    assert {s[0] for s in program.steps} == {"add_stack", "add_image", "use_pin", "preflight_report"}
    assert "fetch_images" not in program.text, "images declared (preflight checks their lines), never fetched"
    assert ("use_pin", "ems", "v1.4.3@sha256:" + "0" * 64) in program.steps
    for word in ("lock_take", "docker login", "docker pull", "atomic_write", " up -d", "record "):
        assert word not in program.text


def test_status_asks_about_the_token_only_where_one_is_needed(target):
    """Issue 18 item 9: `fab status` said "token file: missing" for Plantão's PostgreSQL, which pins no image."""
    public = replace(target, system=replace(target.system, stacks=target.system.stacks[:2]))
    assert not public.system.needs_token and target.system.needs_token
    assert ("show_secrets",) not in status_program(public).steps
    assert ("show_secrets",) in status_program(target).steps


def test_the_closure_follows_calls_not_words(target):
    """A word in a message ("step preflight ..."), an awk program or an argument is not a call: a deploy program
    used to carry migrate-layout's preflight, manifest, overlapping and only_empty_dirs. Commands in command
    position, in a double-quoted $( ), and functions named as values (hooks, a kind's functions) are."""
    names = {"a", "b", "c", "d", "e", "f", "g", "h"}
    code = ('a x; say "step b $(c 1)" | d\nif e; then awk \'{ f() }\' ; fi\nHOOKS+=(g h)\nlocal v=$(  a )\n'
            'echo "no call: b"  # nor here: b\n')
    assert library.calls(code, names) == {"a", "c", "d", "e", "g", "h"}
    runs = 'atomic_write "$f" b "$x" || say "not c"\nf=1'   # atomic_write runs the command its arguments give
    assert library.calls(runs, names | {"atomic_write", "say"}) == {"atomic_write", "b", "say"}
    program = deploy_program(target, list(target.system.stacks), intent())
    defined = set(re.findall(r"^([a-z_][a-z0-9_]*)\(\) \{", program.text, re.M))
    assert not defined & {"preflight", "manifest", "overlapping", "only_empty_dirs", "survey"}, defined
    assert {"preflight_stacks", "go_live", "apply", "up"} <= defined


def test_each_step_is_declared_once_and_its_library_comment_says_the_same_signature():
    """programs/steps.py declares every step; the library function's comment starts with that signature, so the
    shell and Python read the same arguments (a step added on one side only fails here)."""
    lib = library.load()
    text = "\n".join(p.read_text() for p in sorted(library.SH_DIR.glob("*.sh")))
    for name, signature in steps.STEPS.items():
        assert name in lib.functions, f"{name} is declared but the library has no such function"
        assert re.search(rf"^# {re.escape(signature.text)}:", text, re.M), \
            f"sh/ has no comment '# {signature.text}: ...' above {name}()"


@pytest.mark.parametrize("step, args, error", [
    ("add_stack", ("ems", "c.yml", "p", "120", "", "", ""), "WAIT must be a whole number"),
    ("add_stack", ("ems", "c.yml", ".env", "p", 120, ""), "APPS is missing"),
    ("use_pin", ("ems", "v1@sha256:x", "extra"), "1 argument(s) too many"),
    ("record", ("good\nbad",), "STATE must be one line"),
    ("config_snapshot", ("a.yml",), "comes in groups of 2"),
    ("restore_live", ("db", "b1", "now"), "must be one of start, keep-stopped"),
    ("lock_takee", (), "lock_takee is not a step"),
])
def test_a_step_that_does_not_fit_its_signature_is_refused_when_the_program_is_built(step, args, error):
    with pytest.raises(steps.StepError, match=re.escape(error)):
        Program("t").step(step, *args)


def test_an_artifact_that_cannot_be_read_through_is_a_clear_error():
    """Issue 20 item 12: `--artifact /proc/self/mem` ended in 'unexpected OSError' (exit 1)."""
    from tasks.core.artifacts import Artifact
    with pytest.raises(ToolError, match="--artifact /proc/self/mem: cannot be read") as e:
        Artifact.read("/proc/self/mem")
    assert e.value.code == BAD_INPUT


def test_a_binarys_releases_and_environment_travel_with_the_copy_and_a_drill_takes_them_away(target):
    """Seed 003 recovered: its kept releases and /etc/plantao go into the offsite copy and come back where
    they were; a drill's host is checked for them first and the teardown stops the unit and removes them."""
    binary = with_binary(target)
    binary = replace(binary, system=replace(binary.system, backup=replace(binary.system.backup,
                                                                          offsite=("local:/srv/copy",))))
    carried = send_offsite(Program("send"), binary).head["CARRIED"].splitlines()
    assert carried[-2:] == ["/opt/plantao/releases", "/etc/plantao"] and carried[0].endswith("/.env")
    fetch = recover_fetch(binary, binary, "local:/srv/copy", "latest", intent(action="recover"))
    assert fetch.steps[-1][-2:] == ("/opt/plantao/releases", "/etc/plantao")
    everything = ("/opt/plantao/releases", "/etc/plantao", "/opt/plantao/escala-plantao",
                  "/etc/systemd/system/plantao.service")
    assert scratch_program(binary).steps[-1][-4:] == everything
    teardown = teardown_program(binary)
    assert ("add_binary" in teardown.step_names and teardown.steps[-1][0] == "recover_teardown"
            and teardown.steps[-1][-4:] == everything)
