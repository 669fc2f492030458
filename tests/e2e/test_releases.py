"""A release means the whole system (issue 18), end to end on the sandbox VPS: deploys of some stacks record what
the others run, and rollback picks the release the operator means."""


def versions(vps) -> tuple:
    return vps.host.http(8080, "/version"), vps.host.http(8081, "/version")


def test_a_deploy_of_one_stack_is_labelled_by_what_runs_and_rollback_to_a_tag_means_the_whole_system(vps):
    """Item 1: after v1.4.2 and v1.4.3, `--tag v1.4.2 --stack sms` is recorded as ems=v1.4.3,sms=v1.4.2 with
    both apps' digests (ems's never pulled again); status says so; `rollback --to v1.4.2` goes to the full
    v1.4.2 release (ems moves back too), and a plain rollback then to the mixed one."""
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    full = vps.releases()[0]
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2", "--stack", "sms")
    assert versions(vps) == ("v1.4.3", "v1.4.2")
    mixed = vps.releases()[0]
    assert mixed["tag"] == "ems=v1.4.3,sms=v1.4.2" and mixed["running"]
    assert mixed["images"]["ems"] == full["images"]["ems"] and mixed["images"]["sms"].startswith("v1.4.2@sha256:")
    assert sorted(mixed["config"]["files"]) == sorted(full["config"]["files"]), "every stack's files, not only sms's"
    assert "ems=v1.4.3,sms=v1.4.2" in vps.ok("status", "--host", "t1").stdout
    back = vps.ok("rollback", "--host", "t1", "--to", "v1.4.2")
    assert versions(vps) == ("v1.4.2", "v1.4.2")
    assert "configuration differs" not in back.stdout + back.stderr
    assert vps.running()["tag"] == "v1.4.2"
    vps.ok("rollback", "--host", "t1")
    assert versions(vps) == ("v1.4.3", "v1.4.2") and vps.running()["tag"] == "ems=v1.4.3,sms=v1.4.2"


def test_a_plain_rollback_after_a_config_only_deploy_goes_to_the_release_before(vps):
    """Item 2: v1.4.2, v1.4.3, then `--stack postgres` (a release of a stack that pins nothing: it runs
    v1.4.3's apps). The previous release is v1.4.2, not v1.4.3 which already runs; --dry-run says which."""
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.2")
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    vps.ok("deploy", "--host", "t1", "--stack", "postgres")
    config_only = vps.releases()[0]
    assert config_only["tag"] == "v1.4.3" and set(config_only["images"]) == {"ems", "sms"}
    first = vps.releases()[-1]["release"]
    assert "preflight: nothing would refuse" in vps.ok("deploy", "--host", "t1", "--dry-run").stdout, \
        "a dry run without --tag reads what runs (item 9)"
    plan = vps.ok("rollback", "--host", "t1", "--dry-run")
    assert f"back to release {first} (v1.4.2" in plan.stdout
    vps.ok("rollback", "--host", "t1")
    assert versions(vps) == ("v1.4.2", "v1.4.2")


def test_a_tag_the_history_does_not_know_is_refused_naming_the_host_unless_forced(vps):
    vps.ok("deploy", "--host", "t1", "--tag", "v1.4.3")
    res = vps.fab("rollback", "--host", "t1", "--to", "v1.4.2")
    assert res.returncode == 2 and "t1/ems_system: v1.4.2 is not in the release history" in res.stderr
    vps.ok("rollback", "--host", "t1", "--to", "v1.4.2", "--force")
    assert versions(vps) == ("v1.4.2", "v1.4.2") and vps.running()["tag"] == "v1.4.2"
