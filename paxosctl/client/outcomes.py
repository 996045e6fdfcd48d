"""How a proposal ends, in one place: a `Decision`, or the typed error it raises.

Every way a request of `paxosctl.client.datapath.DataClient` can end is built
here, so what a caller may catch (README "Python API") is read in one
file: the learner's answer (`answered`), a second call under an id in
flight with another value (`conflicting_call`), a command that cannot be
encoded (`refused`), its deadline (`timed_out`), and the client or the
cluster going away (`closed`, `cluster_gone`). `paxosctl.client.tracker` decides
*when* a request ends; this module only says *what* it ends with.
"""

from __future__ import annotations

import time
from itertools import repeat
from typing import Protocol, Sequence

from paxos_agents.core.commands import Value
from paxos_agents.runtime import clientwire as wire

from ..errors import (ConnectionLost, Expired, NotRunning, PaxosctlError, ProposalTimeout,
                     RequestIdConflict, UsageError)
from .results import Decision, retry_hint

#: Makes a NamedTuple result from a tuple of its fields, in C.
_new_tuple = tuple.__new__

#: What a request ends with: the position it was first decided at, or the error raised.
Result = Decision | PaxosctlError


def answered(outcome: wire.Outcome, payload: bytes, issued: int | None, started: float,
             retain_slots: int, decided: bytes | None = None) -> Result:
    """What a learner's `outcome` for a request of value `payload` means.

    `decided`: the value decided under the request id, when the learner
    sent it (a SLOT frame); else `outcome.digest` stands for it. A request
    id is decided with one value only, and the outcome names its *first*
    position: the same value there is this request's `Decision`, another
    value is a `RequestIdConflict` (this value was not decided under it).
    `issued` and `retain_slots` explain an EXPIRED refusal; `started`
    (monotonic) times the decision.
    """
    rid = outcome.request_id
    if outcome.status == wire.DECIDED:
        same = (decided == payload if decided is not None
                else outcome.digest == wire.digest(payload))
        if same:
            return Decision(outcome.slot, outcome.index, payload, rid,
                            time.monotonic() - started)
        return RequestIdConflict(
            f"request_id_conflict: request id {rid} was decided at position "
            f"{outcome.slot}.{outcome.index} with another value; this value was not "
            "decided under it: use a new request id", request_id=rid, slot=outcome.slot,
            hint=f"see it with: paxosctl decided --from {outcome.slot}")
    if outcome.status == wire.CONFLICT:
        return conflicting_call(rid)
    if outcome.status == wire.TOO_LARGE:
        return UsageError(f"value is {len(payload)} bytes; the limit is {outcome.slot} "
                          "(paxos.max_value_bytes)")
    if outcome.status == wire.EXPIRED:
        return Expired(
            f"request {rid} expired: it was issued (after slot {issued}) before the "
            f"{retain_slots} slots learners keep ([log] retain), so whether it was decided "
            "then cannot be checked; it was not applied now",
            hint="see paxosctl decided; propose it under a new request id if it is not there",
            request_id=rid)
    return Expired(
        f"request id {rid} was first decided at slot {outcome.slot}, which learners no "
        "longer keep, so its value cannot be compared with this one; this value was not "
        "decided under it", request_id=rid,
        hint="see paxosctl decided; propose it under a new request id if it is not there")


class Asked(Protocol):
    """What `in_slot` reads of a request (`paxosctl.client.tracker.Request`)."""

    request_id: str
    payload: bytes
    issued: int | None
    started: float


def in_slot(slot: int, value: Value, indexes: Sequence[int], found: Sequence[Asked],
            skipped: dict[int, wire.Skipped], retain_slots: int) -> list[Result]:
    """What each request of `found`, at its index of `indexes` in slot
    `slot`'s `value` (a SLOT frame), ends with, in order: as `answered`
    says, for the slot at once. A command not `skipped` was applied there,
    so its request was first decided there: a `Decision` if the value
    decided is its own (the usual case, built here without an `Outcome`:
    this runs per command), else `answered`'s verdict; a skipped one was
    first decided elsewhere (or refused), as its `Skipped` says."""
    now = time.monotonic()
    payload_at = value.payload
    payloads = [r.payload for r in found]
    if not skipped and list(map(payload_at, indexes)) == payloads:
        # The usual case, each its own value decided here: the Decisions in
        # C-level passes over the columns (`tuple.__new__` skips the
        # NamedTuple's Python `__new__`).
        return list(map(_new_tuple, repeat(Decision), zip(
            repeat(slot), indexes, payloads, [r.request_id for r in found],
            [now - r.started for r in found])))
    results: list[Result] = []
    append = results.append
    for index, request in zip(indexes, found):
        if not skipped or index not in skipped:
            payload = request.payload
            decided = payload_at(index)
            if decided == payload:
                append(Decision(slot, index, payload, request.request_id, now - request.started))
                continue
            append(answered(wire.Outcome(request.request_id, wire.DECIDED, slot, index, b""),
                            payload, request.issued, request.started, retain_slots, decided))
        else:
            s = skipped[index]
            append(answered(wire.Outcome(request.request_id, s.status, s.slot, s.index,
                                         s.digest), request.payload, request.issued,
                            request.started, retain_slots))
    return results


def conflicting_call(request_id: str) -> RequestIdConflict:
    """`request_id` is in flight (here, or at the proposer) with another value."""
    return RequestIdConflict(
        f"request_id_conflict: request id {request_id} is being proposed with another value "
        "(not decided yet); this value was not proposed under it: use a new request id",
        request_id=request_id)


def refused(request_id: str, error: Exception) -> UsageError:
    """The command could not be encoded: nothing of it was sent."""
    return UsageError(f"request {ascii(request_id)[:80]} cannot be sent: {error}")


def timed_out(request_id: str, issued: int | None) -> ProposalTimeout:
    """No answer by the deadline: the command may still be decided (exit 124)."""
    return ProposalTimeout(
        f"not decided in time, its outcome is unknown: request {request_id} may still be "
        "decided", hint=retry_hint(request_id, issued), request_id=request_id)


def closed(request_id: str, issued: int | None) -> ConnectionLost:
    """The client closed with the request unanswered."""
    return ConnectionLost(
        f"the client closed before it was answered: request {request_id} may still "
        "be decided", hint=retry_hint(request_id, issued), request_id=request_id)


def cluster_gone(request_id: str, issued: int | None, sent: bool,
                 cluster_file: str) -> PaxosctlError:
    """Every agent's connection was lost and none takes a new one. A request
    that left may still be decided (`ConnectionLost`); one that never left
    was not (`NotRunning`)."""
    if sent:
        return ConnectionLost(
            f"the cluster went away before it answered: request {request_id} may "
            "still be decided", hint=retry_hint(request_id, issued), request_id=request_id)
    return NotRunning(f"the cluster for {cluster_file} went away before "
                      f"request {request_id} was sent")
