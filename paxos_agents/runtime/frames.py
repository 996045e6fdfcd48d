"""Frames: length-prefixed byte strings, on pipes and sockets.

On the wire a frame is a 4-byte big-endian length and that many bytes.
Writers put many frames in one `write`/`send` and readers split whatever
one `read` returned (`FrameReader`), which keeps system calls per message
low. The first byte of a frame usually says what it holds.

Two kinds of channel carry frames:

- the *pipes* between one agent incarnation and its supervisor (the
  control plane): an *inbox* (supervisor -> agent: SUSPECT, CHAOS, MEMBERS,
  RECONFIG) and an *outbox* (agent -> supervisor: HEARTBEAT, LOADING, FATAL,
  RECONFIG_REFUSED), used by
  nobody else. No command and no protocol message travels here;
- the *sockets* of the data path (`transport`, `clientwire`), whose
  handshake replies are WELCOME and REFUSE.

Why pipes and sockets and not `multiprocessing.Queue` (the 2012 demo's
"one process per role over Queues"): a Queue's reader holds a lock while
it blocks in `get()`, and a writer holds one during `put()`; a process
killed with SIGKILL at that moment leaves the lock held and wedges every
other user of that Queue for good, and a Queue's buffer outlives the
process it was meant for. A pipe or stream socket with one writer and one
reader has no shared lock, and the reader sees EOF when the writer dies.
Nothing is pickled.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Iterable

# agent -> supervisor (outbox)
HEARTBEAT = b"H"  # HEARTBEAT + JSON report: alive, and its counters
FATAL = b"E"  # FATAL + UTF-8 text: why the agent is about to exit
LOADING = b"L"  # LOADING: alive, still opening its store (not serving yet)
RECONFIG_REFUSED = b"X"  # RECONFIG_REFUSED + UTF-8 text: why a RECONFIG was not proposed

# supervisor -> agent (inbox)
SUSPECT = b"S"  # SUSPECT + agent name: that agent's process died (a failure-detector hint)
CHAOS = b"C"  # CHAOS + JSON settings: the faults to inject into what the agent sends
MEMBERS = b"M"  # MEMBERS + JSON {"proposers", "acceptors", "learners"}: the membership now (apply)
RECONFIG = b"R"  # RECONFIG + JSON {"acceptors": [...]}: propose the next configuration (scale)

# data-path handshake replies (sockets; see transport)
WELCOME = b"+"  # WELCOME + JSON: the receiver's name, incarnation and what it knows
REFUSE = b"-"  # REFUSE + UTF-8 text: why the connection is refused (then it closes)

#: Exit code of an agent that must not be restarted until an operator acts
#: (an unreadable state file): restarting would only fail the same way.
EXIT_NEEDS_OPERATOR = 78


def json_frame(kind: bytes, obj: Any) -> bytes:
    return kind + json.dumps(obj, separators=(",", ":")).encode()


def json_body(frame: bytes) -> Any:
    return json.loads(frame[1:])


#: A frame's length prefix.
LENGTH = _LENGTH = struct.Struct("!I")
#: Frames larger than this are a protocol error (values are capped far below).
MAX_FRAME_BYTES = 64 * 1024 * 1024
#: Frames larger than this are a protocol error before a connection's
#: handshake is done: a HELLO is a few hundred bytes, and an unauthenticated
#: connection must not make the agent buffer megabytes (checked on the
#: length prefix, before any of the body is held).
HANDSHAKE_FRAME_BYTES = 4096


def pack(frames: Iterable[bytes]) -> bytes:
    """The wire bytes of `frames`, ready for one `write`."""
    length = _LENGTH.pack
    return b"".join(length(len(f)) + f for f in frames)


class FrameError(ValueError):
    """The byte stream is not a sequence of frames (a peer misbehaved)."""


class FrameReader:
    """Splits a byte stream into frames; feed it whatever `read` returned.

    `limit` is the largest frame accepted: a length prefix above it raises
    `FrameError` as soon as its 4 bytes arrive, so no byte of such a frame
    is ever buffered. It may be raised between two `feed` calls (a
    connection's handshake done: see `transport`).
    """

    __slots__ = ("_buffer", "limit")

    def __init__(self, limit: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self.limit = limit

    def feed(self, data: bytes, most: int | None = None) -> list[bytes]:
        """Add `data`; return every frame now complete, in order (at most
        `most` of them: the rest stay buffered for the next call, which may
        pass b"" to get them, under the `limit` in force then)."""
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        at = 0
        end = len(buffer)
        unpack = _LENGTH.unpack_from
        limit = self.limit
        while end - at >= 4 and (most is None or len(frames) < most):
            (size,) = unpack(buffer, at)
            if size > limit:
                raise FrameError(f"frame of {size} bytes is over the {limit} limit")
            if end - at - 4 < size:
                break
            frames.append(bytes(buffer[at + 4:at + 4 + size]))
            at += 4 + size
        if at:
            del buffer[:at]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buffer)
