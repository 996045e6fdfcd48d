"""Durable state for one node: promise, votes, decisions, round, configuration
history, a learner's saved id filter.

The runtime calls `save(persist)` and only after it returns sends the
messages that depend on it (`Ready.send_after_persist`); after a crash it
rebuilds the node from `load()`, which reads only what the node keeps in
memory (a few scalars and a learner's undecided tail), so start-up does
not grow with the log; the node reads votes, decisions and its request
index back through the store's `DurableLog` methods when it needs them.
An acceptor that forgot a promise or a vote could let two different
values be chosen, so a `Storage` must

- make a `save` durable before returning, all of it or none of it;
- fail loudly (`StorageError`) rather than lose or invent state; in
  particular never start empty over an existing file it cannot read.

Beside the node's `Record`, a store keeps the agent's own incarnation,
whether it was ever admitted to its cluster, and the newest incarnation it
welcomed from each peer (`Incarnations`; runtime/greeting.py and
admission.py use them).

`SqliteStorage` is the real one; `MemoryStorage` is for tests and the
simulator. One process owns a store at a time (the supervisor runs one
agent per node); nothing here locks out a second writer.

The package, one module a job:

- contract.py: the `Storage` and `Incarnations` protocols and `StorageError`;
- memory.py: `MemoryStorage`;
- sqlite.py: `SqliteStorage`, the open file's reads and its `save`;
- opening.py: opening a file (create it whole, refuse one that is not
  ours, migrate it, claim it for its cluster and member);
- schema.py: the file's format (marks, tables, version);
- migrations.py: older versions brought to this one;
- rows.py: values, the configuration history and meta fields as stored.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .contract import Incarnations, Storage, StorageError
    from .memory import MemoryStorage
    from .schema import APPLICATION_ID, SCHEMA_VERSION
    from .sqlite import FAULT_POINTS, SqliteStorage

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "FAULT_POINTS",
    "StorageError",
    "Storage",
    "Incarnations",
    "MemoryStorage",
    "SqliteStorage",
]

#: Where each public name lives, imported when first asked for: the CLI
#: reads `schema` (to recognise a store file) on every command and should
#: not pay for sqlite3 and the core's messages to do it.
_HOMES = {
    "Storage": "contract", "StorageError": "contract", "Incarnations": "contract", "MemoryStorage": "memory",
    "APPLICATION_ID": "schema", "SCHEMA_VERSION": "schema",
    "FAULT_POINTS": "sqlite", "SqliteStorage": "sqlite",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{home}", __name__), name)
