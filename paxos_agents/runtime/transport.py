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
(`Link`) and the bounds (`Limits`) are in connection.py. This module is
the endpoint, `Transport`, in three parts: the connections this agent
opens to its peers and what it sends on them (peerlinks.py: links,
chaos, keeping links up), the ones it accepts (inbound.py: listener,
handshake deadlines, client answers and cuts), and what is shared here
(writing and flushing every connection, closing, the counters).
"""

from __future__ import annotations

import logging
import selectors
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Protocol

from .chaos import Chaos
from .admission import Admission
from .connection import Connection, Limits, endpoint
from .greeting import Facts, Greeter
from .handshake import CLIENT, PROTOCOL, hello
from .inbound import Inbound
from .net import Net, UnixNet
from .peerlinks import PeerLinks
from .ratelog import RateLimitedLog

if TYPE_CHECKING:
    from ..core.messages import Message
    from .protocolrecords import ProtocolRecords
    from .storage import Incarnations

log = logging.getLogger("paxos_agents.transport")

__all__ = ["CLIENT", "PROTOCOL", "Connection", "Limits", "PeerTransport",
           "Transport", "endpoint", "hello"]


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

    Its parts (`links`: peerlinks.py; `inbound`: inbound.py; `greeter`:
    greeting.py) use what is public here: the shared state below, and
    `write`, `watch`, `unregister`, `lost`.
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
        self.selector = selector
        #: Called with (sender, frame) per peer message, and (connection,
        #: frame or None or b"") per client event (see `OnClient`).
        self.on_message = on_message
        self.on_client = on_client
        #: What this agent says of itself in a WELCOME (a fresh dict each call).
        self.welcome = welcome
        self.clock = clock
        #: Connections with output to write at the next `flush`.
        self.dirty: set[Connection] = set()
        self.chaos = Chaos(name)
        #: Where sends with a `record` are recorded (the agent sets it; None: off).
        self.protocol: ProtocolRecords | None = None
        #: The inbound connection whose frame `on_message` is handling (its
        #: peer, incarnation, generation and frame count name the frame).
        self.receiving: Connection | None = None
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
        #: The links this agent opens to its peers (peerlinks.py).
        self.links = PeerLinks(self)
        #: Its listener and the connections it accepts (inbound.py).
        self.inbound = Inbound(self)

    # ------------------------------------------------------------ the API

    def send(self, dst: str, frame: bytes, record: "Message | None" = None) -> None:
        """Queue one protocol message for peer `dst` (chaos permitting);
        with `record` (the message `frame` encodes), record it in `protocol`
        as queued or dropped (`PeerLinks.send`)."""
        self.links.send(dst, frame, record)

    def reply(self, conn: Connection, frame: bytes) -> None:
        """Queue a frame to a client (or a WELCOME): `Inbound.reply`."""
        self.inbound.reply(conn, frame)

    def cut(self, conn: Connection, reason: str) -> None:
        """Cut a client loose: `Inbound.cut`."""
        self.inbound.cut(conn, reason)

    def next_due(self) -> float | None:
        """When the next delayed message is due (None: none held)."""
        return self.links.next_due()

    def flush(self) -> None:
        """Send delayed messages now due, then write every connection with output
        (not admitted yet: dial the members to ask first)."""
        if self.greeter.admission is not None:
            self.greeter.ask()
        else:
            self.links.keep()
        self.links.send_due()
        if self.dirty:
            dirty, self.dirty = self.dirty, set()
            for conn in dirty:
                self.write(conn)
        inbound = self.inbound
        if inbound.due():
            inbound.expire(self.clock())

    def peers_connected(self) -> int:
        return len(self.links.peers())

    def connected_peers(self) -> frozenset[str]:
        """Peers with a greeted connection either way now: our link to them
        (they WELCOMEd it) or theirs to us (we did). An acceptor opens no
        link to another acceptor, so both directions count."""
        return frozenset(self.links.peers() | self.inbound.peers())

    def close(self) -> None:
        """Close every connection and remove the endpoint (a clean exit)."""
        self.flush()
        self.links.close_all()
        self.inbound.close_all()
        self.net.unpublish()

    def stats(self) -> dict[str, int]:
        """Connection gauges, for the heartbeat's stats."""
        return {"inbound_connections": len(self.inbound.conns),
                "clients_cut": self.counts["clients_cut"],
                "accept_backoffs": self.counts["accept_backoffs"]}

    # ------------------------------------------------- shared by the parts

    def write(self, conn: Connection) -> None:
        """Write what `conn` holds; watch writability while it waits to write;
        close a cut client once its CUT is out; a failed write loses it."""
        if conn.closed:
            return
        try:
            done = conn.write()
        except OSError:
            if conn.failure is not None:
                self.greeter.tls_refused(conn, "refused a connection" if conn in self.inbound.conns
                                         else "refused our link", conn.peer)
            self.lost(conn)
            return
        if done and conn.cut:
            self.inbound.close(conn)  # its last frame (CUT) is out
        elif done and conn.watching_write:
            self.watch(conn, read=True, write=False)
        elif not done and not conn.watching_write:
            self.watch(conn, read=not conn.cut, write=True)

    def watch(self, conn: Connection, *, read: bool, write: bool) -> None:
        events = (selectors.EVENT_READ if read else 0) | (selectors.EVENT_WRITE if write else 0)
        try:
            key = self.selector.get_key(conn.sock)
            self.selector.modify(conn.sock, events, key.data)
            conn.watching_write = write
        except (KeyError, ValueError):
            pass

    def unregister(self, conn: Connection) -> None:
        try:
            self.selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass

    def lost(self, conn: Connection) -> None:
        """A write failed: the other end is gone."""
        if conn in self.inbound.conns:
            self.inbound.close(conn)
        elif not self.links.lost(conn):
            conn.close()
