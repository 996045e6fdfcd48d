"""What every store promises (`Storage`), and how it fails (`StorageError`).

The contract itself is in the package's docstring (`paxos_agents.runtime.storage`).
"""

from __future__ import annotations

from typing import Iterable, Protocol, runtime_checkable

from paxos_agents.core.messages import Vote
from paxos_agents.core.ready import LogPiece, Persist, Record


class StorageError(Exception):
    """The store cannot be opened, read or written. The message is one line
    naming the file. An agent that gets this from `save` must stop: it may
    not send what depended on the save."""


@runtime_checkable
class Storage(Protocol):
    """Where a node's `Record` lives.

    - `load()` returns everything committed so far (a fresh `Record` for a
      new store); the caller owns the returned object.
    - `save(persist)` durably merges `persist` (as `Record.apply` would),
      atomically, before returning; an empty `Persist` is a no-op. Raises
      `StorageError` on failure, after which the store refuses further use.
      `persist.configs` (a JSON-able list, else TypeError or ValueError
      before anything is written) replaces the stored history; `load()`
      returns it as JSON gives it back (lists), None if none was saved.
    - `write(persist)` merges `persist` as `save` does but may put off making
      it durable until `commit()` (or the next `save`); the store's own
      reads see it at once. Group commit: nothing that depends on a write
      may leave the process before that `commit` returns. Failures as in
      `save`.
    - `close()` releases the store; idempotent.
    - `persist_seconds` is how long the last non-empty `save` took (or the
      last `commit`, with the `write`s it made durable).
    - the `DurableLog` reads (`votes_from`, `first_slots`, `request_keys`,
      `request_keys_from`, `saved_id_filter`, `read_log`) see every
      committed `save`; `persist.id_filter` is kept as it is, replacing the
      one before, and written atomically with the rest of its `Persist`; `log_start` and `applied` are a learner's
      first retained and highest applied slots.
    """

    persist_seconds: float
    log_start: int
    applied: int

    def load(self) -> Record: ...

    def save(self, persist: Persist) -> None: ...

    def write(self, persist: Persist) -> None: ...

    def commit(self) -> None: ...

    def close(self) -> None: ...

    def votes_from(self, slot: int) -> list[Vote]: ...

    def first_slots(self, request_ids) -> dict[str, int]: ...

    def request_keys(self) -> Iterable[tuple[int, int]]: ...

    def request_keys_from(self, slot: int) -> Iterable[tuple[int, int]]: ...

    def saved_id_filter(self) -> tuple[int, bytes] | None: ...

    def read_log(self, first_slot: int, max_bytes: int) -> LogPiece: ...


class Incarnations(Protocol):
    """An agent's incarnations, kept in its store (schema 5).

    - `incarnation`: how often the agent was started on this store;
      `start_incarnation()` counts one more and commits it (fsync) before
      returning: the agent calls it before it listens or dials.
    - `admitted`: the store has run in its cluster; a new one is not until
      `admit(n)` (its peers admitted it: runtime/admission.py), which also
      raises the incarnation to `n` if it is lower.
    - `welcomed()`: per member name, the newest incarnation this agent
      welcomed; `remember_welcome(name, n)` commits a newer one.
    Every write is its own small transaction; a failure is `StorageError`.
    """

    incarnation: int
    admitted: bool

    def start_incarnation(self) -> int: ...

    def admit(self, incarnation: int) -> None: ...

    def welcomed(self) -> dict[str, int]: ...

    def remember_welcome(self, name: str, incarnation: int) -> None: ...


class MembersStore(Protocol):
    """The membership record an agent runs (runtime/members.py), in its store.

    - `stored_members()`: the latest record saved, as the JSON object it was
      saved as, or None (none yet: the manifest's membership applies);
    - `save_members(record)`: keep `record`, committed (fsync) before it
      returns: the agent answers a `members` frame only after this.
    A meta key ("members") in SqliteStorage: no schema version of its own.
    """

    def stored_members(self) -> dict | None: ...

    def save_members(self, record: dict) -> None: ...



def why(exc: BaseException) -> str:
    """A one-line reason for `exc`, for a `StorageError`'s message."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text or type(exc).__name__
