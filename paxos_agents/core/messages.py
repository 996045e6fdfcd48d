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
    """

    src: str
    dst: str
    ballot: Ballot
    first_slot: int
    votes: tuple[Vote, ...]


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
    """

    src: str
    dst: str
    ballot: Ballot
    promised: Ballot


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
class ClientRequest:
    """Client -> proposer (or proposer -> leader, forwarded): decide `command`."""

    src: str
    dst: str
    command: Command


Message = Union[
    Prepare, Promise, Accept, Accepted, Nack, Decide, Heartbeat, Retry, ClientRequest
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
    ClientRequest,
)
