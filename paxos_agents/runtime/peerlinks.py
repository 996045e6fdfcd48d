"""The links an agent opens to its peers, and what it sends on them.

`PeerLinks` is one part of a `Transport` (transport.py's module docstring
says what the transport promises). A connection is one-way for protocol
messages: this agent sends to peer B on the link it opened to B (a
`Link`: connection.py), whose first frame is a HELLO and whose answer is
B's WELCOME (checked by greeting.py's `Greeter`) or REFUSE.

- A link is opened by the first message to its peer and then kept up: one
  that went down is dialled again every `KEEP_LINKS_SECONDS` (with its
  own backoff, 0.01 s to 0.5 s) while the peer is a member, message or
  not. Without that, an idle leader never dialled a restarted acceptor,
  which then stayed unready ("connected to no proposer") until the next
  command, and a rollout waiting on its readiness waited for good.
- A link that is down drops what is sent to it (counted in the
  transport's `dropped`: "unreachable"), and a peer that does not read
  fills its link's buffer up to a cap, past which messages are dropped
  ("overflow") rather than blocking the sender: Paxos tolerates loss and
  the core resends on its timers.
- Messages queued on a link are discarded with its connection; a new one
  (to the peer's next incarnation) starts empty, so no message reaches an
  incarnation it was not sent to. A chaos-delayed message is bound to the
  connection it was sent on (`Link.generation`): when due, it goes on
  that connection or nowhere.
- Chaos (`ChaosSettings`: drop, duplicate, delay, partition) is applied
  here, to what this agent sends: each agent rolls its own seeded dice.
- Protocol records: a message sent with `record` (the message itself,
  given when records are on) is recorded as it is queued, as the frame
  (`Link.generation`, `Connection.frames`) of its connection, or as
  dropped with the reason.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import selectors
from typing import TYPE_CHECKING

from . import frames
from .connection import BACKOFF_CAP, LINK_READ_BYTES, Connection, Link
from .handshake import hello
from .net import QUIET_CONNECT_ERRORS
from .protocolrecords import SEND
from .ratelog import clip
from .records import event

if TYPE_CHECKING:
    from ..core.messages import Message
    from .endpointparts import Endpoint

log = logging.getLogger("paxos_agents.transport")

#: How often links that went down are dialled again, message or not (the
#: module docstring). Each link keeps its own backoff on top (0.01 s to 0.5 s).
KEEP_LINKS_SECONDS = 0.25


class PeerLinks:
    """The links of one `Transport` to its peers, by peer name (`by_peer`;
    what it uses of the transport: endpointparts.py)."""

    def __init__(self, transport: "Endpoint") -> None:
        self._t = transport
        self.by_peer: dict[str, Link] = {}
        #: Chaos-delayed messages: (due, seq, peer, generation, frame, record), a heap.
        self._delayed: list[tuple[float, int, str, int, bytes, Message | None]] = []
        self._seq = itertools.count()
        #: When `keep` looks at the links next.
        self._keep_at = 0.0

    def link(self, name: str) -> Link:
        """The link to peer `name` (made, not dialled, if there was none)."""
        link = self.by_peer.get(name)
        if link is None:
            link = self.by_peer[name] = Link(name)
        return link

    # -------------------------------------------------------------- sending

    def send(self, dst: str, frame: bytes, record: "Message | None" = None) -> None:
        """Queue one protocol message for peer `dst` (chaos permitting);
        with `record` (the message `frame` encodes), record it in the
        transport's `protocol` as queued or dropped."""
        t = self._t
        if t.greeter.admission is not None:
            self._drop(dst, record, "not_admitted")  # nothing leaves an amnesic agent
            return
        chaos = t.chaos
        if chaos.settings.active:
            copies, delay = chaos.fate(dst, frame[1:2])  # its TYPE byte
            if not copies and record is not None:  # chaos counts its own drops
                self._record_drop(dst, record, "chaos")
            if delay:
                # Bound now to the connection it is sent on, dialled if none is
                # up: when due, it goes on that connection or nowhere.
                link = self.link(dst)
                if link.conn is None and self.connect(link) is None:
                    self._drop(dst, record, "unreachable", copies)
                    return
                generation, due = link.generation, t.clock() + delay
                for _ in range(copies):
                    heapq.heappush(self._delayed,
                                   (due, next(self._seq), dst, generation, frame, record))
                return
            for _ in range(copies):
                self.send_now(dst, frame, None, record)
            return
        self.send_now(dst, frame, None, record)

    def send_now(self, dst: str, frame: bytes, generation: int | None = None,
                 record: "Message | None" = None) -> None:
        """Queue `frame` on the link to `dst`, connecting if it is down. A
        chaos-delayed frame carries the `generation` of the connection it
        was sent on: it goes on that connection or nowhere. With a `record`,
        the message is recorded (queued as the connection's next frame, or
        dropped and why)."""
        link = self.by_peer.get(dst)
        if link is None:
            link = self.by_peer[dst] = Link(dst)
        conn = link.conn
        if generation is not None and (conn is None or generation != link.generation):
            # Compared before any reconnect: the connection it was meant for
            # is gone, and a new one may reach the peer's next incarnation,
            # which must not get its predecessor's messages.
            self._drop(dst, record, "unreachable")
            return
        if conn is None:
            conn = self.connect(link)
            if conn is None:
                self._drop(dst, record, "unreachable")
                return
        if conn.queue(frame):
            t = self._t
            t.dirty.add(conn)
            conn.frames += 1
            if record is not None and t.protocol is not None:
                t.protocol.record(SEND, record, dst, 0, link.generation, conn.frames)
        else:
            self._drop(dst, record, "overflow")

    def _drop(self, dst: str, record: "Message | None", reason: str, copies: int = 1) -> None:
        """`copies` sends to `dst` that go nowhere: counted in `dropped[reason]`,
        and recorded as dropped if they carry a `record`."""
        self._t.dropped[reason] += copies
        if record is not None:
            for _ in range(copies):
                self._record_drop(dst, record, reason)

    def _record_drop(self, dst: str, record: "Message", reason: str) -> None:
        protocol = self._t.protocol
        if protocol is not None:
            protocol.record(SEND, record, dst, 0, 0, 0, reason)

    def next_due(self) -> float | None:
        """When the next delayed message is due (None: none held)."""
        return self._delayed[0][0] if self._delayed else None

    def send_due(self) -> None:
        """Send the delayed messages now due."""
        delayed = self._delayed
        if delayed:
            now = self._t.clock()
            while delayed and delayed[0][0] <= now:
                _, _, dst, generation, frame, record = heapq.heappop(delayed)
                self.send_now(dst, frame, generation, record)

    # ------------------------------------------------------------ dialling

    def connect(self, link: Link) -> Connection | None:
        """Dial `link`'s peer (unless its backoff says wait) and queue the
        HELLO; None if it could not be dialled now."""
        t = self._t
        now = t.clock()
        if now < link.retry_at:
            return None
        try:
            conn = t.net.dial(link.name, t.limits.peer_link_bytes, LINK_READ_BYTES)
        except OSError as e:
            if e.errno not in QUIET_CONNECT_ERRORS:
                t.rlog.warning(f"connect:{link.name}", "cannot connect to %s: %s", link.name, e)
            conn = None
        if conn is None:  # unreachable, or (TLS) its address is being looked up
            link.retry_at = now + link.backoff
            link.backoff = min(BACKOFF_CAP, link.backoff * 2)
            return None
        conn.peer = link.name
        link.conn = conn
        link.generation += 1
        conn.fresh = not t.greeter.admitted  # asking to be admitted (admission.py)
        conn.generation = link.generation
        conn.queue(hello(t.cluster_id, t.name, t.incarnation, link.name, conn.fresh,
                         link.generation))
        t.dirty.add(conn)  # the HELLO goes out this turn, with or without a message
        t.selector.register(conn.sock, selectors.EVENT_READ,
                            lambda mask, c=conn, ln=link: self._on_ready(ln, c, mask))
        return conn

    def keep(self) -> None:
        """Every `KEEP_LINKS_SECONDS`: dial again every link that is down to a
        peer still a member (the module docstring says why); `connect`
        keeps each link's backoff."""
        t = self._t
        if t.clock() < self._keep_at:
            return
        self._keep_at = t.clock() + KEEP_LINKS_SECONDS
        for link in self.by_peer.values():
            if link.conn is None and link.name in t.members and link.name not in t.retired:
                self.connect(link)

    def _on_ready(self, link: Link, conn: Connection, mask: int) -> None:
        """Readiness of an outgoing link: its WELCOME/REFUSE, EOF, or writability."""
        if conn.closed:
            return
        t = self._t
        if mask & selectors.EVENT_WRITE:
            t.write(conn)
            if conn.closed:
                return
        if not mask & selectors.EVENT_READ:
            return
        got = conn.read()
        if conn.failure is not None:
            t.greeter.tls_refused(conn, "refused our link", link.name)
            self.drop(link, conn, "refused")
            link.retry_at = t.clock() + BACKOFF_CAP
            return
        if got is None:
            self.drop(link, conn, "closed")
            return
        if not got and conn.has_output:
            t.dirty.add(conn)  # a TLS handshake done (or waiting to write): send the HELLO
        for frame in got:
            if frame[:1] == frames.WELCOME and not conn.greeted:
                if not t.greeter.welcomed(link, conn, frame) or conn.closed:
                    return
            elif frame[:1] == frames.REFUSE:
                t.rlog.warning(f"refused-by:{link.name}", "%s refused our connection: %s",
                               link.name, clip(frame[1:].decode(errors="replace"), 300),
                               extra=event("refused_by_peer"))
                self.drop(link, conn, "refused")
                link.retry_at = t.clock() + BACKOFF_CAP
                return

    # -------------------------------------------------------------- closing

    def drop(self, link: Link, conn: Connection, why: str) -> None:
        """Close `link`'s connection `conn` (its queued messages go with it)."""
        if conn.greeted:
            log.info("lost the connection to %s (incarnation %d): %s", link.name,
                     conn.peer_incarnation, why)
        t = self._t
        t.unregister(conn)
        conn.close()
        t.dirty.discard(conn)
        if link.conn is conn:
            link.conn = None

    def lost(self, conn: Connection) -> bool:
        """A write on `conn` failed: drop its link. False if it is no link's."""
        for link in self.by_peer.values():
            if link.conn is conn:
                self.drop(link, conn, "write failed")
                return True
        return False

    def peers(self) -> set[str]:
        """The peers whose link is up and WELCOMEd us."""
        return {name for name, link in self.by_peer.items()
                if link.conn is not None and link.conn.greeted}

    def close_all(self) -> None:
        """Close every link (a clean exit)."""
        t = self._t
        for link in self.by_peer.values():
            if link.conn is not None:
                t.unregister(link.conn)
                link.conn.close()

