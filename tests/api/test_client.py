"""The threaded `Client` on a live cluster: typed results, the decided log,
following it, and futures that a caller cannot break by cancelling."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from clusters import Cluster, wait_until
from paxosctl import (AgentChange, AgentStatus, Client, ClusterStatus, DecidedCommand, KillResult,
                      MembershipChange, NotRunning, RequestFailed, RestartResult)
from paxosctl.supervisor.control import Fault


def test_status_is_typed(api_cluster: Cluster) -> None:
    api_cluster.wait_healthy()
    with api_cluster.client() as client:
        status = client.status()
        wide = client.status(wide=True)
    assert isinstance(status, ClusterStatus) and status.cluster == "api"
    assert all(isinstance(a, AgentStatus) for a in status.agents)
    assert {a.name for a in status.agents} == set(api_cluster.agent_names)
    assert status.leader in api_cluster.proposers and status.ballot is not None
    assert status.ballot[1] == status.leader
    assert status.extra == {}  # every key of today's reply is known
    assert all(a.extra == {} and a.should_run for a in status.agents)
    assert status.manifest is not None and status.manifest["path"] == str(api_cluster.manifest)
    # Only wide asks for CPU and memory, read from the real processes.
    assert all(a.cpu_s is None for a in status.agents)
    assert all(a.cpu_s is not None and a.cpu_s > 0 and a.rss_bytes for a in wide.agents)


def test_kill_and_restart_are_typed(api_cluster: Cluster) -> None:
    api_cluster.wait_healthy()
    name = api_cluster.learners[-1]
    with api_cluster.client() as client:
        pid = client.status().agent(name).pid
        try:
            assert client.kill(name, "STOP") == KillResult(name, pid, "SIGSTOP")
        finally:
            assert client.kill(name, "CONT").signal == "SIGCONT"
        assert client.restart(name) == RestartResult(name)
        with pytest.raises(RequestFailed) as caught:
            client.kill("no-such-agent")
        assert (caught.value.fault, caught.value.exit_code) == (Fault.BAD_REQUEST, 2)
        assert "no-such-agent" in str(caught.value)
        wait_until(lambda: (a := client.status().agent(name)).running and a.pid != pid,
                   30, f"{name} restarted")
    api_cluster.wait_healthy()


def test_request_stays_the_low_level_dict(api_cluster: Cluster) -> None:
    with api_cluster.client() as client:
        reply = client.request("status", wide=False)
        assert reply["ok"] is True and isinstance(reply["agents"], list)
        with pytest.raises(RequestFailed) as caught:
            client.request("no-such-op")
        assert caught.value.fault is Fault.UNKNOWN_OP and caught.value.exit_code == 2


def test_decided_is_typed_with_exact_bytes(api_cluster: Cluster) -> None:
    value = b"\x00\xff tab\there\n"
    with api_cluster.client() as client:
        decision = client.propose(value)
        entries = client.decided()
        [entry] = [e for e in entries if e.request_id == decision.request_id]
        assert entry == DecidedCommand(decision.slot, decision.index, decision.request_id, value)
        assert entry.position == decision.position and not entry.noop
        positions = [(e.slot, e.index) for e in entries]
        assert positions == sorted(positions)
        assert client.decided(decision.slot, limit=1) == [entry]


def _consume(iterator, into: queue.Queue) -> None:
    try:
        for entry in iterator:
            into.put(entry)
        into.put("end")
    except BaseException as e:  # noqa: BLE001 - handed to the test
        into.put(e)


def _next(q: queue.Queue, timeout: float):
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"nothing from the iterator within {timeout}s") from None


def test_follow_yields_decisions_made_after_it_caught_up(api_cluster: Cluster) -> None:
    """Following: the log up to now, then each new decision as it is applied;
    closing the client ends a follow that waits (NotRunning), no hang."""
    with api_cluster.client() as client:
        first = client.propose("before following")
        got: queue.Queue = queue.Queue()
        follower = Client.for_manifest(api_cluster.manifest)
        thread = threading.Thread(target=_consume, args=(
            follower.iter_decided(first.slot, follow=True), got), daemon=True)
        thread.start()
        assert _next(got, 20).request_id == first.request_id
        # It has read the page holding `first`; what follows comes by the stream.
        later = [client.propose(f"followed {i}") for i in range(3)]
        seen = [_next(got, 20) for _ in later]
        assert [(e.slot, e.index, e.value) for e in seen] == [
            (d.slot, d.index, d.value) for d in later]
        follower.close()
        ended = _next(got, 10)
        assert isinstance(ended, NotRunning), ended
        thread.join(5)


def test_follow_with_a_limit_ends_after_that_many(api_cluster: Cluster) -> None:
    with api_cluster.client() as client:
        start = client.propose("just before").slot + 1
        got: queue.Queue = queue.Queue()
        thread = threading.Thread(target=_consume, args=(
            client.iter_decided(start, follow=True, limit=2), got), daemon=True)
        thread.start()
        decisions = [client.propose(f"limited {i}") for i in range(3)]
        first, second = _next(got, 20), _next(got, 20)
        assert _next(got, 20) == "end"
        # Slots past `start` may hold no-ops or others' commands, never ours out of order.
        mine = [e.request_id for e in (first, second) if not e.noop]
        assert mine == [d.request_id for d in decisions][:len(mine)]


def test_a_cancelled_future_cannot_break_the_client(api_cluster: Cluster) -> None:
    """A request that left cannot be called back: cancel() fails, and the
    client's I/O thread (which resolves the future) goes on."""
    with api_cluster.client() as client:
        future = client.propose_async("not cancellable")
        assert future.cancel() is False
        decision = future.result(20)
        status = client.request_async("status")
        assert status.cancel() is False and status.result(20)["ok"]
        assert client.propose("after the cancel").slot >= decision.slot


def test_connecting_to_a_cluster_that_does_not_run(tmp_short) -> None:
    started = time.monotonic()
    with pytest.raises(NotRunning) as caught:
        Client(tmp_short / "control.sock", cluster_file="nowhere.toml")
    assert caught.value.exit_code == 1 and "nowhere.toml" in str(caught.value)
    assert time.monotonic() - started < 5


def test_stop_and_start_are_typed(api_cluster: Cluster) -> None:
    api_cluster.wait_healthy()
    with api_cluster.client() as client:
        assert client.stop("learner-1") == AgentChange("learner-1", True)
        assert client.stop("learner-1") == AgentChange("learner-1", False)
        wait_until(lambda: client.status().agent("learner-1").pid is None, 15, "learner-1 ended")
        row = client.status().agent("learner-1")
        assert (row.state, row.should_run, row.note) == ("stopped", False,
                                                         "stopped by the operator")
        assert client.status().healthy  # stopped on purpose is not unhealthy
        assert client.start("learner-1") == AgentChange("learner-1", True)
        wait_until(lambda: client.status().agent("learner-1").running, 30, "learner-1 back")
        assert client.start("learner-1") == AgentChange("learner-1", False)


def test_scale_and_replace_are_typed(api_cluster: Cluster) -> None:
    api_cluster.wait_healthy()
    three = ("acceptor-0", "acceptor-1", "acceptor-2")
    with api_cluster.client() as client:
        grown = client.scale("acceptor", 4)
        assert isinstance(grown, MembershipChange) and grown.in_force
        assert (grown.why, grown.added, grown.removed, grown.retired, grown.acceptors) == (
            "scale acceptor 3 -> 4", ("acceptor-3",), (), (), (*three, "acceptor-3"))
        epoch = grown.epoch
        assert epoch is not None and epoch >= 1
        with pytest.raises(RequestFailed) as refused:
            client.replace("acceptor-0")  # running: only with force
        assert refused.value.error == Fault.BAD_REQUEST and "--force" in refused.value.message
        back = client.scale("acceptor", 3)
        assert (back.removed, back.acceptors, back.epoch) == (("acceptor-3",), three, epoch + 1)
        assert client.scale("acceptor", 3).why == "scale acceptor 3 -> 3"  # nothing to do
