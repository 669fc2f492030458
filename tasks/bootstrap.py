"""fab bootstrap: a bare host made ready for the tool: Docker Engine, the Compose v2 plugin and the tools its
programs use, optionally a deploy user (and root's SSH login closed once that user is proven to log in), then
`fab setup` as usual."""
from __future__ import annotations

from dataclasses import replace

from .core import grammar
from .core.cli import command, print_program, select
from .core.errors import BAD_INPUT, FAILED, ToolError
from .core.model import Host
from .core.programs.bootstrap import (
    NewUser,
    bootstrap_program,
    bootstrapped,
    lock_root_program,
    logged_in,
    login_program,
)
from .core.programs.protocol import execute
from .core.pubkeys import authorized_keys
from .core.ssh import Session
from .core.ui import console, safe


@command({"dry-run": "print the remote program and change nothing",
          "create-user": "make this login user (sudo without a password, the docker group) with --authorized-key",
          "authorized-key": "the public key file (.pub) the new user logs in with",
          "lock-root": "then close root's SSH login, once a login as the new user is proven"})
def bootstrap(c, host=None, group=None, all=False, dry_run=False, create_user=None, authorized_key=None,
              lock_root=False):
    """Make a bare host ready: its OS checked, Docker Engine and the Compose v2 plugin installed and started.

    A host that already has them keeps them (a second run changes nothing). Then run 'fab setup'."""
    user = new_user(create_user, authorized_key, lock_root)
    with select(host, None, all, group) as sel:
        done = set()
        for target in sel.targets:   # (one program per host, whatever systems it runs)
            if target.host.name in done:
                continue
            done.add(target.host.name)
            if dry_run:
                print_program(target, bootstrap_program(target.host, user=user))
                continue
            got = install(sel.session(target), target.host, user)
            if user:
                console.print(f"  user {safe(got.user)}")
                prove_login(target.host, user, lock_root)


def install(session: Session, host: Host, user: NewUser | None = None):
    """Docker Engine, the Compose plugin and the tools on ``host`` (each only if missing), and what it found."""
    got = bootstrapped(execute(session, bootstrap_program(host, user=user), host.name))
    console.print(f"[bold]{safe(host.name)}[/] ({safe(got.os)}): Docker {safe(got.engine)}, Compose "
                  f"{safe(got.compose)}; " + (f"tools {safe(got.tools)}, Docker {safe(got.docker)}"
                                               if got.changed else "nothing to do, everything was in place"))
    return got


def new_user(name: str | None, key_file: str | None, lock_root: bool) -> NewUser | None:
    """The deploy user the options ask for, checked before anything runs (exit 2)."""
    if name is None:
        if key_file or lock_root:
            raise ToolError("--authorized-key and --lock-root go with --create-user NAME", BAD_INPUT)
        return None
    if not grammar.USER_NAME.fullmatch(name) or name == "root":
        raise ToolError(f"--create-user {name!r}: a login name (letters, digits, _ . -; not root)", BAD_INPUT)
    if not key_file:
        raise ToolError("--create-user needs --authorized-key PATH (the .pub file the user logs in with)", BAD_INPUT)
    return NewUser(name, authorized_keys(key_file))


def prove_login(host: Host, user: NewUser, lock_root: bool) -> None:
    """Log in as the new user (the inventory's key) and run through its sudo; only then, if asked, close root's
    login, as that user. A login that fails leaves root's login as it was."""
    as_user = replace(host, user=user.name, sudo=True)
    session = Session(as_user)
    try:
        uid, who = logged_in(execute(session, login_program(), f"{host.name} as {user.name}"))
        if uid != 0 or who != user.name:
            raise ToolError(f"{host.name}: the login as {user.name} ran as {who} uid {uid}, not through its sudo: "
                            "root's login left open", FAILED)
        console.print(f"  a login as {safe(user.name)} works, and its sudo")
        if lock_root:
            execute(session, lock_root_program(), f"{host.name} as {user.name}")
            console.print(f"  root's SSH login closed: set [bold]user: {safe(user.name)}[/] and [bold]sudo: true[/] "
                          f"for {safe(host.name)} in hosts.yml")
        else:
            console.print(f"  to use it: user: {safe(user.name)} and sudo: true for {safe(host.name)} in hosts.yml")
    finally:
        session.close()
