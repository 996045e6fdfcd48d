"""One stream socket of the data path (`Connection`), a peer link (`Link`),
and the bounds an endpoint grants the connections it did not open (`Limits`).

The transport (transport.py) owns the listener, the handshake, the links
to peers and the selector; each connection here only frames what it reads
and queues what it writes, without blocking and without copying its
unsent output more than once. A TCP + mutual-TLS transport would keep
this shape: a connection that reads frames and writes a queue of frames.
"""

from __future__ import annotations

import os
import socket
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import frames

if TYPE_CHECKING:
    from .identity import Identity

#: Bytes a client connection may hold unsent (see `Limits.client_bytes`).
MAX_LINK_BYTES = 32 * 1024 * 1024
#: Bytes read from one connection per readiness event: below malloc's mmap
#: threshold (128 KiB), so a read costs no mmap/mremap/munmap system calls.
READ_BYTES = 1 << 16
#: Bytes of queued frames packed into one buffer for `send`: each queued
#: byte is copied once (into its batch), whatever the peer's pace.
WRITE_BATCH_BYTES = 1 << 18
#: Largest frame read on a link this agent opened: only a WELCOME or a
#: REFUSE ever comes back on it, from the member it chose to connect to
#: (roomier than a HELLO's limit, so a WELCOME that grows a field never
#: breaks links).
LINK_READ_BYTES = 1 << 20
#: Reconnect backoff after a failed connect: first, factor, cap (seconds).
BACKOFF_FIRST = 0.01
BACKOFF_CAP = 0.5

@dataclass(frozen=True, slots=True)
class Limits:
    """What one agent's endpoint grants the connections it did not choose.

    - `handshake_seconds`: an inbound connection must complete its HELLO
      within this time, else it is refused ("handshake timeout") and closed.
    - `max_inbound`: inbound connections held at once (peers' links and
      clients); past it a new one gets REFUSE at once. A cluster of n agents
      needs n - 1 for its peers; the rest is for clients.
    - `peer_link_bytes`: bytes queued for one peer before messages to it are
      dropped (counted `overflow`). Paxos tolerates loss (the core resends on
      its timers, a learner fetches what it missed), so this only needs to
      ride out a peer's short stall: at the heaviest load measured (8 KiB
      values, ~6,600 commands/s, ~55 MB/s per acceptor link) 8 MiB is ~150 ms,
      many fsyncs long. A peer stopped for longer costs the sender nothing
      but O(1) per message dropped, instead of a queue to copy and hold.
    - `client_bytes`: bytes of answers queued for one client before it is
      cut loose (CUT, then closed): a `decided --follow` that stopped
      reading must not make the learner hold the log in memory. 32 MiB is
      seconds of a learner's full output, so a reader that pauses briefly
      (a terminal scrolled, a GC pause) is never cut.
    - `cut_grace_seconds`: how long a cut client has to read its CUT frame
      before it is closed anyway.
    - `backlog`: the listen backlog (the kernel caps it at somaxconn), so a
      burst of connects waits in the kernel instead of being refused.
    - `accept_backoff_seconds`: how long the listener is left alone after
      accept() ran out of descriptors (EMFILE/ENFILE), instead of waking the
      loop at once to fail again.
    """

    handshake_seconds: float = 5.0
    max_inbound: int = 1024
    peer_link_bytes: int = 8 * 1024 * 1024
    client_bytes: int = MAX_LINK_BYTES
    cut_grace_seconds: float = 2.0
    backlog: int = 4096
    accept_backoff_seconds: float = 0.25


def endpoint(run_dir: str, name: str) -> str:
    """The socket path of agent `name` under a cluster's run folder."""
    return os.path.join(run_dir, f"{name}.sock")


class Connection:
    """One accepted or opened stream socket: framed reads, buffered non-blocking writes.

    Output is a queue of frames, packed into batches of at most
    `WRITE_BATCH_BYTES` only as the socket takes them: queuing a frame is
    O(1), each byte is copied once, and a peer that reads slowly costs no
    more per message than one that reads at once. `limit` bounds the bytes
    queued and not yet written (a frame is taken while the queue is within
    it, so one frame larger than the limit still goes out on its own).
    """

    __slots__ = ("sock", "fd", "reader", "_out", "_head", "_out_bytes", "limit", "closed",
                 "peer", "peer_incarnation", "greeted", "watching_write", "cut", "awaiting_hello",
                 "identity", "failure", "fresh", "generation", "frames")

    #: What a non-blocking read or write raises when the socket cannot go on
    #: now (a TLS connection adds its SSLWantRead/WantWrite errors).
    WOULD_BLOCK: tuple[type[BaseException], ...] = (BlockingIOError, InterruptedError)

    def __init__(self, sock: socket.socket, limit: int = MAX_LINK_BYTES,
                 read_limit: int = frames.MAX_FRAME_BYTES) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.reader = frames.FrameReader(read_limit)
        self._out: deque[bytes] = deque()
        #: The packed batch being written, from its first unsent byte.
        self._head = memoryview(b"")
        #: Bytes queued or in `_head`, framing included.
        self._out_bytes = 0
        self.limit = limit
        self.closed = False
        #: Who is at the other end (from the handshake), and its incarnation.
        self.peer = ""
        self.peer_incarnation = 0
        self.greeted = False
        self.watching_write = False
        #: Cut loose (`Transport.cut`): nothing more is queued or read; it
        #: closes once its last frame is written.
        self.cut = False
        #: An inbound connection before its HELLO: `read` returns one frame
        #: at most, so the frames after it are read under the limit the
        #: handshake grants (`more`).
        self.awaiting_hello = False
        #: The certificate's identity at the other end (`identity.Identity`)
        #: once a TLS handshake verified it; None on a Unix socket.
        self.identity: Identity | None = None
        #: (reason, one line) when a TLS handshake or identity check failed
        #: (`identity.REASONS`): the transport counts it and says why.
        self.failure: tuple[str, str] | None = None
        #: Its HELLO said "fresh": an agent with a new store asking to be
        #: admitted (runtime/admission.py); nothing it sends is a message.
        self.fresh = False
        #: The link's connection number (the dialler's count for this peer,
        #: sent in its HELLO; 0 from a peer that sent none) and the protocol
        #: frames queued on it (outbound) or read from it (inbound) so far:
        #: a frame's (generation, n) in the protocol records.
        self.generation = 0
        self.frames = 0

    def queue(self, frame: bytes) -> bool:
        """Queue one frame; False if the connection is closed, cut, or over its limit."""
        if self.closed or self.cut or self._out_bytes > self.limit:
            return False
        self._out.append(frame)
        self._out_bytes += len(frame) + 4
        return True

    def finish(self, frame: bytes) -> None:
        """Discard the frames not yet started, queue `frame` as the last one,
        and take no more (a CUT or a REFUSE)."""
        self._out.clear()
        self._out.append(frame)
        self._out_bytes = len(self._head) + len(frame) + 4
        self.cut = True

    @property
    def has_output(self) -> bool:
        return bool(self._out or self._head)

    @property
    def unsent_bytes(self) -> int:
        return self._out_bytes

    def write(self) -> bool:
        """Send what the socket takes now; True when nothing is left.
        Raises OSError if the peer is gone."""
        out = self._out
        while True:
            head = self._head
            if not head:
                if not out:
                    return True
                # Length prefixes and frames in one join: each frame's bytes
                # are copied once (frames.pack would copy each twice).
                parts: list[bytes] = []
                add, length, take = parts.append, frames.LENGTH.pack, out.popleft
                size = 0
                while out and size < WRITE_BATCH_BYTES:
                    frame = take()
                    add(length(len(frame)))
                    add(frame)
                    size += len(frame)
                head = self._head = memoryview(b"".join(parts))
            try:
                sent = self.sock.send(head)
            except self.WOULD_BLOCK:
                return False
            self._out_bytes -= sent
            self._head = head[sent:]

    def read(self) -> list[bytes] | None:
        """The complete frames that arrived; None at EOF (or a broken stream);
        one at most while `awaiting_hello`."""
        try:
            data = self.sock.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            return None
        if not data:
            return None
        try:
            return self.reader.feed(data, 1 if self.awaiting_hello else None)
        except frames.FrameError:
            return None

    def more(self) -> list[bytes] | None:
        """The frames already buffered (after the handshake raised the limit)."""
        try:
            return self.reader.feed(b"")
        except frames.FrameError:
            return None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._out.clear()
            self._head = memoryview(b"")
            self._out_bytes = 0
            self.sock.close()


class Link:
    """This agent's outgoing connection to one peer, with reconnect backoff."""

    __slots__ = ("name", "conn", "retry_at", "backoff", "generation")

    def __init__(self, name: str) -> None:
        self.name = name
        self.conn: Connection | None = None
        self.retry_at = 0.0
        self.backoff = BACKOFF_FIRST
        #: Bumped per connection: a delayed message goes out only on the
        #: connection it was meant for.
        self.generation = 0
