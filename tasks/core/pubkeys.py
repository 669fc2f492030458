"""The public keys `fab bootstrap --authorized-key PATH` gives the deploy user, read and checked here so that a
wrong file (a private key, a truncated line, options that would bind the key to one command) is refused with
its line before anything on the host changes. Each key is decoded by paramiko: its type must be the one its
line names, as sshd would insist when the user first logs in (too late to find out)."""
from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

import paramiko

from . import grammar
from .errors import BAD_INPUT, ToolError

TYPES = {"ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
         "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"}


def authorized_keys(path: str) -> tuple[str, ...]:
    """The keys of ``path`` (an OpenSSH .pub or authorized_keys file: blank and # lines skipped), each as
    ``TYPE BASE64 [COMMENT]``; at least one."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ToolError(f"--authorized-key {path}: cannot read it ({e.strerror if isinstance(e, OSError) else 'not UTF-8'})",
                        BAD_INPUT) from None
    if "PRIVATE KEY" in text:
        raise ToolError(f"--authorized-key {path} is a private key: give its .pub file (the private key never "
                        "leaves your machine)", BAD_INPUT)
    keys = tuple(_key(path, n, line.strip()) for n, line in enumerate(text.splitlines(), 1)
                 if line.strip() and not line.lstrip().startswith("#"))
    if not keys:
        raise ToolError(f"--authorized-key {path} holds no public key", BAD_INPUT)
    return keys


def _key(path: str, number: int, line: str) -> str:
    """One line of the file, checked (``key_problem``), as ``TYPE BASE64 [COMMENT]``."""
    problem = key_problem(line)
    if problem:
        raise ToolError(f"{path}:{number}: {problem}", BAD_INPUT)
    kind, blob, *comment = line.split(None, 2)
    return " ".join([kind, blob, *comment])


def key_problem(line: str) -> str | None:
    """What is wrong with ``TYPE BASE64 [COMMENT]`` as a public key (None: nothing): a known key type first
    (options such as command= are refused), a blob that decodes to a key of that type, a comment of printable
    characters. Also hosts.yml's git_host_key."""
    kind, _, rest = line.strip().partition(" ")
    blob, _, comment = rest.strip().partition(" ")
    if kind not in TYPES:
        return (f"{kind[:40]!r} is not a public key type this tool knows ({', '.join(sorted(TYPES))}; options "
                "such as command= are not supported)")
    try:
        data = base64.b64decode(blob, validate=True)
        key = paramiko.PKey.from_type_string(kind, data)
    except (binascii.Error, ValueError, paramiko.SSHException):
        key, data = None, b""
    if key is None or key.get_name() != kind or key.asbytes() != data:   # (paramiko pads a short blob with zeros)
        return f"the key's data is not a valid {kind} key (a truncated or altered line?)"
    if re.search(f"[{grammar.UNSHOWN}]", comment):
        return "the key's comment has control or invisible characters"
    return None
