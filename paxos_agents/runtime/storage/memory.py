"""`MemoryStorage`: a `Storage` in memory, for tests and the simulator."""

from __future__ import annotations

import time
from dataclasses import replace

from paxos_agents.core.messages import Vote
from paxos_agents.core.ready import LogPiece, Persist, Record

from .rows import configs_copy


class MemoryStorage:
    """A `Storage` in memory: durable only for the life of the object."""

    def __init__(self, record: Record | None = None, *, admitted: bool = True) -> None:
        self._record = record.copy() if record is not None else Record()
        self._record.configs = configs_copy(self._record.configs)
        self.persist_seconds = 0.0
        #: As SqliteStorage's (schema 5): admitted unless a test says otherwise.
        self.incarnation = 0
        self.admitted = admitted
        self._peers: dict[str, int] = {}
        self._members: dict | None = None

    def start_incarnation(self) -> int:
        self.incarnation += 1
        return self.incarnation

    def admit(self, incarnation: int) -> None:
        self.admitted, self.incarnation = True, max(self.incarnation, incarnation)

    def welcomed(self) -> dict[str, int]:
        return dict(self._peers)

    def remember_welcome(self, name: str, incarnation: int) -> None:
        self._peers[name] = incarnation

    def stored_members(self) -> dict | None:
        return None if self._members is None else dict(self._members)

    def save_members(self, record: dict) -> None:
        self._members = dict(record)

    def load(self) -> Record:
        record = self._record.copy()
        # As SqliteStorage: the caller owns the history it gets (a new list).
        record.configs = configs_copy(record.configs)
        return record

    def save(self, persist: Persist) -> None:
        if not persist:
            return
        start = time.perf_counter()
        if persist.configs is not None:
            # Stored as SqliteStorage stores it: its JSON form, not the caller's list.
            persist = replace(persist, configs=configs_copy(persist.configs))
        self._record.apply(persist)
        self.persist_seconds = time.perf_counter() - start

    def write(self, persist: Persist) -> None:
        """As `save`: memory has no commit to put off."""
        self.save(persist)

    def commit(self) -> None:
        pass

    def close(self) -> None:
        pass

    # DurableLog: the record in memory is the "disk".
    def votes_from(self, slot: int) -> list[Vote]:
        return self._record.votes_from(slot)

    def first_slots(self, request_ids) -> dict[str, int]:
        return self._record.first_slots(request_ids)

    def request_keys(self) -> list[tuple[int, int]]:
        return self._record.request_keys()

    def saved_id_filter(self) -> tuple[int, bytes] | None:
        return self._record.saved_id_filter()

    def request_keys_from(self, slot: int) -> list[tuple[int, int]]:
        return self._record.request_keys_from(slot)

    def read_log(self, first_slot: int, max_bytes: int) -> LogPiece:
        return self._record.read_log(first_slot, max_bytes)

    @property
    def log_start(self) -> int:
        return self._record.log_start

    @property
    def applied(self) -> int:
        return self._record.applied

