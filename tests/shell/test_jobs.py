"""Run-once jobs (hosts.yml's jobs:) in the deploy program, run whole under bash with stub docker: when each job
runs (before its stack is switched, after every stack is healthy), with which pins, what its failure leaves and
what the release records. Fast tier: no root, SSH or Docker."""
from dataclasses import replace

from tasks.core.jobs import Job
from tasks.core.programs.deploy import deploy_program
from tasks.core.programs.protocol import Code

from .test_deploy_program import DIGEST, OLD, history, intent, pulls_answer, ups

PIN = f"v1.4.3@{DIGEST}"
MIGRATE = Job("migrate", "ems", ("npx", "prisma", "migrate", "deploy"), "before", 30)
JOB_RUN = "compose -p ems_system-ems -f * run --rm -T --name ems_system-ems-job-{}-r1 --label traefik.enable=false *"


def with_jobs(lab, *jobs):
    """The lab's system with ``jobs`` on its ems stack, whose compose file has a service ems; a release runs
    (state/current) so that a failure has one to go back to."""
    lab.answer("docker", "compose -p ems_system-ems -f * config",
               "name: ems_system-ems\nservices:\n  ems:\n    image: busybox:1\n")
    lab.state.mkdir(exist_ok=True)
    (lab.state / "current").write_text(f"release r0\ntag v1.4.2\npin ems {OLD}\npin sms {OLD}\n")
    pulls_answer(lab)
    return [replace(s, jobs=jobs) if s.name == "ems" else s for s in lab.target.system.stacks]


def deploy(lab, stacks, **kw):
    return lab.run(deploy_program(lab.target, stacks, intent(**kw)))


def job_calls(lab):
    return [c for c in lab.calls("docker") if " run --rm " in " ".join(c.argv)]


def test_a_before_job_runs_with_the_new_pins_before_its_stack_is_switched_and_is_recorded(lab):
    stacks = with_jobs(lab, MIGRATE)
    lab.answer("docker", JOB_RUN.format("migrate"), "3 migrations applied\n")
    run = deploy(lab, stacks)
    assert run.code == 0, run.stdout + run.stderr
    (call,) = job_calls(lab)
    assert call.argv[-6:] == ["--no-deps", "ems", "npx", "prisma", "migrate", "deploy"], \
        "the stack runs: the job runs beside it, nothing replaced first"
    assert "--no-deps" in call.argv, "the stack runs: the job runs beside it, nothing replaced first"
    assert call.env == {"IMAGE_TAG": PIN}, "the new release's pin wins over the .env the stack still runs"
    commands = lab.commands("docker")
    job_at = next(i for i, c in enumerate(commands) if " run --rm " in c)
    up_at = next(i for i, c in enumerate(commands) if c.startswith("compose -p ems_system-ems") and " up " in c)
    assert job_at < up_at, "the job runs before any container of its stack is replaced"
    assert run.result.all("job") == [{"stack": "ems", "name": "migrate", "result": "ok", "exit": "0",
                                      "seconds": "0"}]
    assert "3 migrations applied" in run.stdout
    assert history(lab)[-1]["jobs"] == {"ems/migrate": {"result": "ok", "exit": 0, "seconds": 0}}


def test_a_failing_before_job_switches_nothing_and_says_why_with_the_env_values_masked(lab):
    stacks = with_jobs(lab, MIGRATE)
    env = lab.root / "ems_system/repo/ems/.env"
    env.write_text(f"IMAGE_TAG={OLD}\nDB_PASSWORD=s3cr3t-pw\nX=ab\n")
    before = env.read_text()
    lab.answer("docker", JOB_RUN.format("migrate"),
               "Error: P1000 authentication failed for postgres://ems:s3cr3t-pw@db/ems\n", code=1)
    run = deploy(lab, stacks)
    assert run.code == Code.JOB, run.stdout
    assert "v1.4.3: its job migrate of ems failed (exit 1); nothing was switched: v1.4.2 still runs (stacks that pin no image came up before it: infra)" \
        in run.error
    assert "s3cr3t-pw" not in run.stdout and "postgres://ems:***@db/ems" in run.stdout
    assert env.read_text() == before, "ems still runs what it ran"
    assert ups(lab) == ["compose -p ems_system-infra"], "infra comes before ems; nothing after the job"
    assert [h["state"] for h in history(lab)] == ["deploying", "failed"]
    assert history(lab)[-1]["jobs"] == {"ems/migrate": {"result": "failed", "exit": 1, "seconds": 0}}
    assert (lab.state / "current").read_text().startswith("release r0\n")
    assert '"result":"job-failed","exit":19' in (lab.state / "audit.jsonl").read_text()


def test_a_job_that_outlives_its_timeout_has_its_container_removed(lab):
    stacks = with_jobs(lab, MIGRATE)
    lab.answer("docker", JOB_RUN.format("migrate"), code=124)   # (what timeout(1) exits with)
    lab.answer("docker", "rm -f ems_system-ems-job-migrate-r1")
    run = deploy(lab, stacks)
    assert run.code == Code.JOB
    assert "job migrate of ems did not finish within 30s (its container was removed)" in run.error
    assert "rm -f ems_system-ems-job-migrate-r1" in lab.commands("docker")


def test_an_after_job_runs_once_every_stack_is_healthy_and_its_failure_puts_the_previous_release_back(lab):
    stacks = with_jobs(lab, replace(MIGRATE, name="reindex", command=("node", "reindex.js"), when="after"))
    lab.answer("docker", JOB_RUN.format("reindex"), "reindex failed\n", code=3)
    run = deploy(lab, stacks)
    assert run.code == Code.JOB, run.stdout
    assert "v1.4.3: its job reindex of ems failed (exit 3); the previous good release v1.4.2 is back" in run.error
    commands = lab.commands("docker")
    job_at = next(i for i, c in enumerate(commands) if " run --rm " in c)
    assert [c for c in commands[:job_at] if " up " in c][-1].startswith("compose -p ems_system-sms"), \
        "after the last stack came up"
    assert f"IMAGE_TAG={OLD}\n" in (lab.root / "ems_system/repo/ems/.env").read_text()
    assert ups(lab)[-2:] == ["compose -p ems_system-ems", "compose -p ems_system-sms"], "both put back"


def test_a_first_deploy_lets_compose_start_what_the_job_depends_on(lab):
    stacks = with_jobs(lab, MIGRATE)
    lab.answer("docker", "ps -aq --filter label=com.docker.compose.project=ems_system-ems *", "")
    lab.answer("docker", JOB_RUN.format("migrate"))
    deploy(lab, stacks)
    (call,) = job_calls(lab)
    assert "--no-deps" not in call.argv, "nothing runs yet: its database must be started for it"


def test_a_job_whose_service_the_compose_file_lacks_refuses_the_deploy(lab):
    stacks = with_jobs(lab, replace(MIGRATE, service="backend"))
    run = deploy(lab, stacks)
    assert run.code == Code.REFUSED
    assert "job migrate runs as service backend, which its compose file does not have (it has: ems)" in run.error
    assert not job_calls(lab) and not (lab.state / "releases.jsonl").exists()


def test_a_rollback_declares_no_job_unless_asked(lab):
    stacks = with_jobs(lab, MIGRATE)
    assert "add_job" not in deploy_program(lab.target, stacks, intent(action="rollback", jobs=False)).text
    text = deploy_program(lab.target, stacks, intent(action="rollback", jobs=True)).text
    assert "run add_job ems migrate ems before 30 '' npx prisma migrate deploy" in text


def test_a_jobs_words_reach_docker_exactly_as_written(lab):
    words = ("-c", "echo \"$HOME\" 'x'; exit 0 # `id` $(id) * ?", "--", " spaced  ")
    stacks = with_jobs(lab, replace(MIGRATE, command=words, entrypoint=("/bin/sh", "-e x")))
    lab.answer("docker", JOB_RUN.format("migrate"))
    assert deploy(lab, stacks).code == 0
    (call,) = job_calls(lab)
    assert tuple(call.argv[-len(words) - 3:]) == ("--entrypoint", "/bin/sh '-e x'", "ems", *words), \
        "compose splits --entrypoint as a shell would; the command's words go as they are"
