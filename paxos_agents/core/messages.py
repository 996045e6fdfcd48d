"""Every message the agents exchange.

Messages are frozen, slotted and keyword-only. Each docstring names its
Paxos phase (Paxos Made Simple, section 2.2) and its direction. Adding a
message type means adding it to `Message` below and to the codec in
`paxos_agents.runtime.codec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from .commands import Command, Value
from .configs import History
from .ids import Ballot


@dataclass(frozen=True, slots=True)
class Vote:
    """What an acceptor accepted in one slot: the ballot and the value."""

    slot: int
    ballot: Ballot
    value: Value


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepare:
    """Phase 1a, proposer -> acceptor: promise `ballot` for every slot >= `first_slot`.

    Multi-Paxos runs phase 1 once for all slots from the leader's first
    undecided one (Paxos Made Simple, section 3).
    """

    src: str
    dst: str
    ballot: Ballot
    first_slot: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Promise:
    """Phase 1b, acceptor -> proposer. Sent only after the promise is durable.

    `votes` holds what this acceptor accepted in slots >= `first_slot`.
    `compacted` is the acceptor's compaction point (see `Acceptor`): every
    slot below it is decided and stored by every learner.
    """

    src: str
    dst: str
    ballot: Ballot
    first_slot: int
    votes: tuple[Vote, ...]
    compacted: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Accept:
    """Phase 2a, proposer -> acceptor: accept `value` in `slot` under `ballot`."""

    src: str
    dst: str
    ballot: Ballot
    slot: int
    value: Value


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    """Phase 2b, acceptor -> proposer and learners. Sent only after the vote is durable."""

    src: str
    dst: str
    ballot: Ballot
    slot: int
    value: Value


@dataclass(frozen=True, slots=True, kw_only=True)
class Nack:
    """Acceptor -> proposer: `ballot` was refused because `promised` is higher.

    Not in the paper, which lets acceptors ignore such requests; the
    optimisation it suggests in section 2.3 ("inform the proposer") so the
    proposer can move past `promised` at once.

    Also the answer to a Prepare or Accept below the acceptor's compaction
    point `compacted`, whatever the ballot: those slots are decided and
    stored by every learner, and their votes may be gone.
    """

    src: str
    dst: str
    ballot: Ballot
    promised: Ballot
    compacted: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Decide:
    """Proposer -> learner (or proposer): `value` is chosen in `slot`."""

    src: str
    dst: str
    slot: int
    value: Value


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    """Leader -> proposers and learners: I lead under `ballot`.

    `highest_slot` is the highest slot the leader proposed or saw decided
    (-1 for none); it lets a learner notice that it is missing the *last*
    slots, which a learner alone cannot tell. `decided_up_to` is the
    leader's highest slot with no gap below it (-1 for none).
    """

    src: str
    dst: str
    ballot: Ballot
    highest_slot: int
    decided_up_to: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """Learner -> proposer: I am missing `slot`; decide it again or tell me."""

    src: str
    dst: str
    slot: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    """Learner -> acceptors and other learners: slots up to `upto` are durable here.

    Sent only after the decisions it covers are on this learner's disk.
    Acceptors compact below the lowest `upto` of all learners; learners
    fetch missing slots from a peer that has stored them.

    To proposers and learners it also carries the sender's configuration
    `history` (fed at least up to `upto`): how a proposer that never saw
    some decisions, or a learner whose log restarted above a change's
    slot, learns the configurations (see configs.py). None to acceptors.
    """

    src: str
    dst: str
    upto: int
    history: History | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Fetch:
    """Learner -> learner: send me the decided log from `first_slot` (state transfer)."""

    src: str
    dst: str
    first_slot: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """Learner -> learner: a piece of the decided log, as Raft's InstallSnapshot.

    `decisions` are consecutive slots from `first_slot`, in answer to a
    Fetch from `asked`; `first_slot` is above `asked` only when the sender
    no longer retains `asked` (the receiver's log then starts at
    `first_slot`). `first_slots` maps every request id in `decisions`
    that the sender's request index holds to the slot where it was first
    decided; a request id missing from it was refused there as expired.
    The receiver takes these outcomes as they are, so it applies exactly
    what its peer applied. Empty `decisions`: the sender has nothing from
    `first_slot` on. `history` is the sender's configuration history, fed
    past the last slot of `decisions`: the receiver's log may restart
    above the slot of a change it must still know.
    """

    src: str
    dst: str
    asked: int
    first_slot: int
    decisions: tuple[tuple[int, Value], ...]
    first_slots: tuple[tuple[str, int], ...]
    history: History | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientRequest:
    """Client -> proposer (or proposer -> leader, forwarded): decide `command`."""

    src: str
    dst: str
    command: Command


Message = Union[
    Prepare, Promise, Accept, Accepted, Nack, Decide, Heartbeat, Retry, Stored, Fetch, Chunk,
    ClientRequest
]

#: Every message class, for codecs and exhaustive tests.
MESSAGE_TYPES: tuple[type, ...] = (
    Prepare,
    Promise,
    Accept,
    Accepted,
    Nack,
    Decide,
    Heartbeat,
    Retry,
    Stored,
    Fetch,
    Chunk,
    ClientRequest,
)
