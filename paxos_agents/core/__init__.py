"""The Multi-Paxos protocol, pure: no clock, no randomness of its own, no I/O.

Import from here: `Node`, `Membership`, `Settings`, `Record`, `Ready`,
`Persist`, `Applied`, `Command`, `Ballot` and the messages.
"""

from .commands import NOOP, BatchError, Command, Value, is_noop
from .config import PLANTABLE, Membership, Settings
from .ids import ZERO_BALLOT, Ballot, NodeId, Slot
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
from .ready import EXPIRED, Applied, AppliedSlot, LogEntry, LogPiece, Persist, Ready, Record, log_entries
from .store import DurableLog

__all__ = [
    "NOOP", "BatchError", "Command", "Value", "is_noop", "PLANTABLE", "Membership", "Settings",
    "ZERO_BALLOT", "Ballot", "NodeId", "Slot", "LogEntry", "MESSAGE_TYPES", "Accept",
    "Accepted", "ClientRequest", "Decide", "Heartbeat", "Message", "Nack", "Prepare",
    "Promise", "Retry", "Vote", "Node", "Phase", "Applied", "AppliedSlot", "Persist", "Ready", "Record",
    "Stored", "Fetch", "Chunk", "EXPIRED", "LogPiece", "log_entries", "DurableLog",
]
