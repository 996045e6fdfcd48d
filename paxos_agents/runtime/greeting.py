"""The handshake's checks, on both ends of a connection: `Greeter`.

The transport (transport.py) holds one `Greeter` and hands it every
connection's first frame: an inbound HELLO (`greet`), an outbound link's
WELCOME (`welcomed`), a failed TLS handshake (`tls_refused`). Refusals
go through `Inbound.refuse` (counted in the transport's `refused` by
reason, one rate-limited log line, REFUSE sent, connection closed).

Incarnations. An agent's incarnation is a counter in its own store,
counted up and fsynced each time it starts, before it listens or dials
(runtime/main.py), so no two starts of one store share a number, on any
host. Every agent remembers, in its store, the newest incarnation it
welcomed from each member (`newest_incarnation`):

- a HELLO older than that is refused ("stale_incarnation", both numbers
  in the log line): an ended process, or a partitioned one whose member
  has restarted elsewhere, must not speak for the member;
- an equal one is the same incarnation reconnecting;
- a newer one is committed to the store before the WELCOME is sent (rare:
  once per peer restart), and every link and inbound connection this
  agent still has with the member's older incarnations is closed;
- a WELCOME on our own link naming an incarnation older than the newest
  welcomed is a stale peer answering: the link is dropped and counted.

A HELLO marked fresh (an agent whose store is new, asking to be admitted:
admission.py) is answered with what this agent knows of the sender, and
neither recorded nor compared: the asking agent sends no protocol
message, and whatever comes on such a connection is dropped. Our own
fresh links feed the answers to `Admission`; once admitted, the store
says so, and every link is closed to be dialled again, not fresh, with
the incarnation admitted.

Over TLS a HELLO must also match its certificate (`matches_certificate`).
"""

from __future__ import annotations

import json
import logging
import socket
from typing import TYPE_CHECKING, Any, Callable

from . import frames
from .admission import Admission
from .connection import BACKOFF_CAP, BACKOFF_FIRST, Connection, Link
from .handshake import CLIENT, PROTOCOL, HandshakeError, parse_hello, parse_welcome
from .identity import REASONS
from .ratelog import clip
from .records import event

if TYPE_CHECKING:
    from .endpointparts import Endpoint
    from .storage import Incarnations

log = logging.getLogger("paxos_agents.transport")

#: What a WELCOME to a fresh HELLO adds about its sender ("decided", "added").
Facts = Callable[[str], dict[str, Any]]


class Greeter:
    """The handshake checks of one `Transport` (see the module doc).

    `transport` is the `Transport` that holds it (what it uses of it:
    endpointparts.py), whose connections it greets, counts and closes. `store` keeps this agent's incarnation and the peers' it welcomed
    (None: kept in memory only, for tests of the transport alone);
    `admission` is None once the agent is admitted; `facts(sender)` is
    what a fresh HELLO's WELCOME tells about the sender.
    """

    def __init__(self, transport: "Endpoint", store: "Incarnations | None",
                 admission: Admission | None, facts: Facts | None) -> None:
        self._t = transport
        self._store = store
        self._welcomed: dict[str, int] = store.welcomed() if store is not None else {}
        self.admission = admission
        self._facts = facts or (lambda sender: {})

    @property
    def admitted(self) -> bool:
        return self.admission is None

    # ------------------------------------------------------------ inbound

    def greet(self, conn: Connection, frame: bytes) -> bool:
        """Check a connection's HELLO; answer WELCOME, or REFUSE and close."""
        t = self._t
        try:
            h = parse_hello(frame)
        except HandshakeError as e:
            return t.inbound.refuse(conn, "bad_hello", str(e))
        if t.cluster_id and h.cluster != t.cluster_id:
            return t.inbound.refuse(conn, "bad_hello", f"this is {t.name} of cluster "
                             f"{t.cluster_id}, not of {clip(h.cluster)}")
        if h.receiver != t.name:
            return t.inbound.refuse(conn, "bad_hello", f"this is {t.name}, not {clip(h.receiver)}")
        sender = h.sender
        if t.net.secure and not self.matches_certificate(conn, sender):
            return False
        answer: dict[str, Any] = {}
        if sender != CLIENT:
            if sender in t.retired and not h.fresh:
                return t.inbound.refuse(conn, "bad_hello", f"{clip(sender)} was retired by a replace; "
                                                    "a retired name never takes part again")
            if sender not in t.members and sender not in t.retired:
                return t.inbound.refuse(conn, "bad_hello",
                                 f"{clip(sender)} is not a member of this cluster")
            newest = self.newest_incarnation(sender)
            if h.fresh and sender in t.retired:
                # A new store under a retired name: say so, and its admission
                # refuses it (exit 78); the connection is fresh: nothing it
                # sends is stepped, nothing is sent to it.
                answer = {"welcomed": newest, "retired": True}
            elif h.fresh:
                answer = {"welcomed": newest, **self._facts(sender)}
            elif h.incarnation < newest:
                return t.inbound.refuse(conn, "stale_incarnation",
                                 f"stale incarnation {h.incarnation} of {sender}: this agent "
                                 f"welcomed its incarnation {newest}")
            elif h.incarnation > newest:
                self._remember(sender, h.incarnation, newest)
        conn.peer = sender
        conn.peer_incarnation = h.incarnation
        conn.generation = h.generation
        conn.fresh = h.fresh
        conn.greeted = True
        conn.awaiting_hello = False
        conn.reader.limit = frames.MAX_FRAME_BYTES
        t.inbound.greeted(conn)
        about = t.welcome()
        if sender != CLIENT:
            # The record and the names are for the CLI; a peer's WELCOME stays small.
            about.pop("membership", None)
            about.pop("members", None)
        reply = {"paxos": PROTOCOL, "name": t.name, "incarnation": t.incarnation, **about, **answer}
        t.reply(conn, frames.WELCOME + json.dumps(reply, separators=(",", ":")).encode())
        if sender == CLIENT:
            t.on_client(conn, None)
        else:
            log.info("welcomed %s (incarnation %d)", sender, h.incarnation,
                     extra=event("peer_welcomed"))
        return True

    def newest_incarnation(self, member: str) -> int:
        """The newest incarnation of `member` this agent welcomed (0: none).

        Durable, from the store: incarnations are the member's own counter
        now, never reused, so the newest ever welcomed is the live one or
        an older one has no business speaking. (Before, numbers were per
        supervisor run and only open connections could be compared: a
        process left from an earlier run could hold a higher number than
        the member's real incarnation. That reason is gone.)"""
        return self._welcomed.get(member, 0)

    def _remember(self, member: str, incarnation: int, before: int) -> None:
        """Commit `member`'s newer `incarnation` (before its WELCOME is sent),
        then close what this agent still has with its older incarnations."""
        if self._store is not None:
            self._store.remember_welcome(member, incarnation)
        self._welcomed[member] = incarnation
        if before:
            log.info("welcomed incarnation %d of %s (newest before: %d); closing the "
                     "connections of its older incarnations", incarnation, member, before)
        t = self._t
        for other in list(t.inbound.conns):
            if (other.greeted and other.peer == member and not other.fresh
                    and other.peer_incarnation < incarnation):
                t.inbound.close(other)
        link = t.links.by_peer.get(member)
        if (link is not None and link.conn is not None and link.conn.greeted
                and link.conn.peer_incarnation < incarnation):
            t.links.drop(link, link.conn, f"its incarnation {incarnation} connected")
            link.retry_at = 0.0

    def refuse_at_once(self, sock: socket.socket, why: str) -> None:
        """Refuse a connection never taken in (past `max_inbound`): one
        non-blocking REFUSE, then close; nothing is held for it."""
        self._t.refused["too_many_connections"] += 1
        self._t.rlog.warning("refused:too_many_connections", "refused a connection: %s", why)
        if not self._t.net.secure:  # a TLS dialler would read it as a broken handshake
            try:
                sock.setblocking(False)
                sock.send(frames.pack([frames.REFUSE + why.encode()]))
            except OSError:
                pass
        sock.close()

    def matches_certificate(self, conn: Connection, sender: str) -> bool:
        """Over TLS: a peer's HELLO names the agent its certificate names; a
        client's connection carries a client or operator certificate. Else
        REFUSE (counted `tls_wrong_identity`) and False."""
        ident = conn.identity
        if sender == CLIENT:
            if ident is not None and ident.kind in ("client", "operator"):
                return True
            wanted = "a client or operator certificate"
        else:
            if ident is not None and ident.kind == "agent" and ident.name == sender:
                return True
            wanted = f"the certificate of agent {clip(sender)}"
        shown = ident.uri if ident is not None else "no certificate"
        reason = "wrong_identity"
        return self._t.inbound.refuse(conn, REASONS[reason][0],
                               f"a HELLO from {clip(sender)} needs {wanted}, the connection has "
                               f"{shown}; fix: {REASONS[reason][1]}")

    def tls_refused(self, conn: Connection, doing: str, peer: str = "") -> None:
        """Count and log (one line) a failed TLS handshake or identity check;
        REFUSE over the finished handshake when there is one, and close."""
        t = self._t
        reason, line = conn.failure or ("protocol", "TLS handshake failed")
        counter = REASONS[reason][0]
        if conn in t.inbound.conns and getattr(conn, "secured", False):
            t.inbound.refuse(conn, counter, line)  # the dialler reads why, over TLS
            return
        t.refused[counter] += 1
        t.rlog.warning(f"refused:{counter}", "%s%s: %s", doing, f" to {peer}" if peer else "", line,
                       extra=event("peer_refused"))
        if conn in t.inbound.conns:
            t.inbound.close(conn)

    # ----------------------------------------------------------- outbound

    def welcomed(self, link: Link, conn: Connection, frame: bytes) -> bool:
        """Our link's WELCOME: False if it names a stale incarnation (the link
        is then dropped and counted). On a fresh link, the answer goes to
        `Admission` (which may raise `AdmissionRefused`)."""
        t = self._t
        welcome = parse_welcome(frame[1:])
        number = welcome.incarnation if welcome is not None else 0
        newest = self.newest_incarnation(link.name)
        if number < newest:
            t.refused["stale_incarnation"] += 1
            t.rlog.warning(f"stale:{link.name}", "dropped the link to %s: it answers as "
                           "incarnation %d, but this agent welcomed its incarnation %d",
                           link.name, number, newest, extra=event("peer_refused"))
            t.links.drop(link, conn, "stale incarnation")
            link.retry_at = t.clock() + BACKOFF_CAP
            return False
        conn.peer_incarnation = number
        conn.greeted = True
        link.backoff = BACKOFF_FIRST
        log.info("connected to %s (incarnation %d)", link.name, number,
                 extra=event("peer_welcomed"))
        if self.admission is not None and conn.fresh and welcome is not None:
            self._hear(link.name, welcome)
        return True

    def ask(self) -> None:
        """Not admitted yet: dial every other member (with backoff) to ask."""
        t = self._t
        for member in t.members:
            if member != t.name:
                link = t.links.link(member)
                if link.conn is None:
                    t.links.connect(link)

    def _hear(self, peer: str, welcome) -> None:
        admission = self.admission
        assert admission is not None
        incarnation = admission.hear(peer, welcome)  # AdmissionRefused: the agent exits
        if incarnation is None:
            log.info("not admitted yet: waiting for %s", admission.waiting_for())
            return
        t = self._t
        if self._store is not None:
            self._store.admit(incarnation)
        t.incarnation = max(t.incarnation, incarnation)
        self.admission = None
        log.info("admitted to the cluster as incarnation %d (%d peers answered); "
                 "reconnecting", t.incarnation, len(admission.answers), extra=event("admitted"))
        for link in t.links.by_peer.values():
            if link.conn is not None:
                t.links.drop(link, link.conn, "admitted: dialling again, not fresh")
            link.retry_at = 0.0
