"""What a node reads back from its own durable state (etcd/raft's `Storage`).

A node keeps in memory only what it needs on every step; the rest stays
on disk and is read through this interface when it is needed, so a node's
memory and start-up do not grow with the age of the cluster:

- an acceptor reads its votes when it answers a Prepare (rare: elections);
- a learner looks up request ids its filter cannot rule out (deduplication;
  the filter is loaded at start from the one it saved, plus the keys of
  the slots after it, or else filled from the whole index's keys),
  and reads its applied log to serve a peer's state transfer.

Reads see only what is durable: the runtime has made every earlier
`Ready.persist` durable before it steps the node again, so the node merges
what it produced since its last `ready()` itself. The core stays free of
I/O: it calls these methods and never knows whether a `Record` in memory
(the simulator, tests) or a SQLite file (`SqliteStorage`) answers.
"""

from __future__ import annotations

from typing import Iterable, Protocol

from .messages import Vote
from .ready import LogPiece


class DurableLog(Protocol):
    """Read-only access to a node's persisted votes, decisions and request index."""

    def votes_from(self, slot: int) -> list[Vote]:
        """Every persisted vote in slots >= `slot`, in slot order."""
        ...

    def first_slots(self, request_ids: Iterable[str]) -> dict[str, int]:
        """For each of `request_ids` in the request index, the slot where it was first decided."""
        ...

    def request_keys(self) -> Iterable[tuple[int, int]]:
        """(`requests.request_key(id)`, first slot) of every entry of the
        request index, in no set order (read once, when a learner starts: see
        `IdFilter`)."""
        ...

    def saved_id_filter(self) -> tuple[int, bytes] | None:
        """The last `Persist.id_filter` saved (slot it covers, blob), None if
        none (a new store, or one migrated from before schema 7)."""
        ...

    def request_keys_from(self, slot: int) -> Iterable[tuple[int, int]]:
        """(key, slot) of every request id in the retained decisions of
        slots >= `slot`: every index entry first decided there, and extras
        (ids decided again there, or refused as expired) that are harmless
        in a filter. An entry needs its decision to be confirmed
        (`first_slots`), so none that can be found is missed."""
        ...

    def read_log(self, first_slot: int, max_bytes: int) -> LogPiece:
        """Applied slots from max(`first_slot`, first retained slot), consecutive,
        about `max_bytes` of payload at most (at least one slot if there is one),
        with the request index entries of their commands."""
        ...
