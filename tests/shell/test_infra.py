"""Infrastructure images in the release (sh/images.sh: infra_digests, infra_pin, refresh_stack) under bash with
stub docker: a good release records what its services that pin nothing run, by digest (and carries the record
of the stacks it left alone); a rollback tags the recorded digest again before anything comes up, after
preflight; --refresh infra pulls those stacks' images again. Fast tier."""
from dataclasses import replace

from tasks.core.programs.declare import Untouched
from tasks.core.programs.deploy import deploy_program

from .conftest import INFRA_DIGEST, lab  # noqa: F401  (the lab fixture)
from .test_deploy_program import history, intent, pulls_answer

OLD_INFRA = "sha256:" + "5" * 64


def test_a_good_release_records_its_infrastructure_by_digest(lab):  # noqa: F811
    pulls_answer(lab)
    run = lab.run(deploy_program(lab.target, list(lab.target.system.stacks), intent()))
    assert run.code == 0, run.stdout
    assert history(lab)[-1]["infra"] == {"infra/infra": f"infra:stable@{INFRA_DIGEST}"}
    assert "infra" not in history(lab)[0], "recorded once the release is good"


def test_a_partial_deploy_carries_the_record_of_the_stacks_it_left_alone(lab):  # noqa: F811
    pulls_answer(lab)
    ems = [s for s in lab.target.system.stacks if s.name == "ems"]
    kept = Untouched(infra={"postgres/postgres": f"postgres:15-alpine@{OLD_INFRA}"})
    run = lab.run(deploy_program(lab.target, ems, intent(tags={"ems": "v1.4.3"}, untouched=kept)))
    assert run.code == 0, run.stdout
    assert history(lab)[-1]["infra"] == {"postgres/postgres": f"postgres:15-alpine@{OLD_INFRA}"}


def test_a_rollback_runs_the_recorded_digest_again(lab):  # noqa: F811
    lab.answer("docker", "image inspect *@sha256:*", code=1)
    lab.answer("docker", f"image inspect infra@{OLD_INFRA}", code=1)   # pruned since: pulled again by digest
    lab.answer("docker", f"pull infra@{OLD_INFRA}", "Status: Downloaded\n")
    lab.answer("docker", f"tag infra@{OLD_INFRA} infra:stable")
    lab.answer("docker", "pull *@sha256:*", "Status: up to date\n")
    back = intent(action="rollback", tags=None, pins={"ems": "v1.4.2@sha256:" + "2" * 64,
                                                       "sms": "v1.4.2@sha256:" + "2" * 64},
                  infra={"infra/infra": f"infra:stable@{OLD_INFRA}"})
    run = lab.run(deploy_program(lab.target, list(lab.target.system.stacks), back))
    assert run.code == 0, run.stdout
    calls = lab.commands("docker")
    tagged = calls.index(f"tag infra@{OLD_INFRA} infra:stable")
    assert calls.index(f"pull infra@{OLD_INFRA}") < tagged
    assert tagged < next(i for i, c in enumerate(calls) if " up -d" in c), "tagged before anything comes up"
    assert tagged > max(i for i, c in enumerate(calls) if c.startswith("ps -a --format")), "after preflight"


def test_a_damaged_record_is_refused_before_anything_changes(lab):  # noqa: F811
    lab.answer("docker", "image inspect *@sha256:*", code=1)
    lab.answer("docker", "pull *@sha256:*", "Status: up to date\n")
    back = intent(action="rollback", tags=None, pins={"ems": "v1.4.2@sha256:" + "2" * 64,
                                                       "sms": "v1.4.2@sha256:" + "2" * 64},
                  infra={"infra/infra": "infra:stable@sha256:1; reboot"})
    run = lab.run(deploy_program(lab.target, list(lab.target.system.stacks), back))
    assert run.code == 1 and "refusing a damaged image record" in run.error
    assert not [c for c in lab.commands("docker") if " up -d" in c or c.startswith("tag ")]


def test_refresh_pulls_the_images_of_the_stacks_that_pin_nothing(lab):  # noqa: F811
    pulls_answer(lab)
    lab.answer("docker", "compose -p ems_system-infra -f * pull --quiet --policy always")
    run = lab.run(deploy_program(lab.target, list(lab.target.system.stacks), replace(intent(), refresh=True)))
    assert run.code == 0, run.stdout
    pulled = [c for c in lab.commands("docker") if c.startswith("compose") and " pull " in c]
    assert len(pulled) == 1 and pulled[0].startswith("compose -p ems_system-infra")
    assert "step pull infra: its images again (--refresh infra)" in run.stdout.replace("@@", "")


def test_a_record_that_cannot_be_read_never_fails_the_live_release(lab):  # noqa: F811
    pulls_answer(lab)
    lab.answer("docker", "image inspect --format {{.Id}} *", "\n\n")   # (an answer with no image: ignored)
    lab.answer("docker", "ps -aq --filter label=com.docker.compose.project --filter label=com.docker.compose.oneoff=False",
               "Cannot connect to the Docker daemon\n", code=1)
    run = lab.run(deploy_program(lab.target, list(lab.target.system.stacks), intent()))
    assert run.code == 0, run.stdout
    assert history(lab)[-1]["state"] == "good" and "infra" not in history(lab)[-1]
    assert "could not be read: this release does not record it" in run.stdout
