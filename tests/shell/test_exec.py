"""fab exec's program (sh/exec.sh) under bash with a stub docker: the running container of a stack's service
found and said, a stack's only service chosen for it, and every way there is no such container refused by
name, before any command runs. The command line it then runs (programs/exec.py) quotes each word once. Fast
tier."""
import shlex

import pytest

from tasks.core.errors import ToolError
from tasks.core.programs.exec import exec_command, exec_program, found

from .conftest import Lab, finished

ID = "4f3c2b1a0d9e" * 2


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    yield lab
    finished(lab)


def ems(lab):
    return next(s for s in lab.target.system.stacks if s.name == "ems")


def test_the_first_running_container_of_the_service_is_found(lab):
    lab.answer("docker", "compose -p * config --services", "ems\nredis\n")
    lab.answer("docker", "compose -p * ps -q --status running -- redis", f"{ID}\n{'9' * 24}\n")
    run = lab.run(exec_program(lab.target, ems(lab), "redis"))
    assert run.code == 0, run.stdout
    assert found(run.result) == (ID, "redis")


def test_a_stack_with_one_service_needs_no_service_named(lab):
    lab.answer("docker", "compose -p * config --services", "ems\n")
    lab.answer("docker", "compose -p * ps -q --status running -- ems", f"{ID}\n")
    run = lab.run(exec_program(lab.target, ems(lab), ""))
    assert run.code == 0 and found(run.result) == (ID, "ems"), run.stdout


def test_several_services_and_none_named_is_refused_naming_them(lab):
    lab.answer("docker", "compose -p * config --services", "ems\nredis\n")
    run = lab.run(exec_program(lab.target, ems(lab), ""))
    assert run.code == 16 and "stack ems has several services: name one with --service (ems redis)" in run.error
    assert not [c for c in lab.commands("docker") if " ps " in f" {c} "]


def test_a_service_the_stack_lacks_is_refused_by_name(lab):
    lab.answer("docker", "compose -p * config --services", "ems\nredis\n")
    run = lab.run(exec_program(lab.target, ems(lab), "celery"))
    assert run.code == 16 and "stack ems has no service celery (it has: ems redis)" in run.error


def test_a_service_with_nothing_running_is_refused_saying_its_states(lab):
    lab.answer("docker", "compose -p * config --services", "ems\n")
    lab.answer("docker", "compose -p * ps -q --status running -- ems", "")
    lab.answer("docker", "compose -p * ps -a --format * -- ems", "ems_system-ems-1 exited\n")
    run = lab.run(exec_program(lab.target, ems(lab), "ems"))
    assert run.code == 16 and "no container of ems/ems is running (ems_system-ems-1 exited)" in run.error
    assert run.result.one("exec") is None


def test_a_report_that_is_not_a_container_id_is_refused(lab):
    lab.answer("docker", "compose -p * config --services", "ems\n")
    lab.answer("docker", "compose -p * ps -q --status running -- ems", "x; reboot\n")
    run = lab.run(exec_program(lab.target, ems(lab), ""))
    with pytest.raises(ToolError, match="cannot read"):
        found(run.result)


@pytest.mark.parametrize("words", [["psql", "-U", "admin", "-c", "select 'a;b' as \"x y\""],
                                   ["sh", "-c", "echo $HOME; exit 3"], ["--help"], ["printf", "%s\n", "", "a\nb"]])
def test_the_command_line_gives_each_word_back_exactly(lab, words):
    line = exec_command(lab.target, ID, words, terminal=False)
    assert shlex.split(line) == ["docker", "exec", "-i", ID, *words]
    assert shlex.split(exec_command(lab.target, ID, words, terminal=True))[:3] == ["docker", "exec", "-it"]
