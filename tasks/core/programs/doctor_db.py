"""fab doctor's database checks: seed 001's "password authentication failed" and seed 000's "database files are
incompatible with server", each judged from what sh/doctor.sh read on the host."""
from __future__ import annotations

from .finding import Finding
from .protocol import Result, fields


def versions(result: Result) -> list[Finding]:
    """The PostgreSQL major of the database's image against the one that made its data folder: a newer image on
    an old volume restarts forever ("database files are incompatible with server"), and no compose file change
    fixes the data."""
    out = []
    for d in result.all("dbversion"):
        stack, state, image, volume = fields(d, "stack", "state", "image", "volume")
        if not image or not volume:
            continue   # an image that does not say its major, or a volume not made yet
        if image.split(".")[0] == volume.split(".")[0]:
            out.append(Finding("database", "ok", f"stack {stack}: PostgreSQL {image} on data made by {volume}"))
            continue
        out.append(Finding("database", "fail", f"stack {stack}: the image runs PostgreSQL {image} but its data was made "
                                               f"by PostgreSQL {volume} (the container is {state}): database files "
                                               "are incompatible with server",
                           f"name postgres:{volume.split('.')[0]} in its compose file again and deploy (or fab rollback --host "
                           f"HOST); to upgrade the data: fab backup, then restore the dump into a new volume with "
                           f"PostgreSQL {image}"))
    return out


def logins(result: Result) -> list[Finding]:
    """Each client's DB_USER and password against its PostgreSQL: seed 001's "password authentication failed"
    when the volume was made with another password (its init scripts ran once, on an empty volume)."""
    out = []
    for d in result.all("dblogin"):
        stack, state = fields(d, "stack", "result")
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
