"""Agent-to-agent and client-to-agent connections: the data path.

Every agent incarnation listens on its own endpoint; agents connect to
each other directly and clients connect to proposers and learners. The
supervisor is not on this path (it only spawns, watches and restarts).

What carries the frames is a `Net` (net.py), chosen by the agent's spec:
Unix stream sockets under the cluster's state dir (`run/<agent>.sock`, in
a 0700 folder: only the cluster's owner can connect), or TCP with mutual
TLS 1.3 (tlsnet.py), where each end's certificate names who it is. This
module is written once for both: links, frame queues, the HELLO, limits
and expiry. Nothing in `paxos_agents.core` knows about any of it.

Connections and incarnations. A connection is one-way for protocol
messages: agent A sends to B on the link A opened to B, and B answers on
its own link to A. The first frame on every connection is a HELLO naming
the cluster, the sender (name and incarnation) and the receiver's name;
the receiver answers WELCOME with its own incarnation, or REFUSE and
closes. The checks on both ends are greeting.py's `Greeter`: incarnations
are each agent's own durable counter, and a HELLO or WELCOME older than
the newest one welcomed from that member is refused. A connection
reaches exactly one receiver incarnation: messages queued on a link are
discarded with it, and a new link (to the next incarnation) starts
empty. A message is never carried over to an incarnation it was not sent
to, and no buffer or lock outlives an incarnation (DESIGN.md's Queue
facts: a `multiprocessing.Queue` keeps both).

Losing messages is fine: Paxos tolerates loss and the core resends on
its timers. So a link that is down drops what is sent to it (counted),
reconnects with backoff, and a peer that does not read fills its link's
buffer up to a cap, past which messages are dropped rather than
blocking the sender. A link is opened by the first message to its peer
and then kept up: one that went down is dialled again every
`KEEP_LINKS_SECONDS` (with its backoff) while the peer is a member,
message or not. Without that, an idle leader never dialled a restarted
acceptor, which then stayed unready ("connected to no proposer") until
the next command, and a rollout waiting on its readiness waited for good.

An agent whose store is new is not admitted (admission.py): until it
is, it sends nothing and drops what it receives (`dropped["not_admitted"]`),
and only dials every member with a fresh HELLO to ask.

Over TLS a HELLO must match its certificate (`identity`): a peer's sender
is the certificate's agent name, a client connection carries a client or
operator certificate, and every certificate is of this cluster. Failed
handshakes and identity checks are counted in `refused` under
`identity.REASONS`' counter names ("tls_unknown_ca", "tls_wrong_identity"...),
on whichever side saw them, and logged as one line.

Connections this agent did not open are untrusted until their HELLO
(`handshake.parse_hello`) and bounded before and after it (`Limits`):
one frame of at most `frames.HANDSHAKE_FRAME_BYTES` within
`handshake_seconds`, at most `max_inbound` of them; a client that leaves
more than `client_bytes` of answers unread is cut loose (a CUT frame,
then closed at the end of the turn). Warnings they can cause go through
a rate-limited log (`ratelog`), their text `clip`ped.

Chaos (`ChaosSettings`: drop, duplicate, delay, partition) is applied
here, to what this agent sends: each agent rolls its own seeded dice.

Protocol records (protocolrecords.py): each link's connection has a
generation (`Link.generation`, counted per peer, sent in the HELLO) and
counts the frames queued on it; an inbound peer connection counts the
frames read from it the same way, so a frame is (generation, n) on both
ends. A message sent with `record` (the message itself, given when records
are on) is recorded here, when it is queued (with those numbers) or dropped
(with the reason); the frame read is `receiving` while `on_message` runs,
for the agent's recv record.

One socket's framing and output queue (`Connection`), a peer link
(`Link`) and the bounds (`Limits`) are in connection.py; this module is
the endpoint: listener, handshake, links, flushing and expiry.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import json
import logging
import selectors
import socket
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Protocol

from . import clientwire, frames
from .chaos import Chaos
from .admission import Admission
from .connection import BACKOFF_CAP, LINK_READ_BYTES, Connection, Limits, Link, endpoint
from .greeting import Facts, Greeter
from .handshake import CLIENT, PROTOCOL, hello
from .net import QUIET_CONNECT_ERRORS, Net, UnixNet
from .protocolrecords import SEND
from .ratelog import RateLimitedLog, clip
from .records import event

if TYPE_CHECKING:
    from ..core.messages import Message
    from .protocolrecords import ProtocolRecords
    from .storage import Incarnations

log = logging.getLogger("paxos_agents.transport")

__all__ = ["CLIENT", "PROTOCOL", "Connection", "Limits", "PeerTransport", "Transport",
           "endpoint", "hello"]

#: How often links that went down are dialled again, message or not (the
#: module docstring). Each link keeps its own backoff on top (0.01 s to 0.5 s).
KEEP_LINKS_SECONDS = 0.25

#: accept() errors that mean "out of descriptors or memory": retrying at once
#: would fail the same way, so the listener is left alone for a while.
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class PeerTransport(Protocol):
    """What an agent's loop needs of its transport. `Transport` (Unix
    sockets) is the one implementation; a TCP + mutual-TLS one for several
    hosts would provide the same, registering its sockets with the loop's
    selector as `Transport` does. The core never sees any of it."""

    chaos: Chaos
    #: This agent's incarnation, as its HELLOs and WELCOMEs name it.
    incarnation: int
    #: Messages not sent, by reason; and frames from peers that were not messages.
    dropped: Counter[str]
    malformed: int
    #: Inbound connections refused, by reason; clients cut and accept backoffs.
    refused: Counter[str]
    counts: Counter[str]
    #: Warnings a peer or client can cause go through this (one line per kind per interval).
    rlog: RateLimitedLog

    def stats(self) -> dict[str, int]:
        """Connection gauges and counts, for the heartbeat's stats."""

    def send(self, dst: str, frame: bytes, record: "Message | None" = None) -> None:
        """Queue a protocol message for peer `dst` (dropped if it cannot go),
        recording `record` (the message `frame` encodes) in `protocol` if given."""

    def reply(self, conn: "Connection", frame: bytes) -> None:
        """Queue a frame to a client connection."""

    def flush(self) -> None:
        """Write what is queued: once per loop turn, and before a blocking fsync."""

    def next_due(self) -> float | None:
        """When a held-back (chaos-delayed) message is due, for the loop's timeout."""

    def connected_peers(self) -> frozenset[str]:
        """Peers with a greeted connection either way now (readiness probes)."""

    def close(self) -> None:
        """Close every connection and the endpoint (a clean exit)."""


#: Called with (sender name, frame) for every protocol message from a peer.
OnMessage = Callable[[str, bytes], None]
#: Called with a new client connection, then (connection, frame) per frame, then (connection, None).
OnClient = Callable[[Connection, bytes | None], None]


class Transport:
    """One agent incarnation's endpoint, over the `net` it is given (Unix
    sockets under `run_dir` when none).

    - `send(dst, frame)` queues a protocol message for peer `dst` (chaos
      applies here); `flush()` writes every link's queue with one send per
      peer (call once per loop turn, and before a blocking fsync).
    - Inbound peer messages go to `on_message`, client frames to
      `on_client`. Handlers are registered with `selector`, each socket
      with its own handler as `key.data`.
    - `next_due()` is when a delayed (chaos) message is due, for the
      loop's timeout; `flush()` sends those that are due.

    Nothing a handler does closes a connection behind the caller's back:
    `reply` to a client over its limit only marks it cut; cut and expired
    connections are closed in `flush`, at the end of the turn, so a caller
    iterating its clients (a learner streaming a slot to its subscribers)
    never sees one vanish mid-loop. Connections the agent did not open
    are bounded by `limits` (see `Limits`) and counted in `refused` (by
    reason: "handshake_timeout", "too_many_connections", "bad_hello",
    "stale_incarnation", and the TLS reasons' counters) and `counts`
    ("clients_cut", "accept_backoffs").
    """

    def __init__(self, *, name: str, incarnation: int, cluster_id: str, run_dir: str,
                 members: frozenset[str], selector: selectors.BaseSelector,
                 on_message: OnMessage, on_client: OnClient,
                 welcome: Callable[[], dict[str, Any]],
                 clock: Callable[[], float] = time.monotonic,
                 limits: Limits = Limits(), net: Net | None = None,
                 store: "Incarnations | None" = None, admission: Admission | None = None,
                 facts: Facts | None = None) -> None:
        self.name = name
        self.incarnation = incarnation
        self.cluster_id = cluster_id
        self.run_dir = run_dir
        self.members = members
        #: Names a membership record retired: never welcomed as a peer (greeting.py).
        self.retired: frozenset[str] = frozenset()
        self.limits = limits
        self._selector = selector
        self._on_message = on_message
        self._on_client = on_client
        self._welcome = welcome
        self._clock = clock
        self._links: dict[str, Link] = {}
        self._inbound: set[Connection] = set()
        self._dirty: set[Connection] = set()
        #: Inbound connections not greeted yet -> their handshake deadline
        #: (insertion order is deadline order: the first is the next due).
        self._handshaking: dict[Connection, float] = {}
        #: Connections cut or refused -> when they are closed at the latest.
        self._closing: dict[Connection, float] = {}
        #: When the listener is watched again after running out of descriptors.
        self._accept_paused_until: float | None = None
        self.chaos = Chaos(name)
        self._delayed: list[tuple[float, int, str, int, bytes, Message | None]] = []
        #: Where sends with a `record` are recorded (the agent sets it; None: off).
        self.protocol: ProtocolRecords | None = None
        #: The inbound connection whose frame `on_message` is handling (its
        #: peer, incarnation, generation and frame count name the frame).
        self.receiving: Connection | None = None
        self._seq = itertools.count()
        #: When `_keep_links` looks at the links next.
        self._keep_at = 0.0
        #: Messages not sent: "unreachable" (no link), "overflow" (peer not reading).
        self.dropped: Counter[str] = Counter()
        self.malformed = 0
        #: Inbound connections refused, by reason.
        self.refused: Counter[str] = Counter()
        #: "clients_cut" (fell behind past `client_bytes`), "accept_backoffs".
        self.counts: Counter[str] = Counter()
        self.rlog = RateLimitedLog(log, clock=clock)
        self.net: Net = net if net is not None else UnixNet(run_dir, name)
        #: The handshake's checks (greeting.py); `admission`: None once admitted.
        self.greeter = Greeter(self, store, admission, facts)
        self._listener = self._listen()

    # ------------------------------------------------------------ listening

    def _listen(self) -> socket.socket:
        sock = self.net.listen(self.limits.backlog)
        self._selector.register(sock, selectors.EVENT_READ, self._on_accept)
        return sock

    def _on_accept(self, _mask: int) -> None:
        limits = self.limits
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in _EXHAUSTED:
                    self._pause_accepting(e)
                else:
                    self.rlog.warning("accept", "accept failed: %s", e)
                return
            if len(self._inbound) >= limits.max_inbound:
                self.greeter.refuse_at_once(sock, f"too many connections ({limits.max_inbound} open)")
                continue
            try:
                conn = self.net.accept(sock, limits.client_bytes, frames.HANDSHAKE_FRAME_BYTES)
            except OSError as e:
                sock.close()
                self.rlog.warning("accept", "accept failed: %s", e)
                continue
            conn.awaiting_hello = True
            self._inbound.add(conn)
            self._handshaking[conn] = self._clock() + limits.handshake_seconds
            self._selector.register(conn.sock, selectors.EVENT_READ,
                                    lambda mask, c=conn: self._on_inbound(c, mask))

    def _pause_accepting(self, error: OSError) -> None:
        """Out of descriptors: stop watching the listener for a while (the
        pending connections wait in the backlog) rather than spin on it."""
        self.counts["accept_backoffs"] += 1
        self.rlog.warning("accept_backoff", "accept failed: %s; not accepting for %.2f s",
                          error.strerror or error, self.limits.accept_backoff_seconds)
        try:
            self._selector.unregister(self._listener)
        except (KeyError, ValueError):
            pass
        self._accept_paused_until = self._clock() + self.limits.accept_backoff_seconds

    def _on_inbound(self, conn: Connection, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._write(conn)
        if not mask & selectors.EVENT_READ or conn.closed or conn.cut:
            return
        got = conn.read()
        if conn.failure is not None:
            self.greeter.tls_refused(conn, "refused a connection")
            return
        if got is None:
            self._close_inbound(conn)
            return
        if not got and conn.has_output:
            self._dirty.add(conn)  # a TLS handshake that waits to write
        if got and not conn.greeted:
            # `read` returned the HELLO alone; the frames after it are read
            # under the limit a greeted connection gets.
            if not self.greeter.greet(conn, got[0]):
                return
            got = conn.more()
            if got is None:
                self._close_inbound(conn)
                return
        for frame in got:
            if conn.peer == CLIENT:
                self._on_client(conn, frame)
            else:
                conn.frames += 1  # counted as the sender counted it queuing (records' link)
                if conn.fresh or not self.greeter.admitted:
                    self.dropped["not_admitted"] += 1  # neither end may step it (admission.py)
                else:
                    self.receiving = conn
                    self._on_message(conn.peer, frame)
            if conn.closed or conn.cut:
                return

    def _refuse(self, conn: Connection, reason: str, why: str) -> bool:
        """Answer REFUSE `why` (which holds untrusted text only `clip`ped) and close."""
        self.refused[reason] += 1
        self.rlog.warning(f"refused:{reason}", "refused a connection: %s", why,
                          extra=event("refused"))
        conn.finish(frames.REFUSE + why.encode())
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
        self._handshaking.pop(conn, None)
        self._closing.pop(conn, None)

    def reply(self, conn: Connection, frame: bytes) -> None:
        """Queue a frame to a client (or a WELCOME); written at the next `flush`.
        A client over `limits.client_bytes` is cut loose (see `cut`); this
        never closes a connection itself, so callers may loop over theirs."""
        if conn.queue(frame):
            self._dirty.add(conn)
        elif not conn.closed and not conn.cut:
            self.cut(conn, f"fell behind: more than {conn.limit} bytes of answers unread")

    def cut(self, conn: Connection, reason: str) -> None:
        """Cut a client loose: discard its frames not yet started, queue a CUT
        frame saying why (and the learner's applied slot, for a resume), read
        nothing more from it, and close it in `flush` once the CUT is written
        or `limits.cut_grace_seconds` have passed."""
        applied = self._welcome().get("applied", -1)
        conn.finish(clientwire.CUT + json.dumps(
            {"reason": reason, "applied": applied if type(applied) is int else -1}).encode())
        self.counts["clients_cut"] += 1
        self.rlog.warning("cut", "cut a client loose: %s", reason)
        self._closing[conn] = self._clock() + self.limits.cut_grace_seconds
        self._dirty.add(conn)
        self._watch(conn, read=False, write=True)

    # -------------------------------------------------------------- sending

    def send(self, dst: str, frame: bytes, record: "Message | None" = None) -> None:
        """Queue one protocol message for peer `dst` (chaos permitting);
        with `record` (the message `frame` encodes), record it in `protocol`
        as queued or dropped."""
        if self.greeter.admission is not None:
            self._drop(dst, record, "not_admitted")  # nothing leaves an amnesic agent
            return
        chaos = self.chaos
        if chaos.settings.active:
            copies, delay = chaos.fate(dst, frame[1:2])  # its TYPE byte
            if not copies and record is not None:  # chaos counts its own drops
                self._record_drop(dst, record, "chaos")
            if delay:
                # Bound now to the connection it is sent on, dialled if none is
                # up: when due, it goes on that connection or nowhere.
                link = self._links.get(dst) or self._links.setdefault(dst, Link(dst))
                if link.conn is None and self._connect(link) is None:
                    self._drop(dst, record, "unreachable", copies)
                    return
                generation, due = link.generation, self._clock() + delay
                for _ in range(copies):
                    heapq.heappush(self._delayed,
                                   (due, next(self._seq), dst, generation, frame, record))
                return
            for _ in range(copies):
                self._send_now(dst, frame, None, record)
            return
        self._send_now(dst, frame, None, record)

    def _drop(self, dst: str, record: "Message | None", reason: str, copies: int = 1) -> None:
        """`copies` sends to `dst` that go nowhere: counted in `dropped[reason]`,
        and recorded as dropped if they carry a `record`."""
        self.dropped[reason] += copies
        if record is not None:
            for _ in range(copies):
                self._record_drop(dst, record, reason)

    def _record_drop(self, dst: str, record: "Message", reason: str) -> None:
        if self.protocol is not None:
            self.protocol.record(SEND, record, dst, 0, 0, 0, reason)

    def _send_now(self, dst: str, frame: bytes, generation: int | None = None,
                  record: "Message | None" = None) -> None:
        """Queue `frame` on the link to `dst`, connecting if it is down. A
        chaos-delayed frame carries the `generation` of the connection it
        was sent on: it goes on that connection or nowhere. With a `record`,
        the message is recorded (queued as the connection's next frame, or
        dropped and why)."""
        link = self._links.get(dst)
        if link is None:
            link = self._links[dst] = Link(dst)
        conn = link.conn
        if generation is not None and (conn is None or generation != link.generation):
            # Compared before any reconnect: the connection it was meant for
            # is gone, and a new one may reach the peer's next incarnation,
            # which must not get its predecessor's messages.
            self._drop(dst, record, "unreachable")
            return
        if conn is None:
            conn = self._connect(link)
            if conn is None:
                self._drop(dst, record, "unreachable")
                return
        if conn.queue(frame):
            self._dirty.add(conn)
            conn.frames += 1
            if record is not None and self.protocol is not None:
                self.protocol.record(SEND, record, dst, 0, link.generation, conn.frames)
        else:
            self._drop(dst, record, "overflow")

    def _connect(self, link: Link) -> Connection | None:
        now = self._clock()
        if now < link.retry_at:
            return None
        try:
            conn = self.net.dial(link.name, self.limits.peer_link_bytes, LINK_READ_BYTES)
        except OSError as e:
            if e.errno not in QUIET_CONNECT_ERRORS:
                self.rlog.warning(f"connect:{link.name}", "cannot connect to %s: %s", link.name, e)
            conn = None
        if conn is None:  # unreachable, or (TLS) its address is being looked up
            link.retry_at = now + link.backoff
            link.backoff = min(BACKOFF_CAP, link.backoff * 2)
            return None
        sock = conn.sock
        conn.peer = link.name
        link.conn = conn
        link.generation += 1
        conn.fresh = not self.greeter.admitted  # asking to be admitted (admission.py)
        conn.generation = link.generation
        conn.queue(hello(self.cluster_id, self.name, self.incarnation, link.name, conn.fresh,
                         link.generation))
        self._dirty.add(conn)  # the HELLO goes out this turn, with or without a message
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
        if conn.failure is not None:
            self.greeter.tls_refused(conn, "refused our link", link.name)
            self._drop_link(link, conn, "refused")
            link.retry_at = self._clock() + BACKOFF_CAP
            return
        if got is None:
            self._drop_link(link, conn, "closed")
            return
        if not got and conn.has_output:
            self._dirty.add(conn)  # a TLS handshake done (or waiting to write): send the HELLO
        for frame in got:
            if frame[:1] == frames.WELCOME and not conn.greeted:
                if not self.greeter.welcomed(link, conn, frame) or conn.closed:
                    return
            elif frame[:1] == frames.REFUSE:
                self.rlog.warning(f"refused-by:{link.name}", "%s refused our connection: %s",
                                  link.name, clip(frame[1:].decode(errors="replace"), 300),
                                  extra=event("refused_by_peer"))
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
        """Send delayed messages now due, then write every connection with output
        (not admitted yet: dial the members to ask first)."""
        if self.greeter.admission is not None:
            self.greeter.ask()
        elif self._clock() >= self._keep_at:
            self._keep_links()
        delayed = self._delayed
        if delayed:
            now = self._clock()
            while delayed and delayed[0][0] <= now:
                _, _, dst, generation, frame, record = heapq.heappop(delayed)
                self._send_now(dst, frame, generation, record)
        if self._dirty:
            dirty, self._dirty = self._dirty, set()
            for conn in dirty:
                self._write(conn)
        if self._handshaking or self._closing or self._accept_paused_until is not None:
            self._expire(self._clock())

    def _keep_links(self) -> None:
        """Dial again every link that is down to a peer still a member (the
        module docstring says why); `_connect` keeps each link's backoff."""
        self._keep_at = self._clock() + KEEP_LINKS_SECONDS
        for link in self._links.values():
            if link.conn is None and link.name in self.members and link.name not in self.retired:
                self._connect(link)

    def _expire(self, now: float) -> None:
        """Close what is past its deadline: handshakes not done in time, cut
        clients that did not take their CUT; watch the listener again after
        an accept backoff."""
        handshaking = self._handshaking
        while handshaking:
            conn, deadline = next(iter(handshaking.items()))
            if deadline > now:
                break
            del handshaking[conn]
            if not conn.closed and not conn.greeted:
                self._refuse(conn, "handshake_timeout",
                             f"no handshake within {self.limits.handshake_seconds:g} s")
        if self._closing:
            for conn, deadline in list(self._closing.items()):
                if conn.closed:
                    del self._closing[conn]
                elif deadline <= now:
                    self._close(conn)
        if self._accept_paused_until is not None and now >= self._accept_paused_until:
            self._accept_paused_until = None
            try:
                self._selector.register(self._listener, selectors.EVENT_READ, self._on_accept)
            except (KeyError, ValueError):
                pass

    def _write(self, conn: Connection) -> None:
        if conn.closed:
            return
        try:
            done = conn.write()
        except OSError:
            if conn.failure is not None:
                self.greeter.tls_refused(conn, "refused a connection" if conn in self._inbound
                                         else "refused our link", conn.peer)
            self._lost(conn)
            return
        if done and conn.cut:
            self._close(conn)  # its last frame (CUT) is out
        elif done and conn.watching_write:
            self._watch(conn, read=True, write=False)
        elif not done and not conn.watching_write:
            self._watch(conn, read=not conn.cut, write=True)

    def _watch(self, conn: Connection, *, read: bool, write: bool) -> None:
        events = (selectors.EVENT_READ if read else 0) | (selectors.EVENT_WRITE if write else 0)
        try:
            key = self._selector.get_key(conn.sock)
            self._selector.modify(conn.sock, events, key.data)
            conn.watching_write = write
        except (KeyError, ValueError):
            pass

    def _close(self, conn: Connection) -> None:
        """Close a connection this agent is done with (inbound: cut or expired)."""
        if conn in self._inbound:
            self._close_inbound(conn)
        else:
            self._lost(conn)

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

    def connected_peers(self) -> frozenset[str]:
        """Peers with a greeted connection either way now: our link to them
        (they WELCOMEd it) or theirs to us (we did). An acceptor opens no
        link to another acceptor, so both directions count."""
        names = {name for name, link in self._links.items()
                 if link.conn is not None and link.conn.greeted}
        names.update(conn.peer for conn in self._inbound
                     if conn.greeted and not conn.closed and conn.peer != CLIENT)
        return frozenset(names)

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
        self.net.unpublish()

    def stats(self) -> dict[str, int]:
        """Connection gauges, for the heartbeat's stats."""
        return {"inbound_connections": len(self._inbound),
                "clients_cut": self.counts["clients_cut"],
                "accept_backoffs": self.counts["accept_backoffs"]}

    def _unregister_listener(self) -> None:
        try:
            self._selector.unregister(self._listener)
        except (KeyError, ValueError):
            pass
        self._listener.close()

