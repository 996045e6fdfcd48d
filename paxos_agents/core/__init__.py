"""The Multi-Paxos protocol, pure: no clock, no randomness of its own, no I/O.

Import from here: `Node`, `Membership`, `Settings`, `Record`, `Ready`,
`Persist`, `Applied`, `Command`, `Ballot` and the messages.

The names load on first use (PEP 562): a client that needs only
`commands` (paxosctl's CLI, to read a slot's batch) does not pay for
importing the whole protocol at start-up. Type checkers see the plain
imports below.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .commands import NOOP, BatchError, Command, Value, is_noop
    from .settings import PLANTABLE, Membership, Settings
    from .ids import ZERO_BALLOT, Ballot
    from .messages import (
        MESSAGE_TYPES,
        Accept,
        Accepted,
        Chunk,
        ClientRequest,
        Decide,
        Fetch,
        Heartbeat,
        Message,
        Nack,
        Prepare,
        Promise,
        Retry,
        Stored,
        Vote,
    )
    from .node import Node
    from .proposer import Phase
    from .status import ConfigStatus, NodeStatus
    from .ready import EXPIRED, Applied, AppliedSlot, LogEntry, LogPiece, Persist, Ready, Record, log_entries
    from .store import DurableLog

__all__ = [
    "NOOP", "BatchError", "Command", "Value", "is_noop", "PLANTABLE", "Membership", "Settings",
    "ZERO_BALLOT", "Ballot", "LogEntry", "MESSAGE_TYPES", "Accept",
    "Accepted", "ClientRequest", "Decide", "Heartbeat", "Message", "Nack", "Prepare",
    "Promise", "Retry", "Vote", "Node", "Phase", "Applied", "AppliedSlot", "Persist", "Ready", "Record",
    "Stored", "Fetch", "Chunk", "EXPIRED", "LogPiece", "log_entries", "DurableLog",
    "NodeStatus", "ConfigStatus",
]


#: Where each public name lives.
_HOMES = {
    **dict.fromkeys(("NOOP", "BatchError", "Command", "Value", "is_noop"), "commands"),
    **dict.fromkeys(("PLANTABLE", "Membership", "Settings"), "settings"),
    **dict.fromkeys(("ZERO_BALLOT", "Ballot"), "ids"),
    **dict.fromkeys(("MESSAGE_TYPES", "Accept", "Accepted", "Chunk", "ClientRequest", "Decide",
                     "Fetch", "Heartbeat", "Message", "Nack", "Prepare", "Promise", "Retry",
                     "Stored", "Vote"), "messages"),
    "Node": "node",
    "Phase": "proposer",
    **dict.fromkeys(("EXPIRED", "Applied", "AppliedSlot", "LogEntry", "LogPiece", "Persist",
                     "Ready", "Record", "log_entries"), "ready"),
    "DurableLog": "store",
    **dict.fromkeys(("NodeStatus", "ConfigStatus"), "status"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{home}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value
