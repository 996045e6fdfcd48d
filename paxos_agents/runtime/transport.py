"""Agent-to-agent and client-to-agent connections: the data path.

Every agent incarnation listens on its own endpoint; agents connect to
each other directly and clients connect to proposers and learners. The
supervisor is not on this path (it only spawns, watches and restarts).

The one implementation here is Unix stream sockets under the cluster's
state dir (`run/<agent>.sock`, in a 0700 folder: only the cluster's owner
can connect). A TCP + mutual-TLS transport for several hosts would
implement the same small surface: `Transport.send`, `Transport.flush`,
`Transport.next_due`, and the handlers it registers with the loop's
selector. Nothing in `paxos_agents.core` knows about any of it.

Connections and incarnations. A connection is one-way for protocol
messages: agent A sends to B on the link A opened to B, and B answers on
its own link to A. The first frame on every connection is a HELLO naming
the cluster, the sender (name and incarnation) and the receiver's name;
the receiver answers WELCOME with its own incarnation, or REFUSE and
closes. A stream socket dies with its process, so a connection reaches
exactly one receiver incarnation: messages queued on a link are
discarded with it, and a new link (to the next incarnation) starts
empty. A message is never carried over to an incarnation it was not sent
to, and no buffer or lock outlives an incarnation (DESIGN.md's Queue
facts: a `multiprocessing.Queue` keeps both).

Losing messages is fine: Paxos tolerates loss and the core resends on
its timers. So a link that is down drops what is sent to it (counted),
reconnects with backoff, and a peer that does not read fills its link's
buffer up to a cap, past which messages are dropped rather than
blocking the sender.

Chaos (`ChaosSettings`: drop, duplicate, delay, partition) is applied
here, to what this agent sends: each agent rolls its own seeded dice.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import json
import logging
import os
import selectors
import socket
import time
from collections import Counter
from typing import Any, Callable, Protocol

from . import frames
from .chaos import Chaos

log = logging.getLogger("paxos_agents.transport")

#: The handshake's protocol number; a peer speaking another one is refused.
PROTOCOL = 1
#: Bytes one connection may hold unsent before its messages are dropped.
MAX_LINK_BYTES = 32 * 1024 * 1024
#: Bytes read from one connection per readiness event: below malloc's mmap
#: threshold (128 KiB), so a read costs no mmap/mremap/munmap system calls.
READ_BYTES = 1 << 16
#: Reconnect backoff after a failed connect: first, factor, cap (seconds).
BACKOFF_FIRST = 0.01
BACKOFF_CAP = 0.5
#: The sender name of a client connection.
CLIENT = "client"


def endpoint(run_dir: str, name: str) -> str:
    """The socket path of agent `name` under a cluster's run folder."""
    return os.path.join(run_dir, f"{name}.sock")


def hello(cluster_id: str, sender: str, incarnation: int, receiver: str) -> bytes:
    """The first frame of a connection (unframed JSON body)."""
    return json.dumps({"paxos": PROTOCOL, "cluster": cluster_id, "from": sender,
                       "incarnation": incarnation, "to": receiver},
                      separators=(",", ":")).encode()


class Connection:
    """One accepted or opened stream socket: framed reads, buffered non-blocking writes."""

    __slots__ = ("sock", "fd", "reader", "_out", "_unsent", "_out_bytes", "closed", "peer",
                 "peer_incarnation", "greeted", "watching_write")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.reader = frames.FrameReader()
        self._out: list[bytes] = []
        self._unsent = b""
        self._out_bytes = 0
        self.closed = False
        #: Who is at the other end (from the handshake), and its incarnation.
        self.peer = ""
        self.peer_incarnation = 0
        self.greeted = False
        self.watching_write = False

    def queue(self, frame: bytes) -> bool:
        """Queue one frame; False if the connection is closed or over its cap."""
        if self.closed or self._out_bytes > MAX_LINK_BYTES:
            return False
        self._out.append(frame)
        self._out_bytes += len(frame) + 4
        return True

    @property
    def has_output(self) -> bool:
        return bool(self._out or self._unsent)

    def write(self) -> bool:
        """Send what the socket takes now (one `send` for everything queued);
        True when nothing is left. Raises OSError if the peer is gone."""
        if self._out:
            data = frames.pack(self._out)
            self._unsent = self._unsent + data if self._unsent else data
            self._out = []
        while self._unsent:
            try:
                sent = self.sock.send(self._unsent)
            except (BlockingIOError, InterruptedError):
                return False
            self._unsent = self._unsent[sent:]
        self._out_bytes = 0
        return True

    def read(self) -> list[bytes] | None:
        """The complete frames that arrived; None at EOF (or a broken stream)."""
        try:
            data = self.sock.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            return None
        if not data:
            return None
        try:
            return self.reader.feed(data)
        except frames.FrameError:
            return None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._out = []
            self._unsent = b""
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


class PeerTransport(Protocol):
    """What an agent's loop needs of its transport. `Transport` (Unix
    sockets) is the one implementation; a TCP + mutual-TLS one for several
    hosts would provide the same, registering its sockets with the loop's
    selector as `Transport` does. The core never sees any of it."""

    chaos: Chaos
    #: Messages not sent, by reason; and frames from peers that were not messages.
    dropped: Counter[str]
    malformed: int

    def send(self, dst: str, frame: bytes) -> None:
        """Queue a protocol message for peer `dst` (dropped if it cannot go)."""

    def reply(self, conn: "Connection", frame: bytes) -> None:
        """Queue a frame to a client connection."""

    def flush(self) -> None:
        """Write what is queued: once per loop turn, and before a blocking fsync."""

    def next_due(self) -> float | None:
        """When a held-back (chaos-delayed) message is due, for the loop's timeout."""

    def close(self) -> None:
        """Close every connection and the endpoint (a clean exit)."""


#: Called with (sender name, frame) for every protocol message from a peer.
OnMessage = Callable[[str, bytes], None]
#: Called with a new client connection, then (connection, frame) per frame, then (connection, None).
OnClient = Callable[[Connection, bytes | None], None]


class Transport:
    """Unix-socket endpoints for one agent incarnation.

    - `send(dst, frame)` queues a protocol message for peer `dst` (chaos
      applies here); `flush()` writes every link's queue with one send per
      peer (call once per loop turn, and before a blocking fsync).
    - Inbound peer messages go to `on_message`, client frames to
      `on_client`. Handlers are registered with `selector`, each socket
      with its own handler as `key.data`.
    - `next_due()` is when a delayed (chaos) message is due, for the
      loop's timeout; `flush()` sends those that are due.
    """

    def __init__(self, *, name: str, incarnation: int, cluster_id: str, run_dir: str,
                 members: frozenset[str], selector: selectors.BaseSelector,
                 on_message: OnMessage, on_client: OnClient,
                 welcome: Callable[[], dict[str, Any]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.incarnation = incarnation
        self.cluster_id = cluster_id
        self.run_dir = run_dir
        self.members = members
        self._selector = selector
        self._on_message = on_message
        self._on_client = on_client
        self._welcome = welcome
        self._clock = clock
        self._links: dict[str, Link] = {}
        self._inbound: set[Connection] = set()
        self._dirty: set[Connection] = set()
        self.chaos = Chaos(name)
        self._delayed: list[tuple[float, int, str, int, bytes]] = []
        self._seq = itertools.count()
        #: Messages not sent: "unreachable" (no link), "overflow" (peer not reading).
        self.dropped: Counter[str] = Counter()
        self.malformed = 0
        self.path = endpoint(run_dir, name)
        self._listener = self._listen()

    # ------------------------------------------------------------ listening

    def _listen(self) -> socket.socket:
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        try:
            os.unlink(self.path)  # a previous incarnation's: it died, nobody listens there
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.path)
        os.chmod(self.path, 0o600)  # only the cluster's owner connects (and its folder is 0700)
        sock.listen(128)
        sock.setblocking(False)
        self._selector.register(sock, selectors.EVENT_READ, self._on_accept)
        return sock

    def _on_accept(self, _mask: int) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.warning("accept failed: %s", e)
                return
            conn = Connection(sock)
            self._inbound.add(conn)
            self._selector.register(conn.sock, selectors.EVENT_READ,
                                    lambda mask, c=conn: self._on_inbound(c, mask))

    def _on_inbound(self, conn: Connection, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._write(conn)
        if not mask & selectors.EVENT_READ or conn.closed:
            return
        got = conn.read()
        if got is None:
            self._close_inbound(conn)
            return
        for frame in got:
            if not conn.greeted:
                if not self._greet(conn, frame):
                    return
                continue
            if conn.peer == CLIENT:
                self._on_client(conn, frame)
            else:
                self._on_message(conn.peer, frame)
            if conn.closed:
                return

    def _greet(self, conn: Connection, frame: bytes) -> bool:
        """Check a connection's HELLO; answer WELCOME, or REFUSE and close."""
        try:
            obj = json.loads(frame)
            ok_shape = (type(obj) is dict and obj.get("paxos") == PROTOCOL
                        and type(obj.get("from")) is str and type(obj.get("incarnation")) is int)
        except ValueError:
            ok_shape = False
        if not ok_shape:
            return self._refuse(conn, "not a paxosctl handshake (or another protocol version)")
        if self.cluster_id and obj.get("cluster") != self.cluster_id:
            return self._refuse(conn, f"this is {self.name} of cluster {self.cluster_id}, "
                                      f"not of {obj.get('cluster')!r}")
        if obj.get("to") != self.name:
            return self._refuse(conn, f"this is {self.name}, not {obj.get('to')!r}")
        sender = obj["from"]
        if sender != CLIENT and sender not in self.members:
            return self._refuse(conn, f"{sender!r} is not a member of this cluster")
        conn.peer = sender
        conn.peer_incarnation = obj["incarnation"]
        conn.greeted = True
        reply = {"paxos": PROTOCOL, "name": self.name, "incarnation": self.incarnation,
                 **self._welcome()}
        self.reply(conn, frames.WELCOME + json.dumps(reply, separators=(",", ":")).encode())
        if sender == CLIENT:
            self._on_client(conn, None)
        return True

    def _refuse(self, conn: Connection, why: str) -> bool:
        log.warning("refused a connection: %s", why)
        conn.queue(frames.REFUSE + why.encode())
        try:
            conn.write()
        except OSError:
            pass
        self._close_inbound(conn)
        return False

    def _close_inbound(self, conn: Connection) -> None:
        if conn.closed:
            return
        if conn.peer == CLIENT and conn.greeted:
            self._on_client(conn, b"")  # gone: forget its watches
        self._unregister(conn)
        conn.close()
        self._inbound.discard(conn)
        self._dirty.discard(conn)

    def reply(self, conn: Connection, frame: bytes) -> None:
        """Queue a frame to a client (or a WELCOME); written at the next `flush`.
        A client that does not read past the cap is disconnected."""
        if not conn.queue(frame):
            if not conn.closed:
                log.warning("a client does not read its answers; disconnecting it")
                self._close_inbound(conn)
            return
        self._dirty.add(conn)

    # -------------------------------------------------------------- sending

    def send(self, dst: str, frame: bytes) -> None:
        """Queue one protocol message for peer `dst` (chaos permitting)."""
        chaos = self.chaos
        if chaos.settings.active:
            copies, delay = chaos.fate(dst)
            if delay:
                link = self._links.get(dst)
                generation = link.generation if link is not None and link.conn else -1
                due = self._clock() + delay
                for _ in range(copies):
                    heapq.heappush(self._delayed, (due, next(self._seq), dst, generation, frame))
                return
            for _ in range(copies):
                self._send_now(dst, frame)
            return
        self._send_now(dst, frame)

    def _send_now(self, dst: str, frame: bytes, generation: int | None = None) -> None:
        link = self._links.get(dst)
        if link is None:
            link = self._links[dst] = Link(dst)
        conn = link.conn
        if conn is None:
            conn = self._connect(link)
            if conn is None:
                self.dropped["unreachable"] += 1
                return
        elif generation is not None and generation not in (-1, link.generation):
            self.dropped["unreachable"] += 1  # meant for a connection that is gone
            return
        if conn.queue(frame):
            self._dirty.add(conn)
        else:
            self.dropped["overflow"] += 1

    def _connect(self, link: Link) -> Connection | None:
        now = self._clock()
        if now < link.retry_at:
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(endpoint(self.run_dir, link.name))
        except OSError as e:
            sock.close()
            if e.errno not in (errno.ENOENT, errno.ECONNREFUSED, errno.EAGAIN):
                log.warning("cannot connect to %s: %s", link.name, e)
            link.retry_at = now + link.backoff
            link.backoff = min(BACKOFF_CAP, link.backoff * 2)
            return None
        conn = Connection(sock)
        conn.peer = link.name
        link.conn = conn
        link.generation += 1
        conn.queue(hello(self.cluster_id, self.name, self.incarnation, link.name))
        self._selector.register(sock, selectors.EVENT_READ,
                                lambda mask, c=conn, ln=link: self._on_link(ln, c, mask))
        return conn

    def _on_link(self, link: Link, conn: Connection, mask: int) -> None:
        """Readiness of an outgoing link: its WELCOME/REFUSE, EOF, or writability."""
        if conn.closed:
            return
        if mask & selectors.EVENT_WRITE:
            self._write(conn)
            if conn.closed:
                return
        if not mask & selectors.EVENT_READ:
            return
        got = conn.read()
        if got is None:
            self._drop_link(link, conn, "closed")
            return
        for frame in got:
            if frame[:1] == frames.WELCOME and not conn.greeted:
                try:
                    conn.peer_incarnation = int(json.loads(frame[1:]).get("incarnation", 0))
                except (ValueError, AttributeError):
                    pass
                conn.greeted = True
                link.backoff = BACKOFF_FIRST
                log.info("connected to %s (incarnation %d)", link.name, conn.peer_incarnation)
            elif frame[:1] == frames.REFUSE:
                log.warning("%s refused our connection: %s", link.name,
                            frame[1:].decode(errors="replace"))
                self._drop_link(link, conn, "refused")
                link.retry_at = self._clock() + BACKOFF_CAP
                return

    def _drop_link(self, link: Link, conn: Connection, why: str) -> None:
        if conn.greeted:
            log.info("lost the connection to %s (incarnation %d): %s", link.name,
                     conn.peer_incarnation, why)
        self._unregister(conn)
        conn.close()
        self._dirty.discard(conn)
        if link.conn is conn:
            link.conn = None

    def _unregister(self, conn: Connection) -> None:
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass

    # ------------------------------------------------------------- flushing

    def next_due(self) -> float | None:
        """When the next delayed message is due (None: none held)."""
        return self._delayed[0][0] if self._delayed else None

    def flush(self) -> None:
        """Send delayed messages now due, then write every connection with output."""
        delayed = self._delayed
        if delayed:
            now = self._clock()
            while delayed and delayed[0][0] <= now:
                _, _, dst, generation, frame = heapq.heappop(delayed)
                self._send_now(dst, frame, generation)
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        for conn in dirty:
            self._write(conn)

    def _write(self, conn: Connection) -> None:
        if conn.closed:
            return
        try:
            done = conn.write()
        except OSError:
            self._lost(conn)
            return
        if done and conn.watching_write:
            self._watch_write(conn, False)
        elif not done and not conn.watching_write:
            self._watch_write(conn, True)

    def _watch_write(self, conn: Connection, on: bool) -> None:
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if on else 0)
        try:
            key = self._selector.get_key(conn.sock)
            self._selector.modify(conn.sock, events, key.data)
            conn.watching_write = on
        except (KeyError, ValueError):
            pass

    def _lost(self, conn: Connection) -> None:
        """A write failed: the other end is gone."""
        if conn in self._inbound:
            self._close_inbound(conn)
            return
        for link in self._links.values():
            if link.conn is conn:
                self._drop_link(link, conn, "write failed")
                return
        conn.close()

    def peers_connected(self) -> int:
        return sum(1 for link in self._links.values() if link.conn is not None and link.conn.greeted)

    def close(self) -> None:
        """Close every connection and remove the endpoint (a clean exit)."""
        self.flush()
        for link in self._links.values():
            if link.conn is not None:
                self._unregister(link.conn)
                link.conn.close()
        for conn in list(self._inbound):
            self._unregister(conn)
            conn.close()
        self._unregister_listener()
        try:
            if os.path.exists(self.path):
                os.unlink(self.path)
        except OSError:
            pass

    def _unregister_listener(self) -> None:
        try:
            self._selector.unregister(self._listener)
        except (KeyError, ValueError):
            pass
        self._listener.close()
