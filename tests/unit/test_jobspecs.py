"""hosts.yml's jobs: on a stack: what is built, and every hostile value refused with its line (exit 2) before
anything connects. Fast tier."""
import pytest

from tasks.core import inventory
from tasks.core.jobs import Job

from .test_inventory import binary, error_of, first_stack_with, write


def jobs_of(tmp_path, keys):
    return inventory.load(write(tmp_path, first_stack_with(keys))).host("vps1").systems[0].stacks[0].jobs


def test_jobs_are_built_in_order_with_their_defaults(tmp_path):
    jobs = jobs_of(tmp_path, 'jobs: {migrate: {service: backend, command: "npx prisma migrate deploy"}, '
                             'warm: {service: backend, command: [sh, -c, "curl -s x | wc -l"], when: after, '
                             'timeout: 30}}')
    assert jobs == (Job("migrate", "backend", ("npx", "prisma", "migrate", "deploy"), "before", 600),
                    Job("warm", "backend", ("sh", "-c", "curl -s x | wc -l"), "after", 30))


def test_an_entrypoint_replaces_the_images_own(tmp_path):
    (job,) = jobs_of(tmp_path, 'jobs: {m: {service: b, entrypoint: npx, command: "prisma migrate deploy"}}')
    assert job.entrypoint == ("npx",) and job.command == ("prisma", "migrate", "deploy")


def test_a_command_string_is_split_as_a_shell_would_quote_it_but_runs_without_one(tmp_path):
    (job,) = jobs_of(tmp_path, '''jobs: {m: {service: b, command: "python manage.py migrate --database 'main db' $X"}}''')
    assert job.command == ("python", "manage.py", "migrate", "--database", "main db", "$X")


@pytest.mark.parametrize("job, message", [
    ("{service: b}", "jobs.m.command is missing"),
    ("{command: x}", "jobs.m.service is missing"),
    ("{service: '../b', command: x}", "is not a compose service name"),
    ("{service: b, command: ''}", "must be a command"),
    ("{service: b, command: []}", "must be a command"),
    ("{service: b, command: [a, '']}", "must be a command"),
    ("{service: b, command: \"a 'b\"}", "cannot be split into words (No closing quotation)"),
    ("{service: b, command: [\"a\\nb\"]}", "no control characters"),
    ("{service: b, command: [\"a\\u001fb\"]}", "no control characters"),
    ("{service: b, command: [a, {x: 1}]}", "must be a command"),
    ("{service: b, command: 42}", "must be a command"),
    ("{service: b, command: x, when: during}", "'before' or 'after'"),
    ("{service: b, command: x, timeout: 0}", "timeout must be a whole number from 1 to 86400"),
    ("{service: b, command: x, timeout: 86401}", "timeout must be a whole number from 1 to 86400"),
    ("{service: b, command: x, timeout: 1h}", "timeout must be a whole number from 1 to 86400"),
    ("{service: b, command: x, retries: 3}", "unknown key 'retries'"),
    ("{service: b, command: x, entrypoint: []}", "must be a command"),
    ("{service: b, command: x, entrypoint: [\"a\\u0000\"]}", "no control characters"),
])
def test_a_hostile_job_is_refused_with_its_line(tmp_path, job, message):
    msg = error_of(write(tmp_path, first_stack_with(f"jobs: {{m: {job}}}")))
    assert "hosts.yml:5" in msg and message in msg, msg


def test_a_job_name_that_is_not_a_safe_name_is_refused(tmp_path):
    msg = error_of(write(tmp_path, first_stack_with("jobs: {'../m': {service: b, command: x}}")))
    assert "hosts.yml:5" in msg and "is not a safe name" in msg, msg


def test_a_command_of_more_than_64_words_is_refused(tmp_path):
    msg = error_of(write(tmp_path, first_stack_with(f"jobs: {{m: {{service: b, command: \"{' '.join(['w'] * 65)}\"}}}}")))
    assert "a list of 1-64 words" in msg, msg


def test_a_binary_stack_has_no_jobs(tmp_path):
    text = binary("path: /opt/p/p, unit: p}").replace("infra: {binary:", "infra: {jobs: {m: {service: b, command: x}}, binary:")
    assert "unknown key 'jobs'" in error_of(write(tmp_path, text))
