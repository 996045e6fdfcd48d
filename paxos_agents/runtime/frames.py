"""Frames on the pipes between one agent process and its supervisor.

Each agent incarnation has two one-way pipes, used by nobody else: the
*inbox* (supervisor -> agent) and the *outbox* (agent -> supervisor). On
the wire a frame is a 4-byte big-endian length and that many bytes; the
first byte of a frame says what it holds. Both ends write many frames
with one `write` and read whatever is there with one `read`
(`FrameReader`), which keeps system calls per message low.
Peer messages travel as codec bytes the supervisor routes without
decoding; everything else is JSON. Nothing is pickled.

Why pipes and not `multiprocessing.Queue`: a Queue's reader holds a lock
while it blocks in `get()`, and a writer holds one during `put()`; a
process killed with SIGKILL at that moment leaves the lock held and
wedges every other user of that Queue for good. A pipe with one writer
and one reader per incarnation has no shared lock, and the reader sees
EOF when the writer dies.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Iterable

# agent -> supervisor
PEER = b"M"  # PEER + dst + NUL + codec bytes: route to dst
HEARTBEAT = b"H"  # HEARTBEAT + JSON stats: alive, and its counters
APPLIED = b"A"  # APPLIED + JSON [[slot, request_id, payload, first_slot], ...]
REPLY = b"R"  # REPLY + JSON {"id": ..., ...}: the answer to a QUERY
FATAL = b"E"  # FATAL + UTF-8 text: why the agent is about to exit
LOADING = b"L"  # LOADING: alive, still opening its store (not serving yet)

# supervisor -> agent (PEER frames arrive as PEER + codec bytes)
PROPOSE = b"P"  # PROPOSE + JSON [[request_id, payload], ...]
QUERY = b"Q"  # QUERY + JSON {"id": ..., "op": ...}
SUSPECT = b"S"  # SUSPECT + agent name: that agent's process died (a failure-detector hint)

#: Exit code of an agent that must not be restarted until an operator acts
#: (an unreadable state file): restarting would only fail the same way.
EXIT_NEEDS_OPERATOR = 78


def peer_frame(dst: str, payload: bytes) -> bytes:
    return PEER + dst.encode() + b"\x00" + payload


def split_peer(frame: bytes) -> tuple[str, bytes]:
    """The destination and the codec bytes of a PEER frame from an agent."""
    end = frame.index(b"\x00", 1)
    return frame[1:end].decode(), frame[end + 1:]


def json_frame(kind: bytes, obj: Any) -> bytes:
    return kind + json.dumps(obj, separators=(",", ":")).encode()


def json_body(frame: bytes) -> Any:
    return json.loads(frame[1:])


_LENGTH = struct.Struct("!I")
#: Frames larger than this are a protocol error (values are capped far below).
MAX_FRAME_BYTES = 64 * 1024 * 1024


def pack(frames: Iterable[bytes]) -> bytes:
    """The wire bytes of `frames`, ready for one `write`."""
    length = _LENGTH.pack
    return b"".join(length(len(f)) + f for f in frames)


class FrameError(ValueError):
    """The byte stream is not a sequence of frames (a peer misbehaved)."""


class FrameReader:
    """Splits a byte stream into frames; feed it whatever `read` returned."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add `data`; return every frame now complete, in order."""
        buffer = self._buffer
        buffer += data
        frames = []
        at = 0
        end = len(buffer)
        unpack = _LENGTH.unpack_from
        while end - at >= 4:
            (size,) = unpack(buffer, at)
            if size > MAX_FRAME_BYTES:
                raise FrameError(f"frame of {size} bytes is over the {MAX_FRAME_BYTES} limit")
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
