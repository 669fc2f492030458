"""The binary release kind (sh/binary.sh) under bash with stub systemctl, journalctl, selinuxenabled and
restorecon: a whole deploy program of a binary stack (install checked, symlink switched, unit restarted and
gated), a failed unit getting the binary before it back, an upload whose bytes are not what was sent, SELinux
labels where SELinux is on. Fast tier: no root, no systemd (the end-to-end tier runs a real one,
tests/e2e/test_binary.py)."""
import hashlib
import json
import os

import pytest

from tasks.core import history, inventory
from tasks.core.errors import BAD_INPUT, ToolError
from tasks.core.programs.declare import Intent
from tasks.core.programs.deploy import deploy_program
from tasks.core.programs.envfiles import set_program, settable
from tasks.core.programs.protocol import Code
from tasks.core.programs.recover import scratch_program, teardown_program

from .conftest import HERE, Lab, finished

V1, V2, HAND = b"\x7fELF escala v1\n", b"\x7fELF escala v2\n", b"\x7fELF placed by hand\n"


@pytest.fixture
def bin_lab(tmp_path):
    lab = Lab(tmp_path)
    for tool in ("systemctl", "journalctl", "selinuxenabled", "restorecon"):
        (lab.bin / tool).symlink_to(HERE / "stub")
    (lab.root / "hosts.yml").write_text(
        "registry: {server: r.example, username: u}\nsystems:\n  plantao:\n    stacks:\n"
        f"      escala: {{binary: {{path: '{lab.root}/opt/plantao/escala-plantao', unit: plantao, keep: 2}}, "
        "health: 'http://127.0.0.1:8080/health', wait: 3}\n"
        f"hosts:\n  lab: {{address: 127.0.0.1, root: '{lab.root}', systems: [plantao]}}\n")
    lab.target = inventory.load(lab.root / "hosts.yml").host("lab").targets()[0]
    lab.answer("systemctl", "show -p ActiveState --value plantao.service", "active\n")
    lab.answer("systemctl", "show -p SubState --value plantao.service", "running\n")
    lab.answer("selinuxenabled", "*", code=1)
    lab.answer("systemctl", "cat plantao.service", "# /etc/systemd/system/plantao.service\n[Service]\n"
               f"ExecStart={lab.root}/opt/plantao/escala-plantao\n")
    lab.answer("systemctl", "show -p FragmentPath --value plantao.service", "/etc/systemd/system/plantao.service\n")
    lab.answer("systemctl", "show -p Result --value plantao.service", "success\n")
    lab.answer("journalctl", "-u plantao.service *", "Started plantao.service - Escala de Plantao.\n")
    lab.allow("systemctl", "reset-failed plantao.service")
    lab.allow("systemctl", "restart plantao.service")
    yield lab
    finished(lab)


def upload(lab, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    folder = lab.root / "plantao/state/artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / sha).write_bytes(data)
    return sha


def deploy(lab, tag: str, sha: str, artifact_bytes: bytes | None = None):
    intent = Intent("deploy", f"r-{tag}", tag, "ana@laptop", "laptop", tags={"escala": tag}, artifacts={"escala": sha})
    return lab.run(deploy_program(lab.target, list(lab.target.system.stacks), intent))


def deploy_read(lab, tag: str, sha: str = "", pin: str = ""):
    """A deploy of ``tag`` (an uploaded ``sha``, or the kept ``pin``) built as the task builds it: with the
    history read from the host first."""
    log = lab.root / "plantao/state/releases.jsonl"
    rels = history.parse(log.read_text()) if log.exists() else []
    intent = Intent("deploy", f"r{len(rels)}", tag, "ana", "laptop", tags={"escala": tag} if sha else {},
                    artifacts={"escala": sha} if sha else {}, pins={"escala": pin} if pin else {})
    return lab.run(deploy_program(lab.target, list(lab.target.system.stacks), intent, releases=rels))


def live(lab) -> str:
    return os.readlink(lab.root / "opt/plantao/escala-plantao")


def test_a_release_is_installed_checked_switched_and_gated(bin_lab):
    run = deploy(bin_lab, "v1", upload(bin_lab, V1))
    assert run.code == 0, run.stdout + run.stderr
    release = bin_lab.root / "opt/plantao/releases/v1"
    assert live(bin_lab) == str(release / "escala-plantao") and (release / "escala-plantao").read_bytes() == V1
    assert oct((release / "escala-plantao").stat().st_mode)[-3:] == "755"
    assert (release / "sha256").read_text().strip() == hashlib.sha256(V1).hexdigest()
    assert "restart plantao.service" in bin_lab.commands("systemctl")
    assert bin_lab.commands("restorecon") == [], "no SELinux, no relabelling"
    record = json.loads((bin_lab.root / "plantao/state/releases.jsonl").read_text().splitlines()[-1])
    assert record["images"] == {"escala": f"v1@sha256:{hashlib.sha256(V1).hexdigest()}"}
    assert record["binaries"] == {"escala": {"unit": "plantao.service", "bytes": len(V1)}}


def test_a_unit_that_does_not_come_up_gets_the_binary_before_it_back(bin_lab):
    assert deploy(bin_lab, "v1", upload(bin_lab, V1)).code == 0
    bin_lab.answer("systemctl", "show -p ActiveState --value plantao.service", "activating\n", once=True)
    bin_lab.answer("systemctl", "show -p SubState --value plantao.service", "auto-restart\n", once=True)
    bin_lab.answer("journalctl", "*", "plantao.service: Main process exited, status=203/EXEC\n")
    run = deploy(bin_lab, "v2", upload(bin_lab, V2))
    assert run.code == 13, run.stdout + run.stderr
    assert "plantao.service is activating (auto-restart" in run.stdout and "status=203/EXEC" in run.stdout
    assert live(bin_lab).endswith("releases/v1/escala-plantao"), "the binary before it is back"
    assert bin_lab.commands("systemctl").count("restart plantao.service") == 3   # v1, v2, v1 again


def test_uploaded_bytes_that_are_not_what_was_sent_are_refused_and_removed(bin_lab):
    sha = upload(bin_lab, V1)
    (bin_lab.root / "plantao/state/artifacts" / sha).write_bytes(V2)
    run = deploy(bin_lab, "v1", sha)
    assert run.code == 12 and "the uploaded binary of escala v1 is damaged" in run.error
    assert not (bin_lab.root / "plantao/state/artifacts" / sha).exists(), "so the next deploy uploads it again"
    assert not (bin_lab.root / "opt/plantao/releases/v1").exists()
    assert "restart plantao.service" not in bin_lab.commands("systemctl")


def test_selinux_labels_are_restored_where_selinux_is_enabled(bin_lab):
    bin_lab.answer("selinuxenabled", "*", code=0)
    bin_lab.allow("restorecon", "-R *")
    assert deploy(bin_lab, "v1", upload(bin_lab, V1)).code == 0
    release, path = bin_lab.root / "opt/plantao/releases/v1", bin_lab.root / "opt/plantao/escala-plantao"
    assert bin_lab.commands("restorecon") == [f"-R {release}", f"-R {path}"]


def test_a_plain_binary_placed_by_hand_is_kept_and_is_what_a_failure_goes_back_to(bin_lab):
    path = bin_lab.root / "opt/plantao/escala-plantao"
    path.parent.mkdir(parents=True)
    path.write_bytes(HAND)
    bin_lab.answer("systemctl", "show -p ActiveState --value plantao.service", "failed\n", once=True)
    bin_lab.answer("systemctl", "show -p SubState --value plantao.service", "failed\n", once=True)
    (bin_lab.root / "plantao/state").mkdir(parents=True)
    (bin_lab.root / "plantao/state/current").write_text("release r0\ntag hand\n")
    run = deploy(bin_lab, "v1", upload(bin_lab, V1))
    assert run.code == 13, run.stdout + run.stderr
    kept = f"adopted-{hashlib.sha256(HAND).hexdigest()[:12]}"
    assert live(bin_lab) == str(path.parent / "releases" / kept / "escala-plantao")
    assert (path.parent / "releases" / kept / "escala-plantao").read_bytes() == HAND


def test_each_restart_first_resets_the_start_limit_and_a_refused_restart_says_why(bin_lab):
    """A broken release put back and then a rollback are several deliberate starts within seconds: systemd's
    crash-loop limit must not refuse the good release (seen in CI under a real systemd)."""
    assert deploy(bin_lab, "v1", upload(bin_lab, V1)).code == 0
    calls = bin_lab.commands("systemctl")
    assert calls.index("reset-failed plantao.service") < calls.index("restart plantao.service")
    bin_lab.answer("systemctl", "restart plantao.service", code=1, stderr=True,
                   output="Job for plantao.service failed.\nSee \"systemctl status plantao.service\".\n")
    run = deploy(bin_lab, "v2", upload(bin_lab, V2))
    assert run.code != 0
    assert "systemctl restart plantao.service failed: Job for plantao.service failed. See" in run.stdout


def test_pruning_keeps_the_good_releases_before_a_build_that_never_went_live(bin_lab):
    """Issue 18 item 6 (keep: 2): v1, v2, v3 failing (v2 put back), rollback to v1, v2 again, then a deploy
    that keeps the binary. By age, pruning kept the never-live v3 and dropped v1, so `rollback --to v1` then
    failed (exit 4). The good releases rank first (newest first), then the rest."""
    def run(tag, sha="", pin=""):
        return deploy_read(bin_lab, tag, sha, pin)

    v1 = upload(bin_lab, V1)
    assert run("v1", v1).code == 0
    v2 = upload(bin_lab, V2)   # (pruning removes uploads no kept release holds)
    assert run("v2", v2).code == 0
    bin_lab.answer("systemctl", "show -p ActiveState --value plantao.service", "failed\n", once=True)
    assert run("v3", upload(bin_lab, b"\x7fELF escala v3\n")).code == 13
    assert run("v1", pin=f"v1@sha256:{v1}").code == 0
    assert run("v2", pin=f"v2@sha256:{v2}").code == 0
    res = run("v2", pin=f"v2@sha256:{v2}")
    assert res.code == 0, res.stdout
    releases = sorted(p.name for p in (bin_lab.root / "opt/plantao/releases").iterdir())
    assert releases == ["v1", "v2"], "the good ones; v3 never passed its gate"
    assert run("v1", pin=f"v1@sha256:{v1}").code == 0 and live(bin_lab).endswith("releases/v1/escala-plantao")


def test_a_build_that_never_passed_its_gate_may_be_replaced_under_its_tag_but_a_good_one_never(bin_lab):
    """The history (read by the task) says which builds once passed their gate: v2 failed, so a fixed build of
    v2 replaces it; v1 ran, so other bytes under v1 are refused (give the build a new tag)."""
    assert deploy_read(bin_lab, "v1", upload(bin_lab, V1)).code == 0
    bin_lab.answer("systemctl", "show -p ActiveState --value plantao.service", "failed\n", once=True)
    assert deploy_read(bin_lab, "v2", upload(bin_lab, V2)).code == 13
    fixed = b"\x7fELF escala v2, fixed\n"
    run = deploy_read(bin_lab, "v2", upload(bin_lab, fixed))
    assert run.code == 0 and "replaced by another build of that tag" in run.stdout
    assert (bin_lab.root / "opt/plantao/releases/v2/escala-plantao").read_bytes() == fixed
    run = deploy_read(bin_lab, "v1", upload(bin_lab, b"\x7fELF another v1\n"))
    assert run.code == Code.REFUSED and "release v1 of escala is on the host with other bytes" in run.error


def on_lab(lab, program):
    """``program`` with its last step's paths under /etc/ moved into the lab's root (never this machine's)."""
    program.steps[-1] = tuple(f"{lab.root}{a}" if str(a).startswith("/etc/") else a for a in program.steps[-1])
    return program


def test_a_drill_checks_the_host_is_scratch_and_its_teardown_stops_the_unit_and_takes_its_files(bin_lab):
    lab = bin_lab
    lab.answer("docker", "ps -aq", "")
    scratch = on_lab(lab, scratch_program(lab.target))
    assert lab.run(scratch).code == 0
    assert deploy(lab, "v1", upload(lab, V1)).code == 0
    (lab.root / "etc/plantao").mkdir(parents=True)
    (lab.root / "etc/plantao/plantao.env").write_text("DB_PASS=x\n")
    (lab.root / "etc/systemd/system").mkdir(parents=True)
    (lab.root / "etc/systemd/system/plantao.service").write_text("[Service]\n")
    refused = lab.run(scratch)
    assert refused.code == Code.REFUSED and "holds files on this host" in refused.error, refused.stdout
    lab.allow("systemctl", "disable --now plantao.service")
    lab.allow("systemctl", "daemon-reload")
    lab.allow("docker", "logout *")
    run = lab.run(on_lab(lab, teardown_program(lab.target)))
    assert run.code == 0, run.stdout + run.stderr
    assert "disable --now plantao.service" in lab.commands("systemctl")
    assert lab.commands("systemctl")[-1] == "daemon-reload", "after the unit file went"
    assert not (lab.root / "opt/plantao").exists(), "its folder too, once empty"
    assert not (lab.root / "etc/plantao").exists() and not (lab.root / "etc/systemd/system/plantao.service").exists()
    assert not (lab.root / "plantao/state").exists()


def test_env_set_writes_the_units_environment_file_as_systemd_reads_it_its_mode_kept(bin_lab):
    lab, escala = bin_lab, bin_lab.target.system.stacks[0]
    env = lab.root / "etc/plantao/plantao.env"
    env.parent.mkdir(parents=True)
    env.write_text("PORT=8080\nDB_PASS=old\n")
    env.chmod(0o640)
    lab.answer("systemctl", "show -p EnvironmentFiles --value plantao.service", f"-{env} (ignore_errors=yes)\n")
    line = settable(lab.target, escala, "DB_PASS", 'p"w $x')
    run = lab.run(set_program(lab.target, escala, "DB_PASS", Intent("env-set", "", "", "a", "b")).given(line))
    assert run.code == 0 and run.result.one("env_set") == {"stack": "escala", "key": "DB_PASS", "result": "replaced",
                                                           "file": str(env)}, run.stdout + run.stderr
    assert env.read_text() == 'PORT=8080\nDB_PASS="p\\"w \\$x"\n' and oct(env.stat().st_mode & 0o777) == "0o640"
    with pytest.raises(ToolError) as e:
        settable(lab.target, escala, "DB_PASS", "two\nlines")
    assert e.value.code == BAD_INPUT and "give it on one line" in str(e.value) and "lines" not in str(e.value)[-40:]


def test_env_set_on_a_unit_without_an_environment_file_is_refused_and_changes_nothing(bin_lab):
    lab, escala = bin_lab, bin_lab.target.system.stacks[0]
    lab.answer("systemctl", "show -p EnvironmentFiles --value plantao.service", "")
    program = set_program(lab.target, escala, "DB_PASS", Intent("env-set", "", "", "a", "b")).given('DB_PASS="v"')
    run = lab.run(program)
    assert run.code == Code.REFUSED and "names no EnvironmentFile" in run.error
    assert not list(lab.root.rglob("*.env")) and not (lab.target.state_dir and (lab.root / "plantao/state/lock").exists())
