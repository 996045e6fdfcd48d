"""A test standing in for an agent's peer: what the agent under test sent it.

The test binds the peer's endpoint (a Unix socket the agent dials when it
has something for that peer) and reads the protocol messages the agent
sends on the connection it opens, without a transport of its own.
"""

from __future__ import annotations

import socket

from paxos_agents.runtime import frames
from paxos_agents.runtime.codec import CodecError, decode


class Received:
    """What the agent sent to the peer listening on `listener` (non-blocking)."""

    def __init__(self, listener: socket.socket) -> None:
        self._listener = listener
        self._conn: socket.socket | None = None
        self._reader = frames.FrameReader()

    def messages(self) -> list:
        """The messages that arrived since the last call (none before the agent dialled)."""
        if self._conn is None:
            try:
                self._conn, _ = self._listener.accept()
            except BlockingIOError:
                return []
            self._conn.setblocking(False)
        out = []
        while True:
            try:
                data = self._conn.recv(1 << 20)
            except BlockingIOError:
                break
            if not data:
                break
            for frame in self._reader.feed(data):
                try:
                    out.append(decode(frame))
                except CodecError:
                    pass  # the HELLO that opens the connection
        return out
