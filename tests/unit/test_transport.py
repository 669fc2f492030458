"""The transport's stdin writer (fast tier: a stand-in channel, no SSH): a remote that ends before it has read
its whole program (sudo -n wanting a password, CI's flake of 2026-12-06) must not turn into invoke's
ThreadException; a channel that closed without an exit status (the connection broke) still fails."""
import pytest
from fabric import Connection

from tasks.core.ssh import ChunkedStdinRemote


class Channel:
    def __init__(self, exited: bool):
        self.exited = exited

    def exit_status_ready(self) -> bool:
        return self.exited

    def sendall(self, data):
        raise OSError("Socket is closed")


def writer(exited: bool) -> ChunkedStdinRemote:
    runner = ChunkedStdinRemote(Connection("h"))
    runner.channel = Channel(exited)
    return runner


def test_the_rest_of_a_program_its_ended_remote_did_not_read_is_dropped():
    assert writer(exited=True)._write_proc_stdin(b"run step\n") is None


def test_a_channel_closed_without_an_exit_status_still_fails():
    with pytest.raises(OSError, match="Socket is closed"):
        writer(exited=False)._write_proc_stdin(b"run step\n")
