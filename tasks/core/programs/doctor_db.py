"""fab doctor's database checks: seed 001's "password authentication failed" and seed 000's "database files are
incompatible with server", each judged from what sh/doctor.sh read on the host."""
from __future__ import annotations

from .finding import Finding
from .protocol import Result, fields


def databases(result: Result) -> list[Finding]:
    """Each database stack's version check, then its clients' logins, unless its data does not fit its image:
    then the server is down or coming up between restarts, and a login's answer would only echo that."""
    broken = {d["stack"] for d in result.all("dbversion") if _mismatch(d)}
    return _versions(result) + _logins(result, broken)


def _mismatch(d: dict) -> bool:
    """The image and the data folder both say their PostgreSQL major, and they differ."""
    image, volume = d.get("image", ""), d.get("volume", "")
    return bool(image and volume) and image.split(".")[0] != volume.split(".")[0]


def _versions(result: Result) -> list[Finding]:
    """The PostgreSQL major of the database's image against the one that made its data folder: a newer image on
    an old volume restarts forever ("database files are incompatible with server"), and no compose file change
    fixes the data."""
    out = []
    for d in result.all("dbversion"):
        stack, state, image, volume = fields(d, "stack", "state", "image", "volume")
        if not image or not volume:
            continue   # an image that does not say its major, or a volume not made yet
        if not _mismatch(d):
            out.append(Finding("database", "ok", f"stack {stack}: PostgreSQL {image} on data made by {volume}"))
            continue
        out.append(Finding("database", "fail", f"stack {stack}: the image runs PostgreSQL {image} but its data was made "
                                               f"by PostgreSQL {volume} (the container is {state}): database files "
                                               "are incompatible with server",
                           f"name postgres:{volume.split('.')[0]} in its compose file again and deploy (or fab rollback --host "
                           f"HOST); to upgrade the data: fab backup, then restore the dump into a new volume with "
                           f"PostgreSQL {image}"))
    return out


def _logins(result: Result, skip: set[str]) -> list[Finding]:
    """Each client's DB_USER and password against its PostgreSQL: seed 001's "password authentication failed"
    when the volume was made with another password (its init scripts ran once, on an empty volume)."""
    out = []
    for d in result.all("dblogin"):
        stack, state = fields(d, "stack", "result")
        if stack in skip:
            continue
        if state == "down":
            out.append(Finding("database", "fail", f"stack {stack}: PostgreSQL is not running",
                               f"fab deploy --host HOST (or fab logs --host HOST --stack {stack})"))
            continue
        client, path, user, name = fields(d, "client", "path", "user", "database")
        if state == "ok":
            out.append(Finding("database", "ok", f"{client} logs in to {stack} as {user} (database {name})"))
            continue
        why = d.get("text", "")
        old = "password authentication failed" in why
        out.append(Finding("database", "fail", f"{client} cannot log in to {stack} as {user}: {why}"
                           + (" (the volume was made with another password: POSTGRES_PASSWORD and the init scripts "
                              "apply only to an empty volume)" if old else ""),
                           f"set the password the volume has in {path}, or change it in PostgreSQL: fab exec --host "
                           f"HOST --stack {stack} -- psql -U postgres" if old else f"check {path} against {stack}"))
    return out
