"""The one long operation the supervisor is answering later: its reply and deadline.

`apply`, `scale` and `replace` answer once what they started is in force.
Only one of them runs at a time (the others are refused meanwhile), so
the supervisor keeps one `Pending`: who to answer, and by when. Past the
deadline the caller gets a timeout fault saying what is still awaited;
the operation goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .control import ClientConnection, Fault


@dataclass(slots=True)
class Pending:
    """Answer `connection`'s request `request_id` once, before `deadline` or at it."""

    connection: ClientConnection
    request_id: Any
    deadline: float

    @classmethod
    def of(cls, reply_to: tuple[ClientConnection, Any] | None, timeout: float | None,
           now: float) -> Pending | None:
        """A pending answer to `reply_to` (None: nobody waits, e.g. --no-wait
        or SIGHUP), with no deadline when `timeout` is None."""
        if reply_to is None:
            return None
        connection, request_id = reply_to
        return cls(connection, request_id, now + timeout if timeout is not None else float("inf"))

    def late(self, now: float) -> bool:
        return now >= self.deadline

    def answer(self, body: dict[str, Any]) -> None:
        self.connection.reply({"id": self.request_id, "ok": True, **body})

    def fail(self, fault: Fault, message: str, **extra: Any) -> None:
        self.connection.fail(self.request_id, fault, message, **extra)
