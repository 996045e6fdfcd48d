"""What the parts of an agent's endpoint may use of it: `Endpoint`.

transport.py's `Transport` is built of parts that each hold it: the links
it opens to its peers (peerlinks.py), the connections it accepts
(inbound.py) and the handshake's checks (greeting.py). They use only what
this protocol names (the transport imports them, so they cannot import
the transport, not even for type checking: tests/test_layers.py).
"""

from __future__ import annotations

import selectors
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    from .admission import Admission
    from .chaos import Chaos
    from .connection import Connection, Limits, Link
    from .net import Net
    from .protocolrecords import ProtocolRecords
    from .ratelog import RateLimitedLog


class Greets(Protocol):
    """The handshake checks' calls the other parts make (greeting.py's `Greeter`)."""

    admission: "Admission | None"

    @property
    def admitted(self) -> bool: ...
    def greet(self, conn: "Connection", frame: bytes) -> bool: ...
    def welcomed(self, link: "Link", conn: "Connection", frame: bytes) -> bool: ...
    def ask(self) -> None: ...
    def refuse_at_once(self, sock: Any, why: str) -> None: ...
    def tls_refused(self, conn: "Connection", doing: str, peer: str = "") -> None: ...


class Links(Protocol):
    """The peer links' calls the other parts make (peerlinks.py's `PeerLinks`)."""

    by_peer: dict[str, "Link"]

    def link(self, name: str) -> "Link": ...
    def connect(self, link: "Link") -> "Connection | None": ...
    def drop(self, link: "Link", conn: "Connection", why: str) -> None: ...


class Accepted(Protocol):
    """The inbound side's calls the other parts make (inbound.py's `Inbound`)."""

    conns: set["Connection"]

    def refuse(self, conn: "Connection", reason: str, why: str) -> bool: ...
    def close(self, conn: "Connection") -> None: ...
    def greeted(self, conn: "Connection") -> None: ...


class Endpoint(Protocol):
    """One agent incarnation's endpoint as its parts see it."""

    name: str
    incarnation: int
    cluster_id: str
    members: frozenset[str]
    retired: frozenset[str]
    limits: "Limits"
    selector: selectors.BaseSelector
    clock: Callable[[], float]
    net: "Net"
    chaos: "Chaos"

    @property
    def greeter(self) -> Greets: ...
    @property
    def links(self) -> Links: ...
    @property
    def inbound(self) -> Accepted: ...

    #: Connections with output to write at the next flush.
    dirty: set["Connection"]
    protocol: "ProtocolRecords | None"
    receiving: "Connection | None"
    dropped: Counter[str]
    refused: Counter[str]
    counts: Counter[str]
    rlog: "RateLimitedLog"
    on_message: Callable[[str, bytes], None]
    on_client: Callable[["Connection", bytes | None], None]
    welcome: Callable[[], dict[str, Any]]

    def reply(self, conn: "Connection", frame: bytes) -> None: ...
    def write(self, conn: "Connection") -> None: ...
    def watch(self, conn: "Connection", *, read: bool, write: bool) -> None: ...
    def unregister(self, conn: "Connection") -> None: ...
    def lost(self, conn: "Connection") -> None: ...


__all__ = ["Accepted", "Endpoint", "Greets", "Links"]
