"""The rules every value obeys before it reaches a remote shell or a file on the VPS: tags, digests, pins,
tokens, names, registry servers, URLs. The bottom layer: it imports nothing of the tool but its errors."""
from __future__ import annotations

import re
from datetime import datetime, timezone

from .errors import BAD_INPUT, ToolError

# OCI distribution spec: a tag is [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
PIN = re.compile(TAG.pattern + "@" + DIGEST.pattern)           # tag@digest: what a release pins per stack
RELEASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
WORD = re.compile(r"[a-z][a-z-]{0,31}")                          # a release's state: deploying, good, failed
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")     # host, system, stack, volume: becomes a path
USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")                 # a login (useradd's, never an option)
MIRROR_URL = re.compile(r"https?://[A-Za-z0-9][A-Za-z0-9.-]*(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%+-]+)*/?")  # no user, query
# A release's label: its one tag, or app=tag pairs when its apps run different versions.
LABEL = re.compile(rf"{TAG.pattern}|{SAFE_NAME.pattern}={TAG.pattern}(?:,{SAFE_NAME.pattern}={TAG.pattern})*")
IMAGE_NAME = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9.-]*(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*")
REGISTRY_SERVER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?(?::[0-9]{1,5})?")  # host[:port], never an option
# What a terminal must never be handed as text: control characters (ESC starts a sequence that rewrites the
# screen), and the invisible format characters that reorder or hide text (U+202E shows "exe.txt" for "txt.exe").
UNSHOWN = r"\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff"
OPERATOR = re.compile(rf"[^\x09\x0a{UNSHOWN}]{{1,64}}")                   # FAB_OPERATOR: printable, one line
REGISTRY_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
ENV_VAR = re.compile(r"[A-Z_][A-Z0-9_]*")
# Variables the shell, docker or compose read themselves: an app's tag variable must not be one (tag_var: PATH
# would hand compose a PATH of "v1@sha256:...", and docker would no longer be found).
RESERVED_VAR = re.compile(r"PATH|HOME|IFS|PWD|OLDPWD|SHELL|USER|LOGNAME|LANG|LANGUAGE|TERM|TMPDIR|HOSTNAME|TZ|UID|EUID"
                          r"|PPID|PS[0-4]|ENV|CDPATH|GLOBIGNORE|(?:LC|COMPOSE|DOCKER|BASH|LD|SSH|XDG)_[A-Z0-9_]*")
FILE_NAME = re.compile(r"(?!\.\.?$)[A-Za-z0-9._-]{1,64}")       # one path component, not . or ..
PLACEHOLDER = re.compile(r"[^\x00-\x1f\x7f]{1,200}")              # a value hosts.yml calls a placeholder
SERVICE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}")     # a compose service name
# An image a service that pins nothing ran (postgres:15-alpine@sha256:...), recorded as "stack/service": what
# a rollback tags again, so compose runs that digest.
INFRA_PIN = re.compile(rf"{IMAGE_NAME.pattern}(?::{TAG.pattern})?@{DIGEST.pattern}")
INFRA_KEY = re.compile(rf"{SAFE_NAME.pattern}/{SERVICE.pattern}")
ENV_KEY = re.compile(rf"{SAFE_NAME.pattern}:[A-Za-z_][A-Za-z0-9_]{{0,127}}")   # must_match: STACK:KEY
JOB_KEY = re.compile(rf"{SAFE_NAME.pattern}/{SAFE_NAME.pattern}")   # a run-once job: stack/name
# deploy --ref: a branch, tag or commit of repo/'s origin (no leading '-', no '..', nothing a shell or git reads
# as more than a name).
GIT_REF = re.compile(r"(?!.*\.\.)(?!.*//)[A-Za-z0-9_][A-Za-z0-9._/-]{0,127}(?<![./])")
# repo: url: of a system: git@host:path (scp-like), ssh://[user@]host[:port]/path or https://host/path; never
# starting with '-' (git would read an option), no spaces, quotes or anything a shell reads.
_GIT_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?"
_GIT_PATH = r"[A-Za-z0-9_~][A-Za-z0-9._~/-]{0,254}"
GIT_URL = re.compile(rf"(?P<user>[A-Za-z0-9_][A-Za-z0-9_.-]{{0,31}})@(?P<host>{_GIT_HOST}):(?!/){_GIT_PATH}"
                     rf"|ssh://(?:(?P<suser>[A-Za-z0-9_][A-Za-z0-9_.-]{{0,31}})@)?(?P<shost>{_GIT_HOST})"
                     rf"(?::(?P<port>[0-9]{{1,5}}))?/{_GIT_PATH}"
                     rf"|https://{_GIT_HOST}(?::[0-9]{{1,5}})?/{_GIT_PATH}")
DB_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,62}")    # a PostgreSQL database or role: also a file name
# A backup: the folder <stack>-<UTC time>[-N] that fab backup writes in data/backups/.
BACKUP_STAMP = re.compile(r"[0-9]{8}T[0-9]{6}Z(?:-[0-9]{1,3})?")
BACKUP_NAME = re.compile(rf"{SAFE_NAME.pattern}-{BACKUP_STAMP.pattern}")


def backup_time(name: str) -> datetime | None:
    """When backup ``name`` was taken, from the stamp its name ends with (UTC); None for another name."""
    m = re.search(r"-([0-9]{8}T[0-9]{6}Z)(?:-[0-9]{1,3})?$", name)
    return datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc) if m else None
# A path of backup: paths (after normalising): the characters a part of a files backup may hold. A part is
# system/<relative path>, host/<absolute path> or volume/<name>: the folder in the backup's tree/ it is copied
# to, read back from PARTS when restored (written so that it is also a POSIX ERE for the shell's =~; a ".."
# component is refused apart: files_check in the shell, _part in programs/backup.py).
BACKUP_PATH = re.compile(r"/?[A-Za-z0-9._@+-]+(/[A-Za-z0-9._@+-]+)*")
FILE_PART = re.compile(r"(system|host|volume)(/[A-Za-z0-9._@+-]+)+")
# A restic repository of backup: offsite: sftp:[user@]host:/path, rest:http(s)://host[:port]/path,
# s3:http(s)://host[:port]/bucket[/path] or local:/path (a second disk); never a password in it (user:pass@ is
# refused: it would be an argument on the VPS), never an option.
_REPO_PATH = r"[A-Za-z0-9._@+-]+(?:/[A-Za-z0-9._@+-]+)*/?"
OFFSITE = re.compile(rf"sftp:(?:[A-Za-z0-9_][A-Za-z0-9_.-]{{0,31}}@)?{_GIT_HOST}:/{_REPO_PATH}"
                     rf"|(?:rest|s3):https?://{_GIT_HOST}(?::[0-9]{{1,5}})?/(?:{_REPO_PATH})?"
                     rf"|local:/{_REPO_PATH}")
# An age (backup: {max_age: 26h}): minutes, hours or days, from 1m to 400d (checked by ``seconds``).
AGE = re.compile(r"(?:[1-9][0-9]{0,5})[mhd]")
_AGE_UNIT = {"m": 60, "h": 3600, "d": 86400}


def seconds(age: str) -> int:
    """An AGE in seconds."""
    return int(age[:-1]) * _AGE_UNIT[age[-1]]


# fab logs --since: an AGE back from now, or a date with a time of day if wanted (the host's time zone).
SINCE_DATE = re.compile(r"[0-9]{4}-[01][0-9]-[0-3][0-9](?:T[0-2][0-9]:[0-5][0-9](?::[0-5][0-9])?)?")


# restic check --read-data-subset: a percentage (0.1% to 100%) or n/m (the n-th of m parts).
SUBSET = re.compile(r"(?:100|[1-9][0-9]?(?:\.[0-9])?|0\.[1-9])%|[1-9][0-9]{0,2}/[1-9][0-9]{0,2}")
UNIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,80}")           # a systemd unit name (".service" optional)
OWNER = re.compile(r"[a-z_][a-z0-9_-]{0,31}(?::[a-z_][a-z0-9_-]{0,31})?")   # user[:group] for chown
FILE_MODE = re.compile(r"0?[0-7]{3}")
COMMIT = re.compile(r"[0-9a-f]{40}")
SHA256 = re.compile(r"[0-9a-f]{64}")
RESTIC_KEY = re.compile(r"[A-Za-z0-9+/]{16,200}={0,2}")   # a restic key the tool made: base64 of random bytes
SNAPSHOT_ID = re.compile(r"[0-9a-f]{8,64}")               # a restic snapshot: its id or a prefix (8: restic's short id)
# A Swarm node label of hosts.yml (labels: {db: "true"}): Docker's label key grammar, and never in the fab.
# namespace, which the tool writes itself (fab.host names the inventory host a node is).
NODE_LABEL = re.compile(r"(?!fab\.)[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
COMPOSE_PROJECT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")   # what docker compose accepts as a project name
URL = re.compile(r"https?://[^\s'\"`$\\]+")
# Where a token may be sent: https, or plain http to the VPS's own loopback only (a stand-in, a local proxy).
API_URL = re.compile(r"(?:https://[^\s'\"`$\\/@]+|http://(?:127\.0\.0\.1|localhost|\[::1\])(?::[0-9]{1,5})?)(?:/[^\s'\"`$\\]*)?")
# The seed's update.sh sources the token file, so a token must not hold anything a shell would interpret.
TOKEN = re.compile(r"[A-Za-z0-9_.-]{8,255}")
# Token shapes GitHub issues (classic, OAuth, app, fine-grained): masked wherever they appear, glued to a word,
# an underscore or a colour code too (a \b before them let `x<token>` and `\e[31m<token>` print whole).
# Docker Swarm's join tokens (SWMTKN-1-...) and its unlock key (SWMKEY-1-...): whoever has one joins or unlocks
# the cluster, so they are masked the same way.
TOKEN_SHAPES = re.compile(r"(?:gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{20,}|SWM(?:TKN|KEY)-1-[A-Za-z0-9+/=-]{20,})")


def check_tag(tag: str) -> str:
    """``tag`` if it is a valid OCI tag; a clear error otherwise (before anything remote runs)."""
    if not isinstance(tag, str) or not TAG.fullmatch(tag):
        raise ToolError(f"{tag!r} is not a valid image tag (letters, digits, _ . -, at most 128, "
                        "not starting with . or -)", BAD_INPUT)
    return tag


def check_tags(value: str) -> str | dict[str, str]:
    """--tag: one tag for every app (pinned image), or ``app=tag`` pairs, comma-separated, for some of them."""
    if "=" not in value:
        return check_tag(value)
    tags: dict[str, str] = {}
    for part in value.split(","):
        app, _, tag = part.partition("=")
        if not SAFE_NAME.fullmatch(app) or app in tags:
            raise ToolError(f"--tag {value!r}: {app!r} is not an app name, or comes twice (use app=tag,app=tag)",
                            BAD_INPUT)
        tags[app] = check_tag(tag)
    return tags


def check_ref(ref: str) -> str:
    """deploy --ref: a branch, tag or commit name git reads as nothing more."""
    if not isinstance(ref, str) or not GIT_REF.fullmatch(ref):
        raise ToolError(f"--ref {ref!r} is not a branch, tag or commit name (letters, digits, _ . / -, not starting "
                        "with - or ., no '..')", BAD_INPUT)
    return ref


def check_days(value) -> int:
    """--warn-days: a whole number of days (0-3650), or a clear error (exit 2) before anything connects."""
    if not re.fullmatch(r"[0-9]{1,4}", str(value)) or int(value) > 3650:
        raise ToolError(f"--warn-days must be a whole number of days from 0 to 3650, not {value!r}", BAD_INPUT)
    return int(value)


def check_label(label: str) -> str:
    """A release label (rollback --to): a tag, or app=tag pairs as `fab releases` shows them."""
    if not isinstance(label, str) or not LABEL.fullmatch(label):
        raise ToolError(f"{label!r} is not a release tag (a tag, or app=tag pairs as 'fab releases' shows)", BAD_INPUT)
    return label


def pin_tag(pin: str) -> str:
    """The tag of a ``tag@digest`` pin."""
    return pin.split("@", 1)[0]


def check_token(token: str, what: str = "the new token") -> str:
    """A token that is safe to write as ``export GITHUB_TOKEN=...``. The error never repeats the value."""
    if not isinstance(token, str) or not TOKEN.fullmatch(token):
        raise ToolError(f"{what} is not a token (8-255 letters, digits, _ . -; no spaces, quotes or newlines)",
                        BAD_INPUT)
    return token


class Redactor:
    """Masks every known secret value and anything shaped like a GitHub token."""

    def __init__(self, *secrets: str):
        self.secrets = [s for s in secrets if s]

    def __call__(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "***")
        return TOKEN_SHAPES.sub("***", text)


# The one redactor of this process: rotate-token adds the new token to it before anything can print it.
redact = Redactor()
