"""What callers hand the data path's I/O thread (paxosctl.client.handoff):
one wake-up per batch of calls, nothing after close, and never a byte
written once its pipe is closed (the descriptor may be another file's)."""

from __future__ import annotations

import os

import pytest

from paxosctl.client.handoff import Handoff
from paxosctl.errors import NotRunning


def _pending(fd: int) -> bytes:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""


def test_calls_until_a_take_wake_the_thread_once():
    handoff = Handoff("closed")
    try:
        handoff.one("r1", "f1")
        handoff.many(["r2", "r3"])
        handoff.one("r4", "f4")
        assert _pending(handoff.fd) == b"\0", "one wake-up for three calls"
        assert handoff.take() == ([("r1", "f1"), ("r4", "f4")], [["r2", "r3"]])
        handoff.one("r5", "f5")
        assert _pending(handoff.fd) == b"\0", "the next call after a take wakes it again"
        assert handoff.take() == ([("r5", "f5")], [])
        assert handoff.take() == ([], [])
    finally:
        handoff.close_pipe()


def test_a_closed_handoff_refuses_calls_and_gives_back_what_was_never_taken():
    handoff = Handoff("the connection to c.toml is closed")
    try:
        handoff.one("r1", "f1")
        handoff.close()
        assert handoff.closed
        with pytest.raises(NotRunning, match="the connection to c.toml is closed"):
            handoff.one("r2", "f2")
        with pytest.raises(NotRunning):
            handoff.many(["r3"])
        assert handoff.shut() == ([("r1", "f1")], [])
    finally:
        handoff.close_pipe()


def test_no_byte_goes_to_a_descriptor_reused_after_the_pipe_closed():
    handoff = Handoff("closed")
    read_end, write_end = handoff.fd, handoff._write_end
    handoff.close_pipe()
    # The lowest free descriptors: the ones the pipe had, now another file's.
    other_r, other_w = os.pipe()
    try:
        assert {other_r, other_w} == {read_end, write_end}
        handoff.wake()
        handoff.close()
        assert _pending(other_r) == b""
    finally:
        os.close(other_r)
        os.close(other_w)
