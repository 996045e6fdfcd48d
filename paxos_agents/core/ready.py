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
from typing import Iterable

from .commands import Command, Value
from .ids import ZERO_BALLOT, Ballot
from .messages import Message, Vote
from .requestkeys import request_key


@dataclass(frozen=True, slots=True)
class Persist:
    """The durable changes of one `Ready`; empty fields mean no change.

    - `promised`: the acceptor's new promise.
    - `votes`: the acceptor's new accepted (ballot, value) per slot.
    - `compacted`: the acceptor's new compaction point; every vote below it
      is deleted in the same transaction (see `Acceptor.on_stored`).
    - `decisions`: the learner's newly decided slots.
    - `applied`: the learner's new highest applied slot (the applied prefix).
    - `requests`: (request id, slot) for each command first applied in this
      `Ready`: the learner's request index, written with `applied`.
    - `request_keys`: `requests` again, packed per slot: (slot, the ids'
      `request_key`s, their positions in the slot's value, None for 0, 1,
      ... in order: the usual case). Computed once by the learner and
      written by `SqliteStorage` one statement per slot (it derives them
      if they do not cover `requests`); a store keyed by full id ignores
      them.
    - `log_start`: the learner's new first retained slot; decisions and
      request index entries below it are deleted (retention, or a state
      transfer that starts the log above what it had).
    - `round`: the proposer's highest ballot round used so far. A restarted
      proposer starts above it, so it never reuses a ballot.
    - `floor`: a slot up to which the proposer knows every slot is decided.
      Only an optimisation (a restarted proposer runs phase 1 from above it
      instead of from slot 0); losing it is safe.
    - `configs`: the node's configuration history (`History.to_json()`, a
      JSON-able list), replacing the one stored before. Written when a
      change is decided or the node learns one from a peer (rarely), in
      the same transaction as the learner's `applied`: a learner's stored
      history holds every change decided up to its applied prefix. Its
      `known` only grows (`Outbox.note_history`). Stored as it is, e.g.
      one JSON text; never interpreted by storage.
    - `id_filter`: (slot, blob): the learner's id filter (`IdFilter.to_bytes`)
      holding the key of every request id first applied at that slot or
      below, written with the `applied` and `requests` that make it true
      (rarely: see requests.py); it replaces the one stored before. Stored
      as it is; a store never interprets it.
    """

    promised: Ballot | None = None
    votes: tuple[Vote, ...] = ()
    compacted: int | None = None
    decisions: tuple[tuple[int, Value], ...] = ()
    applied: int | None = None
    requests: tuple[tuple[str, int], ...] = ()
    request_keys: tuple[tuple[int, list[int], list[int] | None], ...] = ()
    log_start: int | None = None
    round: int | None = None
    floor: int | None = None
    configs: list | None = None
    id_filter: tuple[int, bytes] | None = None

    def __bool__(self) -> bool:
        return bool(
            self.promised is not None or self.votes or self.compacted is not None
            or self.decisions or self.applied is not None or self.requests
            or self.log_start is not None or self.round is not None or self.floor is not None
            or self.configs is not None or self.id_filter is not None
        )


@dataclass(slots=True)
class Record:
    """What a node persisted: the state it is rebuilt from after a crash.

    As returned by a store's `load()` it holds what a node needs in memory
    to start: the scalars, and the decisions above the applied prefix (a
    learner's out-of-order tail). A `Record` used as the store itself (the
    simulator's disk, `MemoryStorage`) holds everything, and answers the
    `DurableLog` reads a node makes (see store.py).
    """

    promised: Ballot = ZERO_BALLOT
    votes: dict[int, Vote] = field(default_factory=dict)
    decisions: dict[int, Value] = field(default_factory=dict)
    round: int = 0
    floor: int = -1
    compacted: int = 0
    applied: int = -1
    log_start: int = 0
    #: request id -> slot where it was first decided (the learner's index).
    requests: dict[str, int] = field(default_factory=dict)
    #: The configuration history (`History.to_json()`); None: none stored yet
    #: (the node starts from epoch 0 = its membership's acceptors). A runtime
    #: starting a node with an empty store for a cluster that was already
    #: reconfigured must put the cluster's history here.
    configs: list | None = None
    #: The learner's last saved id filter (`Persist.id_filter`), None if none.
    id_filter: tuple[int, bytes] | None = None

    def apply(self, persist: Persist) -> None:
        """Merge one `Persist` into this record (what storage does on commit)."""
        if persist.promised is not None:
            self.promised = persist.promised
        for vote in persist.votes:
            self.votes[vote.slot] = vote
        if persist.compacted is not None and persist.compacted > self.compacted:
            self.compacted = persist.compacted
            for slot in [s for s in self.votes if s < self.compacted]:
                del self.votes[slot]
        for slot, value in persist.decisions:
            self.decisions[slot] = value
        for request_id, slot in persist.requests:
            self.requests.setdefault(request_id, slot)
        if persist.applied is not None:
            self.applied = persist.applied
        if persist.log_start is not None and persist.log_start > self.log_start:
            self.log_start = persist.log_start
            for slot in [s for s in self.decisions if s < self.log_start]:
                del self.decisions[slot]
            for request_id in [r for r, s in self.requests.items() if s < self.log_start]:
                del self.requests[request_id]
        if persist.round is not None:
            self.round = persist.round
        if persist.floor is not None:
            self.floor = persist.floor
        if persist.configs is not None:
            self.configs = persist.configs
        if persist.id_filter is not None:
            self.id_filter = persist.id_filter

    def copy(self) -> "Record":
        return Record(self.promised, dict(self.votes), dict(self.decisions), self.round,
                      self.floor, self.compacted, self.applied, self.log_start,
                      dict(self.requests), self.configs, self.id_filter)

    # --- DurableLog (store.py): reads of the record as a node's store ---------

    def votes_from(self, slot: int) -> list[Vote]:
        return [v for s, v in sorted(self.votes.items()) if s >= slot]

    def request_keys(self) -> list[tuple[int, int]]:
        return [(request_key(r), s) for r, s in self.requests.items()]

    def saved_id_filter(self) -> tuple[int, bytes] | None:
        return self.id_filter

    def request_keys_from(self, slot: int) -> list[tuple[int, int]]:
        # As SqliteStorage: every id of the retained decisions from `slot` on.
        return [(request_key(rid), s) for s, value in sorted(self.decisions.items())
                if s >= slot for rid in value.request_ids()]

    def first_slots(self, request_ids: Iterable[str]) -> dict[str, int]:
        requests = self.requests
        return {r: requests[r] for r in request_ids if r in requests}

    def read_log(self, first_slot: int, max_bytes: int) -> LogPiece:
        start = max(first_slot, self.log_start)
        decisions: list[tuple[int, Value]] = []
        size = 0
        slot = start
        while slot <= self.applied and slot in self.decisions and (not decisions or size < max_bytes):
            value = self.decisions[slot]
            decisions.append((slot, value))
            size += 16 + len(value.data)  # as SqliteStorage counts: no decoding
            slot += 1
        rids = {c.request_id for _, value in decisions for c in value}
        return LogPiece(start, tuple(decisions), self.first_slots(rids))


@dataclass(frozen=True, slots=True)
class LogPiece:
    """Consecutive applied slots from `start`, with the request index for their commands."""

    start: int
    decisions: tuple[tuple[int, Value], ...]
    first_slots: dict[str, int]


@dataclass(frozen=True, slots=True)
class Applied:
    """A learner applied `command` from `slot`.

    `first_slot` is where this request id was first decided; it differs
    from `slot` when the command was decided again (a client retry or a
    re-proposal after a leader change) and was therefore not applied twice.
    It is `EXPIRED` (-1) when the command was refused because it was issued
    before the retained log begins (see `Learner`): it was not applied, and
    whether it was applied earlier can no longer be told.
    """

    slot: int
    command: Command
    first_slot: int

    @property
    def duplicate(self) -> bool:
        return self.first_slot != self.slot and self.first_slot != EXPIRED

    @property
    def expired(self) -> bool:
        return self.first_slot == EXPIRED


#: `Applied.first_slot` of a command refused as expired.
EXPIRED = -1


@dataclass(frozen=True, slots=True)
class AppliedSlot:
    """A learner applied `slot`, whose value is `value`.

    `firsts[i]` says what became of the i-th command of `value`: equal to
    `slot`, it was applied here; a lower slot, its request id was first
    decided there (a retry or re-proposal: not applied twice); `EXPIRED`,
    refused (see `Learner`). One report per slot, so applying a batch
    costs no object per command; `commands()` gives the per-command view.
    """

    slot: int
    value: Value
    firsts: tuple[int, ...]

    def commands(self) -> list[Applied]:
        """One `Applied` per command, in order (checkers and tests)."""
        return [Applied(self.slot, command, first)
                for command, first in zip(self.value.commands, self.firsts)]

    def log(self) -> list[LogEntry]:
        """The entries this slot added to the applied log (see `log_entries`)."""
        if not self.value:
            return [LogEntry(self.slot, None, None, True)]
        entries = []
        seen = set()
        for command, first in zip(self.value.commands, self.firsts):
            if first == self.slot and command.request_id not in seen:
                seen.add(command.request_id)
                entries.append(LogEntry(self.slot, command.payload, command.request_id, False))
        return entries


@dataclass(slots=True)
class Ready:
    """Everything a node produced since the last `ready()` call."""

    persist: Persist = field(default_factory=Persist)
    send_after_persist: list[Message] = field(default_factory=list)
    send: list[Message] = field(default_factory=list)
    applied: list[AppliedSlot] = field(default_factory=list)
    #: Entries a state transfer installed in the learner's applied log, for
    #: checkers and tests (what it applied itself is in `applied`: `AppliedSlot.log`).
    logged: list["LogEntry"] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.persist or self.send_after_persist or self.send or self.applied
                    or self.logged)


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry of the applied log: a command applied, or a no-op slot."""

    slot: int
    payload: bytes | None
    request_id: str | None
    noop: bool


def log_entries(decisions: Iterable[tuple[int, Value]], first_slots: dict[str, int]) -> list[LogEntry]:
    """The applied log of `decisions`: no-op slots, and each command in the
    slot where its request id was first decided (duplicates and expired
    commands are not in the log)."""
    entries = []
    for slot, value in decisions:
        if not value:
            entries.append(LogEntry(slot, None, None, True))
        seen = set()
        for command in value:
            rid = command.request_id
            if first_slots.get(rid) == slot and rid not in seen:
                seen.add(rid)
                entries.append(LogEntry(slot, command.payload, rid, False))
    return entries
