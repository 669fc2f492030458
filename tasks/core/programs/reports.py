"""Every fact a program reports, ``@@data KIND {json}``, declared once, here: the fields each kind carries.

The shell's ``data KIND NAME VALUE...`` sends a flat object of strings; the reader checks each line against
its kind as it arrives: an unknown kind, a field missing, a field no kind of that name carries, or a value
that is not a string is a clear error naming the kind (what a host sends is not trusted), never a KeyError
later. Two kinds are JSON the shell did not build field by field: a release's ``config`` (also its record in
releases.jsonl) and a backup's ``manifest`` (its manifest.json); their own parsers read them.

Notation: ``name`` a field every line carries, ``name?`` one some lines carry (a kind with two shapes, such
as a token file that is there, with its mode, or missing).
"""
from __future__ import annotations

KINDS = """
api             status? expiry? scopes? has_scopes? unreachable?
backup          name stack bytes holds seconds
cert            source name pem
clock           epoch
compose         stack config
config_moved    from to
current         release tag
current_pin     app pin
dblogin         stack result client? path? user? database? text?
dbversion       stack state image volume
deploy_key      path public result
dir             path result mode?
docker          result source?
docker_room     path bytes
drill           database tables rows seconds
env             stack result compose? path?
env_match       keys result where
env_missing     stack key
env_placeholder stack key
env_set         stack key result file
exec            container service
file            missing? mode? mtime? dir_mode?
files_drill     part files bytes seconds
fs              path size avail files ffree
history         sha256
interrupted     release
job             stack name result exit seconds
lock            holder stale gone interrupted
login           result error?
migrated        at
network         name result
networks        names
offsite         repo result summary? seconds? error?
offsite_check   repo result seconds error?
offsite_listed  repo snapshots? error?
offsite_note    line
old             project workdir files service ref pin
old_volume      name info
os              id version family
pin             app pin
placed          stack host
plan_pin        app now after why
plan_stack      stack action
placeholder     path key
problem         text
prune_cache     size result
pruned          what name bytes result why?
recovered       kind path
refuse          reason
repo            result url commit
restic_key      path mode sha256 ssh_public value?
restored        name stack before
revoked         status curl
retention       stack name action reason? new?
root_login      result
rotated         at
saved_old       project workdir files
saved_pin       app pin
secrets         missing? mode? mtime?
size            name bytes
space           need avail
stack           name containers
stack_error     stack text
swarm_info      json
swarm_node      json
swarm_service   json
swarm_task      json
swarm_tokens    worker manager
switch          switch_ms volumes
switched        release from
token           path missing? mode?
tools           result names?
unchecked       project service
unit            path template result
unit_state      stack unit state sub since target
unitenv         unit path result
unset           stack variable
user            name created keys
versions        engine compose
volume          stack name result
whoami          uid user
"""
JSON_KINDS = {"config", "manifest"}


def _parse(text: str) -> dict[str, tuple[frozenset, frozenset]]:
    kinds = {}
    for line in text.strip().splitlines():
        kind, *names = line.split()
        kinds[kind] = (frozenset(n for n in names if not n.endswith("?")),
                       frozenset(n.removesuffix("?") for n in names))
    return kinds


FIELDS = _parse(KINDS)


def problem(kind: str, obj: dict) -> str | None:
    """What is wrong with a reported object of ``kind`` (None: nothing)."""
    if kind in JSON_KINDS:
        return None
    if kind not in FIELDS:
        return f"no kind {kind!r} is declared (programs/reports.py)"
    required, known = FIELDS[kind]
    missing, unknown = sorted(required - obj.keys()), sorted(obj.keys() - known)
    if missing or unknown:
        return f"{kind}: " + "; ".join(filter(None, [missing and f"missing {', '.join(missing)}",
                                                   unknown and f"unknown {', '.join(unknown)}"]))
    wrong = sorted(k for k, v in obj.items() if not isinstance(v, str))
    return f"{kind}: {', '.join(wrong)} must be strings" if wrong else None
