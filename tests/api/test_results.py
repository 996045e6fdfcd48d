"""The typed results parse the supervisor's replies, and newer replies too.

A newer supervisor adds keys (issue 13 adds "note", "stopped", details
to "last_exit") or changes a type: an older client keeps working, and
what it does not know is kept in `extra`, never an error.
"""

from __future__ import annotations

import base64

import pytest

from paxosctl import (AgentStatus, ClusterStatus, DecidedCommand, DownResult, KillResult,
                      RequestFailed, RestartResult)
from paxosctl.supervisor.control import Fault
from paxosctl.client.decidedlog import LogCursor

ROW = {"name": "acceptor-1", "role": "acceptor", "state": "running", "pid": 4242,
       "restarts": 2, "uptime_s": 12.5, "decided_up_to": 7, "log_start": 0,
       "state_bytes": 4096, "last_exit": {"reason": "operator-kill", "code": -9}}
REPLY = {"id": 3, "ok": True, "cluster": "api", "metrics_url": "http://127.0.0.1:9464/metrics",
         "leader": "proposer-1", "ballot": [4, "proposer-1"], "decided_up_to": 7,
         "chaos": {}, "agents": [ROW]}


def test_status_reply_parses_into_typed_fields() -> None:
    status = ClusterStatus.from_wire(REPLY)
    assert (status.cluster, status.leader, status.ballot, status.decided_up_to) == (
        "api", "proposer-1", (4, "proposer-1"), 7)
    agent = status.agent("acceptor-1")
    assert agent == status.agents[0]
    assert (agent.pid, agent.restarts, agent.uptime_s, agent.state_bytes) == (4242, 2, 12.5, 4096)
    assert agent.last_exit == {"reason": "operator-kill", "code": -9}
    assert agent.running and status.healthy
    assert status.extra == {} and agent.extra == {}  # id and ok are the envelope, not extra
    with pytest.raises(KeyError):
        status.agent("nobody")


@pytest.mark.parametrize(("changes", "field", "value", "extra"), [
    ({"uptime": "3m"}, "state", "running", {"uptime": "3m"}),
    ({"state": "stopped", "stopped": True}, "state", "stopped", {"stopped": True}),
    ({"pid": "4242"}, "pid", None, {"pid": "4242"}),
    ({"restarts": True}, "restarts", 0, {"restarts": True}),
    ({"uptime_s": 3}, "uptime_s", 3.0, {}),
    ({"last_exit": {"reason": "crashed", "signal": "SEGV", "at": 1.5}}, "last_exit",
     {"reason": "crashed", "signal": "SEGV", "at": 1.5}, {}),
], ids=["new-key", "new-state-and-key", "pid-as-text", "bool-is-not-a-count",
        "int-where-float", "last-exit-grows"])
def test_agent_row_from_a_newer_supervisor_parses(changes, field, value, extra) -> None:
    agent = AgentStatus.from_wire({**ROW, **changes})
    assert getattr(agent, field) == value
    assert dict(agent.extra) == extra


def test_status_reply_with_unknown_keys_and_odd_ballot_parses() -> None:
    status = ClusterStatus.from_wire({**REPLY, "schema": 2, "ballot": "4.p1", "agents": [
        ROW, "not an object"]})
    assert status.ballot is None and status.extra == {"schema": 2, "ballot": "4.p1"}
    assert [a.name for a in status.agents] == ["acceptor-1"]
    assert not ClusterStatus.from_wire({**REPLY, "leader": None}).healthy


def test_control_results() -> None:
    assert KillResult.from_wire({"ok": True, "agent": "a", "pid": 7, "signal": "STOP"}) == \
        KillResult("a", 7, "STOP")
    assert RestartResult.from_wire({"ok": True, "agent": "a"}) == RestartResult("a")
    assert DownResult.from_wire({"ok": True, "stopped": True}) == DownResult(True)


@pytest.mark.parametrize(("reply", "fault", "exit_code"), [
    ({"ok": False, "error": "bad_request", "message": "bad kill request"}, Fault.BAD_REQUEST, 2),
    ({"ok": False, "error": "timeout", "message": "late"}, Fault.TIMEOUT, 124),
    ({"ok": False, "error": "not_running", "message": "x is not running"}, Fault.NOT_RUNNING, 1),
    ({"ok": False, "error": "from_the_future", "message": "?"}, None, 1),
], ids=["bad-request-2", "timeout-124", "not-running-1", "unknown-fault-1"])
def test_request_failed_maps_faults_to_exit_codes(reply, fault, exit_code) -> None:
    error = RequestFailed(reply)
    assert (error.fault, error.exit_code, str(error)) == (fault, exit_code, reply["message"])


def _entry(slot: int, index: int = 0, rid: str | None = "r", value: bytes | None = b"v") -> dict:
    return {"slot": slot, "index": index, "request_id": rid, "noop": rid is None,
            "value": base64.b64encode(value).decode() if value is not None else None}


def test_decided_entries_parse_noops_and_bytes() -> None:
    assert DecidedCommand.from_wire(_entry(3, 1, "r", b"\xff\x00")) == DecidedCommand(
        3, 1, "r", b"\xff\x00")
    noop = DecidedCommand.from_wire(_entry(4, 0, None, None))
    assert noop.noop and noop.value is None and noop.position == "4.0"


def test_cursor_pages_by_whole_slots_and_trims_to_the_limit() -> None:
    cursor = LogCursor(None, limit=3, page_size=2)
    assert cursor.query() == (None, 2)
    # A page holds whole slots: 3 entries for a limit of 2.
    got = cursor.take({"entries": [_entry(5, 0), _entry(5, 1), _entry(6)], "decided_up_to": 9})
    assert [e.position for e in got] == ["5.0", "5.1", "6.0"] and cursor.done
    cursor = LogCursor(5, limit=4, page_size=2)
    cursor.take({"entries": [_entry(5), _entry(6)], "decided_up_to": 9})
    assert cursor.query() == (7, 2) and not cursor.done
    got = cursor.take({"entries": [_entry(7), _entry(8), _entry(8, 1)], "decided_up_to": 9})
    assert [e.position for e in got] == ["7.0", "8.0"] and cursor.done  # trimmed to 4


def test_cursor_follow_waits_past_what_the_learner_has() -> None:
    cursor = LogCursor(None, follow=True, page_size=10)
    cursor.take({"entries": [_entry(0), _entry(1)], "decided_up_to": 1})
    assert (cursor.wait_for, cursor.done) == (2, False)  # short page: wait for slot 2
    cursor.take({"entries": [], "decided_up_to": 1})
    assert cursor.wait_for == 2
    # A learner failed over to is behind: wait for ours, not at once again.
    cursor.take({"entries": [], "decided_up_to": 0})
    assert cursor.wait_for == 2
    # An empty page from a learner that says it has more: wait past it (no spin).
    cursor.take({"entries": [], "decided_up_to": 5})
    assert cursor.wait_for == 6
    # Not following: a short page ends it.
    once = LogCursor(None, page_size=10)
    once.take({"entries": [_entry(0)], "decided_up_to": 0})
    assert once.done and once.wait_for is None


def test_cursor_refusal_names_the_first_retained_slot() -> None:
    with pytest.raises(RequestFailed) as caught:
        LogCursor(1).take({"error": "slot 1 is no longer retained; the log starts at slot 40",
                           "code": "not_retained", "log_start": 40})
    assert caught.value.fault is Fault.NOT_RETAINED and caught.value.reply["log_start"] == 40


def test_a_decision_is_immutable_and_orders_by_position() -> None:
    """`Decision` (a NamedTuple since issue 24, made per decided command):
    its fields cannot be set, `position` is "SLOT.INDEX", and decisions sort
    by position (slot, then index), as README "Python API" describes."""
    from paxosctl import Decision

    d = Decision(3, 1, b"v", "r", 0.25)
    with pytest.raises(AttributeError):
        d.slot = 4  # type: ignore[misc]
    assert (d.slot, d.index, d.value, d.request_id, d.seconds) == (3, 1, b"v", "r", 0.25)
    assert d.position == "3.1" and d == Decision(3, 1, b"v", "r", 0.25)
    later, earlier = Decision(3, 2, b"a", "r2", 0.0), Decision(2, 9, b"z", "r3", 9.0)
    assert sorted([later, d, earlier]) == [earlier, d, later]
