"""Why a request to the supervisor failed: `Fault`, and `OpError` that carries one.

Shared by the control socket (which puts a fault in every error reply),
the operations and rooms that refuse requests (the membership plan among
them), and the client (which maps each fault to an exception and an exit
code). Its own module, free of sockets and files, so that pure rooms can
refuse without importing the server (`paxosctl.supervisor.control` re-exports both).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Fault(StrEnum):
    """Why a request failed: the `error` field of every error reply.

    The client maps each to an exception (and so to an exit code):
    the first four are bad input (exit 2), `timeout` and `stopped` leave
    the outcome unknown (exit 124), the others are errors (exit 1).
    """

    BAD_REQUEST = "bad_request"            # a field missing, of the wrong type, not UTF-8...
    UNKNOWN_OP = "unknown_op"
    TOO_LARGE = "too_large"                # a value over paxos.max_value_bytes
    REQUEST_ID_CONFLICT = "request_id_conflict"  # the request id is taken by another value
    TIMEOUT = "timeout"                    # not done in time; a proposal may still be decided
    STOPPED = "stopped"                    # the cluster stopped first; likewise
    EXPIRED = "expired"                    # issued before the log learners retain; not applied
    NOT_RETAINED = "not_retained"          # `decided --from` below the retained log
    NOT_RUNNING = "not_running"            # the agent asked for does not run
    UNAVAILABLE = "unavailable"            # no agent can answer (no learner running)
    AGENT_EXITED = "agent_exited"          # the agent asked exited before it answered
    AGENT_ERROR = "agent_error"            # an agent refused a query
    INTERNAL = "internal"                  # a bug in the supervisor; see its log


class OpError(Exception):
    """Raised by an operation's handler: refuse the request with `fault`.

    `extra` fields go into the reply beside the message.
    """

    def __init__(self, fault: Fault, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.fault = fault
        self.message = message
        self.extra = extra
