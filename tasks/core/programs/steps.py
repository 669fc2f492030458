"""Every step a program may run: the library function and its arguments, declared once, here.

A program's body is ``run NAME ARGS`` lines; ``Program.step`` checks each against its signature when the program
is built (an unknown step, a missing or extra argument, a word where a number belongs, a line break where the
shell reads one line), so a mistake is a test failure, never a remote program that misreads its arguments.
Each library function's comment in ``sh/`` starts with the same signature (``# add_path PART PATH
add_stack NAME COMPOSE ...:``);
a unit test holds the two together.

Notation: ``NAME`` one argument, ``NAME:int`` a whole number, ``NAME:lines`` one that may span lines, ``[NAME]``
optional, ``NAME...`` one or more, ``[NAME...]`` any number, ``[A B]...`` any number of pairs, ``a|b`` one of
those words.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

SIGNATURES = """
add_binary STACK PATH RELEASES UNIT OWNER MODE KEEP:int WAIT:int HEALTH
add_database STACK PROJECT SERVICE ROLE DATABASES [swarm]
add_image APP REPO TAG PIN
add_job STACK NAME SERVICE before|after TIMEOUT:int ENTRYPOINT WORD...
add_path PART PATH
add_stack NAME COMPOSE ENV PROJECT WAIT:int HEALTH APPS SCALE
add_volume PART NAME...
backup_done
backup_take STACK
backups_before_deploy
backups_report STACK...
begin
bootstrap_check
bootstrap_docker distro|docker-ce MIRROR
bootstrap_tools
check_history
check_placeholders [WHAT...]
check_secrets
check_token_file PATH
checkout_ref REF
config_snapshot [FILE SHA256]...
copy_all
create_user NAME KEYS:lines
distro_mirror distro|docker-ce MIRROR
docker_room
doctor_facts [WHAT...]
doctor_tls [FOLDER...]
ensure_dir PATH MODE
ensure_env STACK COMPOSE TEMPLATE VALUES:lines [VARIABLE...]
ensure_network NAME
ensure_unit UNITFILE TEMPLATE [FOLDER...]
env_check [WHAT...]
env_match STACK:KEY...
env_set STACK KEY
exec_find STACK SERVICE
fetch_binary STACK TAG SHA PIN [GOOD...]
fetch_images
fetch_stack STACK COMPOSE PROJECT
files_drill NAME
files_live NAME [make-volumes]
files_take
go_live
infra_pin IMAGE@DIGEST
lock_break
lock_free
lock_hold
lock_root
lock_take
login_check
logs_show STACK SERVICE TAIL:int SINCE follow|once
logs_wait
migrated_already
migration_checks_or_die
need_docker
nginx_pool STACK SERVICE FOLDER UPSTREAM=PORT...
on_swarm STACK
offsite_check SUBSET REPO...
offsite_fetch REPO SNAPSHOT SOURCE...
offsite_key_show show|send sftp|none
offsite_list REPO...
offsite_ready
offsite_scratch
offsite_send LAST:int DAILY:int WEEKLY:int MONTHLY:int REPO...
os_detect
plan_pins
plan_stacks
preflight_report
probe_token_start
preflight_stacks
prune_after_deploy ROOT KEEP:int REPO...
prune_backups STACK LAST:int DAILY:int WEEKLY:int MONTHLY:int prune|preview
prune_cache list|remove
prune_containers list|remove PROJECT...
prune_images ROOT KEEP:int list|remove REPO...
prune_releases STACK [GOOD...]
prune_untagged list|remove
receive_token
record STATE
recover_data STACK NAME
recover_done
recover_env
recover_fetch REPO SNAPSHOT OLD [PATH...]
recover_key
recover_scratch [PATH...]
recover_teardown [PATH...]
refresh_stack STACK
registry_login
registry_logout
remove_old
render_start STACK...
repo_clone FOLDER URL REF KEY KNOWN_HOST
repo_key KEY
repoint_env ENV OLD NEW
require_healthchecks STACK
restore_drill STACK NAME
restore_live STACK NAME start|keep-stopped [CLIENT...]
rotate_token
save_plan LINE...
show_current
show_secrets
show_stack STACK COMPOSE PROJECT
show_state
show_unit STACK UNIT PATH
start_first STACK DRAIN:int BATCH:int [VOLUME...]
survey
swarm_availability HOST LABEL active|pause|drain WAIT:int
swarm_facts
swarm_hold_state
swarm_init ADDRESS
swarm_join ADDRESS MANAGER
swarm_lock_break
swarm_node NODE HOST manager|worker [LABEL...]
swarm_placed STACK SERVICE
swarm_read_state
swarm_report
swarm_tokens
switch_over
together STACK...
token_check
token_expiry
token_gate
use_pin APP TAG@DIGEST
"""
_PART = re.compile(r"\[(?P<group>[^\]]+)\](?P<more>\.\.\.)?|(?P<one>[^\s\[]+?)(?P<many>\.\.\.)?(?=\s|$)")


@dataclass(frozen=True)
class Arg:
    name: str
    kind: str = "text"        # text | int | lines | a choice "a|b"
    times: str = "one"        # one | optional | many (one or more) | any (none or more)
    width: int = 1            # the arguments it takes each time (a [FILE SHA256]... pair: 2)


@dataclass(frozen=True)
class Signature:
    name: str
    args: tuple[Arg, ...]
    text: str                 # as the library's comment writes it

    def check(self, values: tuple) -> None:
        """``values`` fit this signature, or a StepError saying how not."""
        rest = list(values)
        for arg in self.args:
            take = {"one": arg.width, "optional": min(arg.width, len(rest))}.get(arg.times, len(rest))
            if arg.times in ("one", "many") and len(rest) < arg.width:
                raise StepError(f"{self.name}: {arg.name} is missing ({self.text})")
            if take % arg.width:
                raise StepError(f"{self.name}: {arg.name} comes in groups of {arg.width} ({self.text})")
            for value in rest[:take]:
                _fits(self, arg, value)
            rest = rest[take:]
        if rest:
            raise StepError(f"{self.name}: {len(rest)} argument(s) too many ({self.text})")


class StepError(Exception):
    """A program built with a step that does not fit its signature (a bug in the tool, found by every test)."""


def _fits(sig: Signature, arg: Arg, value) -> None:
    if arg.kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise StepError(f"{sig.name}: {arg.name} must be a whole number, not {value!r}")
        return
    if not isinstance(value, str):
        raise StepError(f"{sig.name}: {arg.name} must be text, not {type(value).__name__}")
    if "\0" in value or ("\n" in value and arg.kind != "lines"):
        raise StepError(f"{sig.name}: {arg.name} must be one line")
    if "|" in arg.kind and value not in arg.kind.split("|"):
        raise StepError(f"{sig.name}: {arg.name} must be one of {arg.kind.replace('|', ', ')}, not {value!r}")


def _parse(line: str) -> Signature:
    name, _, rest = line.partition(" ")
    args = []
    for m in _PART.finditer(rest):
        if m["group"]:
            words = m["group"].split()
            arg = _arg(" ".join(words) if len(words) > 1 else words[0].removesuffix("..."))
            times = "any" if m["more"] or m["group"].endswith("...") else "optional"
            args.append(Arg(arg.name, arg.kind, times, len(words)))
        else:
            arg = _arg(m["one"])
            args.append(Arg(arg.name, arg.kind, "many" if m["many"] else "one"))
    text = " ".join([name, *(a for a in re.sub(r":(int|lines)\b", "", rest).split())])
    return Signature(name, tuple(args), text)


def _arg(word: str) -> Arg:
    name, _, kind = word.partition(":")
    return Arg(name, kind or (word if "|" in word else "text"))


STEPS: dict[str, Signature] = {s.name: s for s in map(_parse, SIGNATURES.strip().splitlines())}


def check(name: str, values: tuple) -> None:
    """A step ``name`` with ``values`` is one the library declares, with the arguments it reads."""
    if name not in STEPS:
        raise StepError(f"{name} is not a step (programs/steps.py declares every one)")
    STEPS[name].check(values)
