"""The transport: open a checked SSH connection, stream a script through ``bash -s`` line by line, and upload a
file over the same connection.

It knows nothing of what the script does or how its output is shown: the programs layer builds the script and
reads the lines. Host keys: Fabric 3.2 accepts any key (AutoAddPolicy); here the known_hosts files are loaded
and unknown or changed keys are refused. ``fab trust-host`` is the deliberate way to add one.
"""
from __future__ import annotations

import io
import logging
import os
import socket
from collections.abc import Callable

import paramiko
from fabric import Config, Connection
from fabric.runners import Remote
from invoke.exceptions import ThreadException

from .errors import BAD_INPUT, UNREACHABLE, ToolError
from .grammar import redact
from .hostkeys import KnownHosts, Refuse, UnknownKey, entry_name
from .model import Host

# paramiko's transport thread logs its own tracebacks through logging's last-resort handler; the tool already
# reports every failure in one clear line, so those stay out of the operator's output.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False


class ChunkedStdinRemote(Remote):
    """Fabric's remote runner, reading an in-memory ``in_stream`` in large chunks. Invoke reads any non-tty
    stream one byte per 10 ms poll, which turns a 14 KB program into minutes of upload."""

    def read_our_stdin(self, input_):
        if isinstance(input_, io.StringIO):
            return input_.read(65536)
        return super().read_our_stdin(input_)

    def _write_proc_stdin(self, data):
        """A remote that ends before it has read all of its program (``sudo -n`` that wants a password) closes
        the channel under this writer: its exit code and what it said tell why, so the rest is dropped here
        rather than raised from invoke's stdin thread. A channel closed without an exit status still raises."""
        try:
            return super()._write_proc_stdin(data)
        except OSError:
            if self.channel.exit_status_ready():
                return None
            raise


def known_hosts_files(host: Host, conn: Connection | None = None) -> list[str]:
    """Where this host's key may be recorded: the inventory's file, else ssh_config's, else ~/.ssh/known_hosts."""
    if host.known_hosts:
        return [host.known_hosts]
    configured = conn.ssh_config.get("userknownhostsfile") if conn else None
    files = configured.split() if configured else ["~/.ssh/known_hosts"]
    return [os.path.expanduser(f) for f in files] + ["/etc/ssh/ssh_known_hosts"]


def fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


def connection(host: Host) -> Connection:
    """A Connection to ``host``, not yet open, that refuses unknown, changed and revoked keys: its own and
    those of every ProxyJump bastion on the way (Fabric would accept theirs silently)."""
    kwargs = {"key_filename": [host.identity]} if host.identity else {}
    config = Config(overrides={"runners": {"remote": ChunkedStdinRemote}})
    conn = Connection(host.address, user=host.user, port=host.port, connect_timeout=15, connect_kwargs=kwargs,
                      config=config)
    hop = conn
    while isinstance(hop, Connection):
        known = KnownHosts(known_hosts_files(host, hop), hop.client.get_host_keys(), _alias(hop))
        hop.client.set_missing_host_key_policy(Refuse(known, host.name))
        hop = hop.gateway
    return conn


def key_name(conn: Connection) -> str:
    """The name a host's key is recorded under: ssh_config's HostKeyAlias, else its address (and port)."""
    return conn.ssh_config.get("hostkeyalias") or entry_name(conn.host, int(conn.port))


def _alias(conn: Connection) -> tuple[str, str] | None:
    """(HostKeyAlias, the name paramiko looks the key up by) when ssh_config gives the host an alias."""
    alias = conn.ssh_config.get("hostkeyalias")
    return (alias, entry_name(conn.host, int(conn.port))) if alias else None


def connect(host: Host) -> Connection:
    """An open Connection to ``host`` whose key matched a known_hosts entry; a clear error otherwise."""
    conn = connection(host)
    try:
        conn.open()
    except paramiko.BadHostKeyException as e:
        raise ToolError(f"{host.name}: the host key of {_which(host, e.hostname)} CHANGED (now {fingerprint(e.key)}). "
                        "This can be an attack; if the host was rebuilt, remove the old entry and run "
                        f"'fab trust-host --host {host.name}'.", UNREACHABLE) from None
    except UnknownKey as e:
        raise ToolError(f"{host.name}: the host key of {_which(host, e.hostname)} is unknown; check it and run "
                        f"'fab trust-host --host {host.name}' to trust it.", UNREACHABLE) from None
    except paramiko.SSHException as e:
        raise ToolError(f"{host.name}: SSH to {host.user}@{host.address}:{host.port} failed: {e}", UNREACHABLE) from None
    except (TimeoutError, OSError) as e:
        raise ToolError(f"{host.name}: cannot reach {host.address}:{host.port}: {e}", UNREACHABLE) from None
    _watch(conn)
    return conn


ALIVE_EVERY, DEAD_AFTER = 15, 60   # seconds: ssh's ServerAliveInterval, and how long a silent host may stay so


def _watch(conn: Connection) -> None:
    """A host that vanishes mid-program (it reboots, its network goes) sends no FIN or RST: the run would wait
    for TCP to give up, ~15 minutes. A keepalive every 15 s and a bound on data left unacknowledged
    (TCP_USER_TIMEOUT, Linux) end it within about a minute, as a dropped connection (the host finishes alone)."""
    transport = conn.client.get_transport()
    transport.set_keepalive(ALIVE_EVERY)
    if hasattr(socket, "TCP_USER_TIMEOUT") and isinstance(transport.sock, socket.socket):
        transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, DEAD_AFTER * 1000)


def _which(host: Host, hostname: str) -> str:
    """The machine whose key was refused: the host itself, or the ProxyJump bastion on the way to it (whose key
    a changed-key message must not pin on the host)."""
    names = {host.address, entry_name(host.address, host.port)}
    return host.address if hostname in names else f"the ProxyJump bastion {hostname} (on the way to {host.address})"


def offered_key(h: Host) -> paramiko.PKey:
    """The key ``h`` offers, read without authenticating or trusting it (for trust-host to show)."""
    try:
        with socket.create_connection((h.address, h.port), timeout=15) as sock:
            transport = paramiko.Transport(sock)
            try:
                transport.start_client(timeout=15)
                return transport.get_remote_server_key()
            finally:
                transport.close()
    except (OSError, paramiko.SSHException) as e:
        raise ToolError(f"{h.name}: cannot read the host key of {h.address}:{h.port}: {e}", UNREACHABLE) from None


class _Lines(io.TextIOBase):
    """A stream that hands each complete line (redacted) to ``on_line``."""

    def __init__(self, on_line: Callable[[str], None]):
        self.on_line, self.pending, self.seen = on_line, "", False

    def write(self, text: str) -> int:
        self.seen = self.seen or bool(text)
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.on_line(redact(line))
        return len(text)

    def flush_rest(self) -> None:
        if self.pending:
            self.on_line(redact(self.pending))
            self.pending = ""


class Session:
    """One open connection to one host."""

    def __init__(self, host: Host):
        self.host = host
        self.conn = connect(host)

    def stream(self, script: str, on_line: Callable[[str], None]) -> tuple[int, list[str]]:
        """Send ``script`` to ``bash -s`` on the host's stdin (as root through `sudo -n` for a host with
        ``sudo: true``); each stdout line goes to ``on_line`` as it comes. The exit code and the (redacted)
        stderr lines once it ends."""
        out, err = _Lines(on_line), io.StringIO()
        try:
            res = self.conn.run(as_root(self.host, "bash -s"), in_stream=io.StringIO(script), out_stream=out,
                                err_stream=err, warn=True, hide=False, pty=False)
        except (OSError, EOFError, paramiko.SSHException, ThreadException) as e:
            raise ToolError(f"{self.host.name}: the connection broke while running: {redact(str(e))}", UNREACHABLE) from None
        out.flush_rest()
        if res.exited == -1:  # the channel closed without an exit status: the connection went away
            raise ToolError(f"{self.host.name}: the connection broke while the program ran; the host finishes it on "
                            "its own (and unlocks when done): see 'fab status' and 'fab releases'", UNREACHABLE)
        lines = [redact(line) for line in err.getvalue().splitlines()]
        if self.host.sudo and not out.seen:
            refuse_sudo(self.host, res.exited, lines)
        return res.exited, lines

    def upload(self, local: str, folder: str, name: str, progress: Callable[[int, int], None]) -> bool:
        """Put the file ``local`` at ``folder/name`` over this connection (SFTP), unless a file of the same
        size is there already (its name is its content's sha256: the receiving program checks it). Written
        under a temporary name and renamed; missing folders are made root's only. True if it was sent."""
        try:
            sftp = self._sftp()
            target = f"{folder}/{name}"
            try:
                if sftp.stat(target).st_size == os.path.getsize(local):
                    return False
            except FileNotFoundError:
                pass
            path = ""
            for part in folder.strip("/").split("/"):
                path += "/" + part
                try:
                    sftp.stat(path)
                except FileNotFoundError:
                    sftp.mkdir(path, 0o700)
            partial = f"{folder}/.{name}.partial"
            sftp.put(local, partial, callback=progress)
            sftp.posix_rename(partial, target)
            return True
        except (OSError, EOFError, paramiko.SSHException, ThreadException) as e:
            raise ToolError(f"{self.host.name}: uploading {local} failed: {redact(str(e))}", UNREACHABLE) from None

    def _sftp(self) -> paramiko.SFTPClient:
        """SFTP as the login user, or as root through `sudo -n` (the host's own sftp-server, wherever its
        distribution puts it): files land where the programs expect them, root's."""
        if not self.host.sudo:
            return self.conn.sftp()
        channel = self.conn.client.get_transport().open_session()
        channel.exec_command(as_root(self.host, SFTP_SERVER))
        try:
            return paramiko.SFTPClient(channel)
        except paramiko.SSHException:   # (sudo refused before sftp-server spoke: say why)
            res = self.conn.run(as_root(self.host, "true"), warn=True, hide=True, in_stream=False)
            refuse_sudo(self.host, res.exited, res.stderr.splitlines())
            raise

    def close(self) -> None:
        self.conn.close()


SFTP_SERVER = ("sh -c 'for s in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server /usr/lib/ssh/sftp-server; "
               "do [ -x \"$s\" ] && exec \"$s\"; done; echo \"no sftp-server found\" >&2; exit 127'")


def as_root(host: Host, command: str) -> str:
    """``command`` as the host runs it: itself when SSH logs in as root, else through `sudo -n` (never a
    password prompt: a sudo that asks for one fails at once, see refuse_sudo)."""
    return f"sudo -n {command}" if host.sudo else command


def refuse_sudo(host: Host, code: int, stderr: list[str]) -> None:
    """A program that printed nothing and ended with sudo's own complaint never ran: sudo asks for a password
    or is missing. Exit 2 with what to do (nothing on the host changed)."""
    said = " ".join(stderr)
    if code == 127 and "sudo" in said:
        raise ToolError(f"{host.name}: sudo: true, but sudo is not installed on the host (as {host.user}): install "
                        "it, or log in as root (user: root): nothing was changed", BAD_INPUT)
    if code == 1 and "sudo:" in said and "password" in said:
        raise ToolError(f"{host.name}: sudo asks {host.user} for a password, and the tool never types one: add the "
                        f"line '{host.user} ALL=(root) NOPASSWD: ALL' to /etc/sudoers.d/fab on the host (visudo -f "
                        "/etc/sudoers.d/fab checks it before it is saved): nothing was changed", BAD_INPUT)
