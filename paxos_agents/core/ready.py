"""What a node hands its runtime: durable changes, messages, applied commands.

This is the etcd/raft `Ready` pattern. The core never writes to disk or
sends; it returns a `Ready`, and the runtime must

1. make `persist` durable (fsync),
2. then send `send_after_persist` (Promise, Accepted, and anything that
   follows from a node's own vote),
3. and may send `send` and report `applied` at any time: a learner only
   applies a value that a majority of acceptors hold durably, so its own
   copy of the decision spares it re-learning, nothing more.

An acceptor records its intended response in stable storage before
sending it (Paxos Made Simple, section 2.5), hence `send_after_persist`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .commands import Command, Value
from .ids import ZERO_BALLOT, Ballot
from .messages import Message, Vote


@dataclass(frozen=True, slots=True)
class Persist:
    """The durable changes of one `Ready`; empty fields mean no change.

    - `promised`: the acceptor's new promise.
    - `votes`: the acceptor's new accepted (ballot, value) per slot.
    - `decisions`: the learner's newly decided slots.
    - `round`: the proposer's highest ballot round used so far. A restarted
      proposer starts above it, so it never reuses a ballot.
    - `floor`: a slot up to which the proposer knows every slot is decided.
      Only an optimisation (a restarted proposer runs phase 1 from above it
      instead of from slot 0); losing it is safe.
    """

    promised: Ballot | None = None
    votes: tuple[Vote, ...] = ()
    decisions: tuple[tuple[int, Value], ...] = ()
    round: int | None = None
    floor: int | None = None

    def __bool__(self) -> bool:
        return bool(
            self.promised is not None or self.votes or self.decisions or self.round is not None
            or self.floor is not None
        )


@dataclass(slots=True)
class Record:
    """Everything a node persisted: the state it is rebuilt from after a crash."""

    promised: Ballot = ZERO_BALLOT
    votes: dict[int, Vote] = field(default_factory=dict)
    decisions: dict[int, Value] = field(default_factory=dict)
    round: int = 0
    floor: int = -1

    def apply(self, persist: Persist) -> None:
        """Merge one `Persist` into this record (what storage does on commit)."""
        if persist.promised is not None:
            self.promised = persist.promised
        for vote in persist.votes:
            self.votes[vote.slot] = vote
        for slot, value in persist.decisions:
            self.decisions[slot] = value
        if persist.round is not None:
            self.round = persist.round
        if persist.floor is not None:
            self.floor = persist.floor

    def copy(self) -> "Record":
        return Record(self.promised, dict(self.votes), dict(self.decisions), self.round,
                      self.floor)


@dataclass(frozen=True, slots=True)
class Applied:
    """A learner applied `command` from `slot`.

    `first_slot` is where this request id was first decided; it differs
    from `slot` when the command was decided again (a client retry or a
    re-proposal after a leader change) and was therefore not applied twice.
    """

    slot: int
    command: Command
    first_slot: int

    @property
    def duplicate(self) -> bool:
        return self.first_slot != self.slot


@dataclass(slots=True)
class Ready:
    """Everything a node produced since the last `ready()` call."""

    persist: Persist = field(default_factory=Persist)
    send_after_persist: list[Message] = field(default_factory=list)
    send: list[Message] = field(default_factory=list)
    applied: list[Applied] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.persist or self.send_after_persist or self.send or self.applied)
