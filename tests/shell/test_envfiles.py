"""fab env-check's reads (sh/envfiles.sh) under bash: keys a template sets that the .env lacks, placeholders,
must_match groups compared on the host, and no value in what leaves it. Fast tier: bash over files written here
(a binary's value, read from its unit's EnvironmentFile, is tested end to end with systemd: test_binary.py)."""
from dataclasses import replace

import pytest

from tasks.core.errors import BAD_INPUT, ToolError
from tasks.core.programs.declare import Intent
from tasks.core.programs.envfiles import env_program, findings, set_program, settable
from tasks.core.programs.protocol import Code

SECRET = "s3cr3t 'with' $dollar #hash"


def check(lab, must_match=(), stacks=None):
    target = lab.target
    system = replace(target.system, must_match=must_match, stacks=tuple(stacks or target.system.stacks))
    target = replace(target, system=system)
    run = lab.run(env_program(target))
    assert run.code == 0, run.stdout + run.stderr
    assert "s3cr3t" not in run.stdout + run.stderr
    return findings(target, run.result)


def env(lab, stack, text, name=".env"):
    path = lab.root / f"ems_system/repo/{stack}/{name}"
    path.write_text(text)
    return path


def test_keys_the_template_sets_and_the_env_lacks_and_placeholders_are_named(lab):
    env(lab, "ems", "DB_PASSWORD=change-me\nJWT_KEY=x\nPORT=8080\n", ".env_example")
    env(lab, "ems", "DB_PASSWORD=change-me\nPORT=8080\n")
    env(lab, "sms", "A=1\n", ".env_example")
    found = check(lab)
    assert ("warn", "stack ems: its .env lacks JWT_KEY, which its template sets (compose reads it empty)") in found
    assert ("fail", "stack ems: DB_PASSWORD still holds its template's placeholder") in found
    assert ("fail", "stack sms has no .env (its template sets keys): fab setup makes it") in found
    assert len(found) == 3, found


def test_must_match_compares_on_the_host_and_says_which_differs_or_is_missing(lab):
    env(lab, "ems", f"DB_PASSWORD='{SECRET}'\n")
    env(lab, "sms", f'export DB_PASS="{SECRET}"\nOTHER=1\n')
    env(lab, "infra", "POSTGRES_PASSWORD=another\n")
    assert check(lab, (("ems:DB_PASSWORD", "sms:DB_PASS"),)) == []
    assert check(lab, (("ems:DB_PASSWORD", "sms:DB_PASS", "infra:POSTGRES_PASSWORD"),)) == [
        ("fail", "must_match ems:DB_PASSWORD sms:DB_PASS infra:POSTGRES_PASSWORD: infra:POSTGRES_PASSWORD differs "
                 "from ems:DB_PASSWORD")]
    assert check(lab, (("ems:DB_PASSWORD", "sms:NOPE"),)) == [
        ("fail", "must_match ems:DB_PASSWORD sms:NOPE: sms:NOPE not set")]


def test_a_group_across_hosts_is_said_not_compared(lab):
    stacks = [s for s in lab.target.system.stacks if s.name != "sms"]
    found = check(lab, (("ems:DB_PASSWORD", "sms:DB_PASS"),), stacks)
    assert found == [("note", "must_match ems:DB_PASSWORD sms:DB_PASS: its stacks run on other hosts too, not "
                               "compared here")]


VALUE = "it's \"quoted\" $HOME #not-a-comment\nsecond line\\"


def set_value(lab, key, value, text=None, stack="ems"):
    target = lab.target
    chosen = next(s for s in target.system.stacks if s.name == stack)
    path = lab.root / f"ems_system/repo/{stack}/.env"
    if text is not None:
        path.write_text(text)
        path.chmod(0o640)
    program = set_program(target, chosen, key, Intent("env-set", "", "", "ana@laptop", "laptop"))
    run = lab.run(program, stdin_tail=settable(target, chosen, key, value) + "\n")
    return run, path


def test_env_set_replaces_the_keys_first_line_drops_the_later_ones_and_keeps_the_files_mode(lab):
    run, path = set_value(lab, "DB_PASSWORD", VALUE, "A=1\nDB_PASSWORD=old\n# DB_PASSWORD=commented\n"
                                                     "export DB_PASSWORD=twice\nB=2")
    assert run.code == 0 and run.result.one("env_set") == {"stack": "ems", "key": "DB_PASSWORD", "result": "replaced",
                                                           "file": str(path)}
    assert path.read_text() == ('A=1\nDB_PASSWORD="it\'s \\"quoted\\" \\$HOME #not-a-comment\\nsecond line\\\\"\n'
                                "# DB_PASSWORD=commented\nB=2\n")
    assert oct(path.stat().st_mode & 0o777) == "0o640", "the operator's mode stays"
    assert "HOME #not" not in run.stdout + run.stderr and not (lab.state / "lock").exists()
    assert '"task":"env-set","result":"ok"' in (lab.state / "audit.jsonl").read_text()


def test_env_set_adds_a_key_and_makes_a_missing_env_root_only(lab):
    run, path = set_value(lab, "NEW_KEY", "v4lue", stack="sms")
    assert run.code == 0 and run.result.one("env_set")["result"] == "added"
    assert path.read_text() == 'NEW_KEY="v4lue"\n' and oct(path.stat().st_mode & 0o777) == "0o600"


def test_nothing_arrived_or_a_line_for_another_key_changes_nothing(lab):
    target, ems = lab.target, lab.target.system.stacks[1]
    path = lab.root / "ems_system/repo/ems/.env"
    path.write_text("A=1\n")
    for tail, said in (("", "no value arrived"), ('OTHER="x"\n', "not a line for DB_PASSWORD")):
        run = lab.run(set_program(target, ems, "DB_PASSWORD", Intent("env-set", "", "", "a", "b")), stdin_tail=tail)
        assert run.code == Code.REFUSED and said in run.error and path.read_text() == "A=1\n"


@pytest.mark.parametrize("key, value, said", [
    ("1BAD", "v", "is not an environment variable name"),
    ("A;reboot", "v", "is not an environment variable name"),
    ("IMAGE_TAG", "v", "the tool's own line"),
    ("COMPOSE_PROJECT_NAME", "v", "the tool's own line"),
    ("K", "", "is empty"),
    ("K", "a\x00b", "control character"),
    ("K", "a\rb", "control character"),
    ("K", "x" * 65537, "longer than 64 KiB"),
])
def test_env_set_refuses_a_bad_key_or_value_without_repeating_the_value(lab, key, value, said):
    with pytest.raises(ToolError) as e:
        settable(lab.target, lab.target.system.stacks[1], key, value)
    assert said in str(e.value) and e.value.code == BAD_INPUT and (len(value) < 3 or value not in str(e.value))
