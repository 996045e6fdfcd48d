"""Commands and the values that slots decide.

A *command* is what a client submits: an opaque text payload and the
request id that makes it idempotent, stamped with `issued`: a slot that
was already decided when the request id was first issued, so the command
cannot have been decided at or below it. Learners that keep only a window
of the log use the stamp to tell a retry they can still recognise from
one too old to check (see `Learner`, "expired"). The *value* of a slot is a batch of
commands (Multi-Paxos batches several commands per slot); the empty batch
is the no-op a new leader uses to fill a hole in the log.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Command:
    """One client command. `request_id` is unique per logical request.

    `issued` is -1 when unknown (then, with a bounded log, the command
    counts as issued at the start of the log). Retries of one request
    must carry the stamp of its first issue.
    """

    request_id: str
    payload: str
    issued: int = -1


#: The value of one slot: the commands it decides, in order.
Value = tuple[Command, ...]

#: The no-op value: decides the slot and applies nothing.
NOOP: Value = ()


def is_noop(value: Value) -> bool:
    """True for the hole-filling no-op."""
    return len(value) == 0
