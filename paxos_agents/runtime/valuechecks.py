"""Values checked as they arrive: `ValueChecks`.

A learner applies the values it learns and a proposer re-proposes the
ones phase 1 reports (a replica's acceptor hands its votes to its own
learner too), so a value that is not a well-formed batch (core/commands.py)
must stop at the agent's door: only a misbehaving peer sends one, and
applying or re-proposing it would fail later, deep in the core. An
acceptor alone only stores and forwards values, undecoded: it checks
nothing.

Each acceptor's Accepted for one (slot, ballot) carries the same value,
so a learner decodes it once and compares the next copies by bytes (a
memcmp, not a parse). The values kept for that are bounded in number
and bytes (`CHECKED_VOTES`, `CHECKED_BYTES`): past the bound a copy is
decoded again, a cost, never a wrong answer.
"""

from __future__ import annotations

from typing import Any

from ..core.messages import Accepted
from .codec import values_of

#: (slot, ballot) of Accepted messages whose value was checked, kept at most,
#: and their values' bytes at most: the next acceptors' copies of a vote
#: arrive within the window of slots in flight (32 in the examples: 1 MiB
#: holds about 110 values of 9 KiB), and 4096 values of 9 KiB (60 commands
#: of 100 bytes) held a learner at 75 MiB (bench/long_life.py).
CHECKED_VOTES = 4096
CHECKED_BYTES = 1 << 20


class ValueChecks:
    """The check of one agent that reads values (a learner, a proposer, a replica)."""

    def __init__(self, learns: bool) -> None:
        """`learns`: the agent has a learner, the only role that reads an
        Accepted's value (a proposer counts the votes for the value it sent)."""
        self._learns = learns
        #: (slot, ballot) -> the value's bytes, of Accepted values checked.
        self.checked: dict[tuple[int, Any], bytes] = {}
        self._checked_bytes = 0  # of the values in `checked`

    def check(self, msg: Any) -> None:
        """Raise BatchError if a value in `msg` is not a well-formed batch."""
        if type(msg) is Accepted:
            if not self._learns:
                return
            key = (msg.slot, msg.ballot)
            data = msg.value.data
            checked = self.checked
            if checked.get(key) == data:
                return
            msg.value.request_ids()
            if len(checked) >= CHECKED_VOTES or self._checked_bytes >= CHECKED_BYTES:
                checked.clear()
                self._checked_bytes = 0
            checked[key] = data
            self._checked_bytes += len(data)
            return
        for value in values_of(msg):
            value.request_ids()  # decodes the batch's layout (kept for later use)
