"""Errors that paxosctl reports to the operator.

Every error the CLI expects to show is a `PaxosctlError`: it carries a
one-line `message`, an optional `hint` (what to do about it) and the process
`exit_code` the CLI should end with. Anything else escaping to the CLI is a
bug, not an operator mistake.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # paxosctl.supervisor.control is not imported at run time: the CLI starts fast
    from .faults import Fault


class PaxosctlError(Exception):
    """Base of every error paxosctl reports to the operator.

    `message` is what went wrong, on one line; `hint` is an optional next step
    ("run `paxosctl up` first"). `exit_code` is a class attribute so callers
    map an error to a status without a lookup table.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ManifestError(PaxosctlError):
    """The manifest (or other operator input) is invalid, or the machine
    cannot run it: file missing, TOML syntax, unknown key, wrong type, bad
    duration, a role missing, the metrics port taken, state_dir unwritable."""

    exit_code = 2


class UsageError(PaxosctlError):
    """The command line itself is wrong: a bad option combination, an agent
    name that is not in the manifest, a malformed argument."""

    exit_code = 2


class NotRunning(PaxosctlError):
    """A command needs a running supervisor (status, stop, propose...) but
    none is running for this manifest."""

    exit_code = 1


class AlreadyRunning(PaxosctlError):
    """`up` was asked to start a cluster whose supervisor is already running
    (its state_dir holds a live supervisor) with another manifest, or lost
    the race to start it."""

    exit_code = 1


class ForeignStateDir(PaxosctlError):
    """The manifest's state_dir belongs to another cluster (another name),
    or its identity file cannot be trusted. Refused by every command, so
    that none acts on a cluster the operator did not name."""

    exit_code = 1


class OutcomeUnknown(PaxosctlError):
    """A request left, and the client cannot know what became of it: the
    connection was lost after it was sent, no answer came in time, or the
    cluster stopped first. A proposal may still be decided: retrying it
    with the same `request_id` is safe (never decided twice), a retry
    without it may decide the value twice. Exit code 124 matches
    timeout(1), so scripts can tell "unknown" from "failed"."""

    exit_code = 124

    def __init__(self, message: str, *, hint: str | None = None,
                 request_id: str | None = None) -> None:
        super().__init__(message, hint=hint)
        #: The proposal's request id (None for requests other than propose).
        self.request_id = request_id


class ConnectionLost(OutcomeUnknown):
    """The connection closed before the answer came: the request may have been done."""


class ProposalTimeout(OutcomeUnknown):
    """A proposed value was not decided within the allowed time (the
    supervisor's or the client's own `timeout`): it may still be."""


class Interrupted(OutcomeUnknown):
    """The operator interrupted (Ctrl-C) a command waiting for an answer:
    what it asked for may still happen. Exit code 130, as a shell gives
    a command ended by SIGINT."""

    exit_code = 130


class RequestIdConflict(PaxosctlError):
    """A request id was already decided (or is being proposed) with another
    value: the new value is refused, never decided under that id."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None,
                 request_id: str | None = None, slot: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.request_id = request_id
        #: Where the request id was first decided (None: still in flight).
        self.slot = slot


class NotHealthy(PaxosctlError):
    """A health check found the cluster unhealthy: an agent is not running,
    or too few acceptors are up to form a majority."""

    exit_code = 3


class Expired(PaxosctlError):
    """Learners refused the request: it was issued before the log they retain
    (`[log] retain`), so whether it was decided then cannot be checked; it
    was not applied now. Look for it with `paxosctl decided`."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None,
                 request_id: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.request_id = request_id


#: The exit code of each fault (`paxosctl.supervisor.control.Fault`, by its value) a
#: reply may name; any other exits 1.
EXIT_CODES: Mapping[str, int] = {
    "bad_request": 2,
    "unknown_op": 2,
    "too_large": 2,
    "request_id_conflict": 2,
    "timeout": 124,  # done or not, nobody knows yet
    "stopped": 124,
}


class RequestFailed(PaxosctlError):
    """The supervisor (or a learner, for `decided`) refused or could not
    complete a request. `error` is the fault's name as the reply gave it,
    `fault` the `paxosctl.supervisor.control.Fault` it names (None for one this client
    does not know), `reply` the whole error reply; `exit_code` follows the
    fault: 2 for bad input, 124 when the outcome is unknown, else 1."""

    def __init__(self, reply: Mapping[str, Any]) -> None:
        error = reply.get("error")
        super().__init__(str(reply.get("message") or error or "request failed"))
        #: The fault's name as the reply gave it.
        self.error: str | None = error if isinstance(error, str) else None
        self.reply: dict[str, Any] = dict(reply)
        self.exit_code = EXIT_CODES.get(self.error or "", 1)

    @property
    def fault(self) -> "Fault | None":
        """The fault named by the reply, or None if this client does not know it."""
        from .faults import Fault

        try:
            return Fault(self.error) if self.error is not None else None
        except ValueError:
            return None
