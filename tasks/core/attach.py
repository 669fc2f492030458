"""The transport's second way to run a command: joined to the operator's own stdin, stdout and stderr (fab exec),
bytes as they come, on a terminal of its own when the operator has one.

Programs go through ``Session.stream`` (a script on stdin, lines read back); a command here owns the channel's
stdin instead, so it is given as one SSH command line. Invoke's runner would read a pipe one byte per 10 ms and
decode what it reads as text; this pump moves bytes as they come, both ways.
"""
from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import termios
import tty

import paramiko

from .errors import UNREACHABLE, ToolError
from .ssh import Session

CHUNK = 65536


def has_terminal() -> bool:
    """The operator types at a terminal and reads one: the command gets a terminal too (docker exec -t)."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def attach(session: Session, command: str, terminal: bool) -> int:
    """Run ``command`` (one SSH command line) on the session's host with the operator's stdin, stdout and
    stderr; with ``terminal`` on a pseudo-terminal of the operator's size (kept on a resize), the local one
    raw meanwhile (Ctrl-C goes to the command). Its exit code; a dropped connection is a clear error."""
    try:
        channel = session.conn.client.get_transport().open_session()
        if terminal:
            size = os.get_terminal_size(sys.stdout.fileno())
            channel.get_pty(term=os.environ.get("TERM") or "xterm", width=size.columns, height=size.lines)
        channel.exec_command(command)
        with _raw(terminal), _resizing(channel, terminal):
            _pump(channel)
        code = channel.recv_exit_status()
    except (OSError, EOFError, paramiko.SSHException) as e:
        raise ToolError(f"{session.host.name}: the connection broke: {e}", UNREACHABLE) from None
    if code == -1:
        raise ToolError(f"{session.host.name}: the connection broke before the command ended", UNREACHABLE)
    return code


def _pump(channel: paramiko.Channel) -> None:
    """Bytes both ways until the command's output ends: the operator's stdin to it (its end sent as EOF), its
    stdout and stderr to the operator's."""
    stdin = sys.stdin.fileno()
    readers = [channel, stdin]
    while True:
        ready, _, _ = select.select(readers, [], [])
        if stdin in ready and not _forward(stdin, channel):
            readers.remove(stdin)
        ended = channel.eof_received   # (read first: what came before the end is buffered by then)
        while channel.recv_stderr_ready():
            _write(sys.stderr, channel.recv_stderr(CHUNK))
        while channel.recv_ready():
            _write(sys.stdout, channel.recv(CHUNK))
        if ended:
            return


def _forward(stdin: int, channel: paramiko.Channel) -> bool:
    """What the operator typed or piped, sent on; False once there is no more (its end sent as EOF) or the
    command no longer reads (it ended first: what it printed is still shown)."""
    data = _read(stdin)
    try:
        if data:
            channel.sendall(data)
            return True
        channel.shutdown_write()
    except OSError:
        pass
    return False


def _read(fd: int) -> bytes:
    """What the operator typed or piped (nothing: the end of it, or a stdin that cannot be read)."""
    try:
        return os.read(fd, CHUNK)
    except OSError:
        return b""


def _write(stream, data: bytes) -> None:
    stream.buffer.write(data)
    stream.buffer.flush()


@contextlib.contextmanager
def _raw(terminal: bool):
    """The local terminal raw while the command runs (each key goes as typed, Ctrl-C included), then as it was."""
    if not terminal:
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _resizing(channel: paramiko.Channel, terminal: bool):
    """The command's terminal follows the operator's window size."""
    if not terminal:
        yield
        return

    def resize(*_):
        size = os.get_terminal_size(sys.stdout.fileno())
        channel.resize_pty(width=size.columns, height=size.lines)

    previous = signal.signal(signal.SIGWINCH, resize)
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)
