"""A request id is decided with one value only: the supervisor's side, in-process.

No agent runs. The test plays the learners: `_on_applied(slot, request_id,
payload, first_slot)` is what an APPLIED frame reports (a learner reports
every command it applies, a re-decided one too, with the slot where its
request id was first decided), and `_on_reply` is a learner's answer to a
query. Clients are fake connections that keep what they are sent.

The rule: a proposal is acknowledged only if its value is the one its
request id was first decided with; any other value gets
`request_id_conflict` naming that slot, whether the supervisor finds it in
what it remembers, in a proposal in flight, or only where the commands
are applied (both values reached Paxos: a retry changed its value while
the first was in flight, across a supervisor restart).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import manifest_text, short_tmpdir

from paxos_agents.runtime import frames
from paxosctl.control import Request, error_reply
from paxosctl.manifest import load_manifest
from paxosctl.ownership import claim
from paxosctl.restart import AgentState
from paxosctl.supervisor import Supervisor


class FakeConnection:
    """A client: keeps every reply the supervisor queues for it."""

    peer = 0
    closed = False

    def __init__(self) -> None:
        self.replies: list[dict[str, Any]] = []

    def reply(self, obj: dict[str, Any]) -> None:
        self.replies.append(obj)

    def fail(self, reply_to: Any, fault: Any, message: str, /, **extra: Any) -> None:
        self.replies.append(error_reply(reply_to, fault, message, **extra))


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    """A supervisor that serves nothing, with its learners replaced by fakes
    whose frames land in `supervisor.to_learner`."""
    folder = short_tmpdir()
    (folder / "cluster.toml").write_text(manifest_text("roles"))
    manifest = load_manifest(folder / "cluster.toml")
    owner = claim(manifest)
    try:
        sup = Supervisor(manifest, owner)
        sup.to_learner = []  # type: ignore[attr-defined]
        for name in manifest.learners:
            sup.agents[name] = SimpleNamespace(  # type: ignore[assignment]
                name=name, state=AgentState.RUNNING, beat={"decided_up_to": 100},
                send=sup.to_learner.append)
        yield sup
    finally:
        owner.release()
        shutil.rmtree(folder, ignore_errors=True)


def propose(sup: Supervisor, value: str, request_id: str, *, rid: int = 1,
            client: FakeConnection | None = None) -> FakeConnection:
    client = client or FakeConnection()
    sup._dispatch(client, Request(rid, "propose", {"value": value, "request_id": request_id,
                                                   "timeout": 30}))
    return client


def acknowledged(client: FakeConnection, slot: int, value: str) -> bool:
    [reply] = client.replies
    return reply["ok"] is True and (reply["slot"], reply["value"]) == (slot, value)


def refused(client: FakeConnection, slot: int | None) -> bool:
    [reply] = client.replies
    assert reply["ok"] is False and reply["error"] == "request_id_conflict", reply
    assert reply.get("slot") == slot, reply
    if slot is not None:
        assert f"slot {slot}" in reply["message"], reply
    return True


# ------------------------------------------------- what the supervisor remembers


def test_a_retry_with_the_same_value_gets_the_first_slot(supervisor: Supervisor) -> None:
    first = propose(supervisor, "x", "r")
    assert first.replies == []
    supervisor._on_applied(3, "r", "x", 3)
    assert acknowledged(first, 3, "x")
    assert acknowledged(propose(supervisor, "x", "r"), 3, "x")


def test_a_remembered_request_id_with_another_value_is_refused(supervisor: Supervisor) -> None:
    propose(supervisor, "x", "r")
    supervisor._on_applied(3, "r", "x", 3)
    assert refused(propose(supervisor, "y", "r"), 3)
    assert "r" not in supervisor.proposals  # nothing went to Paxos


# ----------------------------------------------------------- a proposal in flight


def test_an_id_in_flight_with_another_value_is_refused(supervisor: Supervisor) -> None:
    first = propose(supervisor, "x", "r")
    assert refused(propose(supervisor, "y", "r"), None)
    assert supervisor.proposals["r"].value == "x"
    supervisor._on_applied(4, "r", "x", 4)
    assert acknowledged(first, 4, "x")


def test_the_same_value_in_flight_twice_waits_for_one_decision(supervisor: Supervisor) -> None:
    first, second = propose(supervisor, "x", "r"), propose(supervisor, "x", "r")
    supervisor._on_applied(4, "r", "x", 4)
    assert acknowledged(first, 4, "x") and acknowledged(second, 4, "x")


# ------------------------------------------------ where the commands are applied


def test_both_values_reached_paxos_the_later_one_is_refused(supervisor: Supervisor) -> None:
    """"x" under r was proposed by an earlier supervisor (killed before it
    was decided); this one only knows the retry that changed the value."""
    retry = propose(supervisor, "y", "r")
    supervisor._on_applied(5, "r", "x", 5)   # "x" decided first
    assert refused(retry, 5)
    supervisor._on_applied(6, "r", "y", 5)   # "y" decided too: applied as nothing
    assert len(retry.replies) == 1


@pytest.mark.parametrize(("first_value", "ok"), [("x", False), ("y", True)],
                         ids=["first-value-differs", "first-value-same"])
def test_a_duplicate_of_an_id_decided_before_this_supervisor_is_checked_on_the_learners(
        supervisor: Supervisor, first_value: str, ok: bool) -> None:
    """A duplicate report names the first slot but carries the duplicate's
    value: the first value is read back from a learner before answering."""
    retry = propose(supervisor, "y", "r")
    supervisor._on_applied(9, "r", "y", 5)   # re-decided at 9; first decided at 5, before us
    assert retry.replies == []
    [frame] = supervisor.to_learner
    assert frame[:1] == frames.QUERY
    query = frames.json_body(frame)
    assert (query["op"], query["from"]) == ("decided", 5)
    supervisor._on_reply({"id": query["id"], "decided_up_to": 9, "log_start": 0, "entries": [
        {"slot": 5, "request_id": "other", "value": "y", "noop": False},
        {"slot": 5, "request_id": "r", "value": first_value, "noop": False}]})
    if ok:
        assert acknowledged(retry, 5, "y")
    else:
        assert refused(retry, 5)
    # Remembered now: the next retry is answered at once.
    again = propose(supervisor, "y", "r")
    assert acknowledged(again, 5, "y") if ok else refused(again, 5)


def test_a_first_slot_no_longer_retained_is_not_acknowledged(supervisor: Supervisor) -> None:
    retry = propose(supervisor, "y", "r")
    supervisor._on_applied(9, "r", "y", 5)
    query = frames.json_body(supervisor.to_learner[0])
    supervisor._on_reply({"id": query["id"], "error": "slot 5 is no longer retained",
                          "code": "not_retained", "log_start": 7})
    [reply] = retry.replies
    assert reply["ok"] is False and reply["error"] == "expired" and "slot 5" in reply["message"]
