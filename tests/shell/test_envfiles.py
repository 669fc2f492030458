"""fab env-check's reads (sh/envfiles.sh) under bash: keys a template sets that the .env lacks, placeholders,
must_match groups compared on the host, and no value in what leaves it. Fast tier: bash over files written here
(a binary's value, read from its unit's EnvironmentFile, is tested end to end with systemd: test_binary.py)."""
from dataclasses import replace

from tasks.core.programs.envfiles import env_program, findings

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
