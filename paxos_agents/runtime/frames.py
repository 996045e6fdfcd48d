"""Frames on the pipes between one agent process and its supervisor.

Each agent incarnation has two one-way pipes, used by nobody else: the
*inbox* (supervisor -> agent) and the *outbox* (agent -> supervisor). A
frame is one `send_bytes` record; its first byte says what it holds.
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
from typing import Any

# agent -> supervisor
PEER = b"M"  # PEER + dst + NUL + codec bytes: route to dst
HEARTBEAT = b"H"  # HEARTBEAT + JSON stats: alive, and its counters
APPLIED = b"A"  # APPLIED + JSON [[slot, request_id, payload, first_slot], ...]
REPLY = b"R"  # REPLY + JSON {"id": ..., ...}: the answer to a QUERY
FATAL = b"E"  # FATAL + UTF-8 text: why the agent is about to exit

# supervisor -> agent (PEER frames arrive as PEER + codec bytes)
PROPOSE = b"P"  # PROPOSE + JSON [[request_id, payload], ...]
QUERY = b"Q"  # QUERY + JSON {"id": ..., "op": ...}

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
