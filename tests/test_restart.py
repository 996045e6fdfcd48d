"""The restart state machine. Every test passes `now=` explicitly: the
machine reads no clock, so the timelines below are exact."""

import pytest

from paxosctl.manifest import RestartSettings
from paxosctl.supervisor.restart import (
    RESTART_REASONS, AgentState, ExitCause, Lifecycle, TransitionError, exit_cause,
)

S = AgentState
C = ExitCause


def lifecycle(**overrides) -> Lifecycle:
    settings = dict(policy="always", backoff_initial=0.1, backoff_max=5.0, stable_after=10.0, max_restarts=10)
    settings.update(overrides)
    return Lifecycle(RestartSettings(**settings))


def running(now: float = 0.0, **overrides) -> Lifecycle:
    """A lifecycle spawned at `now` and ready 0.5s later."""
    life = lifecycle(**overrides)
    life.spawned(now=now)
    life.became_ready(now=now + 0.5)
    return life


def test_fresh_lifecycle_is_stopped_with_no_history():
    life = lifecycle()
    assert life.state is S.STOPPED
    assert (life.restarts, life.consecutive_failures, life.last_exit) == (0, 0, None)
    assert not life.due(now=0.0)


def test_transition_stopped_to_starting():
    life = lifecycle()
    assert life.spawned(now=1.0) is S.STARTING
    assert life.started_at == 1.0
    assert life.restarts == 0  # the first spawn is not a restart


def test_transition_starting_to_running():
    life = lifecycle()
    life.spawned(now=1.0)
    assert life.became_ready(now=1.2) is S.RUNNING
    assert life.ready_at == 1.2


def test_heartbeat_while_running_changes_nothing():
    life = running(now=0.0)
    assert life.became_ready(now=5.0) is S.RUNNING
    assert life.ready_at == 0.5


def test_transition_starting_to_backoff():
    life = lifecycle()
    life.spawned(now=0.0)
    assert life.exited(now=0.3, cause=C.CRASH, code=1) is S.BACKOFF
    assert life.consecutive_failures == 1
    assert life.next_start_at == pytest.approx(0.4)  # backoff_initial


def test_transition_running_to_backoff_records_last_exit():
    life = running(now=0.0)
    life.exited(now=2.0, cause=C.KILLED, code=-9)
    assert life.state is S.BACKOFF
    exit_ = life.last_exit
    assert (exit_.at, exit_.reason, exit_.failed, exit_.code, exit_.uptime) == (2.0, "killed", True, -9, 2.0)


def test_transition_backoff_to_starting_when_due():
    life = running(now=0.0)
    life.exited(now=1.0, cause=C.CRASH)
    assert not life.due(now=1.05)
    assert life.backoff_remaining(now=1.05) == pytest.approx(0.05)
    assert life.due(now=1.1)
    assert life.backoff_remaining(now=1.2) == 0.0
    assert life.spawned(now=1.1) is S.STARTING
    assert life.restarts == 1
    assert life.next_start_at is None


def test_transition_backoff_to_starting_refused_before_due():
    life = running(now=0.0)
    life.exited(now=1.0, cause=C.CRASH)
    with pytest.raises(TransitionError):
        life.spawned(now=1.05)
    assert life.state is S.BACKOFF


def test_backoff_doubles_per_consecutive_failure_up_to_backoff_max():
    life = lifecycle(backoff_initial=0.1, backoff_max=1.0, max_restarts=100)
    now, delays = 0.0, []
    for _ in range(6):
        life.spawned(now=now)
        life.exited(now=now, cause=C.CRASH)
        delays.append(life.backoff_remaining(now=now))
        now = life.next_start_at
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_transition_backoff_to_fatal():
    life = lifecycle(max_restarts=2)
    now = 0.0
    life.spawned(now=now)
    for expected in (S.BACKOFF, S.BACKOFF, S.FATAL):
        assert life.exited(now=now, cause=C.CRASH) is expected
        if expected is S.BACKOFF:
            now = life.next_start_at
            life.spawned(now=now)
    assert life.consecutive_failures == 3
    assert life.restarts == 2
    assert not life.due(now=1000.0)


def test_transition_starting_to_fatal_when_max_restarts_is_zero():
    life = lifecycle(max_restarts=0)
    life.spawned(now=0.0)
    assert life.exited(now=0.1, cause=C.HEALTH) is S.FATAL


def test_spawned_while_fatal_is_refused():
    life = lifecycle(max_restarts=0)
    life.spawned(now=0.0)
    life.exited(now=0.1, cause=C.CRASH)
    with pytest.raises(TransitionError):
        life.spawned(now=1.0)


def test_transition_fatal_to_stopped_on_reset_then_spawn_starts_afresh():
    life = lifecycle(max_restarts=0)
    life.spawned(now=0.0)
    life.exited(now=0.1, cause=C.CRASH)
    assert life.reset() is S.STOPPED
    assert life.consecutive_failures == 0
    assert life.spawned(now=5.0) is S.STARTING
    assert life.restarts == 1


def test_stable_run_resets_failures_and_backoff():
    life = lifecycle(backoff_initial=0.1, stable_after=10.0)
    now = 0.0
    for _ in range(3):  # three quick failures: next delay would be 0.8s
        life.spawned(now=now)
        life.exited(now=now, cause=C.CRASH)
        now = life.next_start_at
    life.spawned(now=now)
    life.became_ready(now=now + 0.1)
    life.exited(now=now + 10.0, cause=C.CRASH)  # up exactly stable_after
    assert life.consecutive_failures == 1
    assert life.backoff_remaining(now=now + 10.0) == pytest.approx(0.1)


def test_long_run_that_never_became_ready_is_not_stable():
    # Killed at start_timeout without one heartbeat: must not reset its own backoff.
    life = lifecycle(stable_after=10.0)
    life.spawned(now=0.0)
    life.exited(now=0.0, cause=C.CRASH)
    life.spawned(now=0.1)
    life.exited(now=20.0, cause=C.HEALTH)
    assert life.consecutive_failures == 2
    assert life.backoff_remaining(now=20.0) == pytest.approx(0.2)


def test_transition_running_to_stopped_policy_never():
    life = running(policy="never")
    assert life.exited(now=3.0, cause=C.CRASH, code=2) is S.STOPPED
    assert life.consecutive_failures == 0
    assert not life.due(now=100.0)


def test_transition_running_to_stopped_on_failure_clean_exit():
    life = running(policy="on-failure")
    assert life.exited(now=3.0, cause=C.EXIT, code=0) is S.STOPPED


def test_transition_running_to_backoff_on_failure_failed_exit():
    life = running(policy="on-failure")
    assert life.exited(now=3.0, cause=C.CRASH, code=1) is S.BACKOFF


def test_transition_running_to_backoff_policy_always_clean_exit_counts_as_failure():
    # Otherwise a process that exits 0 at once restarts in a tight loop.
    life = running(policy="always")
    assert life.exited(now=1.0, cause=C.EXIT, code=0) is S.BACKOFF
    assert life.consecutive_failures == 1


def test_transition_running_to_backoff_manual_restart_is_due_now_and_not_a_failure():
    life = running(policy="never")
    assert life.exited(now=2.0, cause=C.OPERATOR_RESTART) is S.BACKOFF
    assert life.due(now=2.0)
    assert life.consecutive_failures == 0
    life.spawned(now=2.0)
    assert life.restarts == 1


@pytest.mark.parametrize("state", ["starting", "running", "backoff", "fatal"])
def test_transition_any_to_stopped_on_stop(state):
    life = lifecycle(max_restarts=0 if state == "fatal" else 10)
    life.spawned(now=0.0)
    if state == "running":
        life.became_ready(now=0.1)
    if state in ("backoff", "fatal"):
        life.exited(now=0.2, cause=C.CRASH)
    assert life.state == state
    assert life.stop() is S.STOPPED
    assert not life.due(now=100.0)
    assert life.backoff_remaining(now=0.2) == 0.0


def test_transition_stopped_to_stopped_when_the_stopped_process_exits():
    life = running(now=0.0)
    life.stop()
    assert life.exited(now=1.0, cause=C.KILLED, code=-15) is S.STOPPED
    assert life.last_exit.reason == "killed"
    assert life.consecutive_failures == 0


def test_transition_stopped_to_stopped_on_reset_clears_failures():
    life = running(now=0.0)
    life.exited(now=1.0, cause=C.CRASH)
    life.stop()
    assert life.consecutive_failures == 1
    assert life.reset() is S.STOPPED
    assert life.consecutive_failures == 0


@pytest.mark.parametrize("state", ["starting", "running", "backoff"])
def test_reset_refused_unless_fatal_or_stopped(state):
    life = lifecycle()
    life.spawned(now=0.0)
    if state == "running":
        life.became_ready(now=0.1)
    if state == "backoff":
        life.exited(now=0.2, cause=C.CRASH)
    with pytest.raises(TransitionError):
        life.reset()


def test_spawned_while_running_is_refused():
    life = running()
    with pytest.raises(TransitionError):
        life.spawned(now=1.0)


def test_exited_while_backing_off_is_refused():
    life = running()
    life.exited(now=1.0, cause=C.CRASH)
    with pytest.raises(TransitionError):
        life.exited(now=1.01, cause=C.CRASH)


@pytest.mark.parametrize(("code", "requested", "cause"), [
    (0, None, C.EXIT),
    (1, None, C.CRASH),
    (None, None, C.CRASH),
    (-9, None, C.KILLED),
    (-15, None, C.KILLED),
    (-9, C.HEALTH, C.HEALTH),
    (-9, C.OPERATOR_KILL, C.OPERATOR_KILL),
    (0, C.OPERATOR_KILL, C.OPERATOR_KILL),
    (-15, C.OPERATOR_RESTART, C.OPERATOR_RESTART),
    (-15, C.SHUTDOWN, C.SHUTDOWN),
    (78, None, C.NEEDS_OPERATOR),
    (78, C.OPERATOR_RESTART, C.NEEDS_OPERATOR),
], ids=["clean-exit", "non-zero-exit", "status-unknown", "sigkill-not-ours", "sigterm-not-ours",
        "health-kill", "operator-kill", "operator-kill-exits-0", "operator-restart", "shutdown",
        "exit-78", "exit-78-outranks-a-request"])
def test_exit_cause_is_decided_from_status_and_request(code, requested, cause):
    assert exit_cause(code, requested) is cause


@pytest.mark.parametrize(("cause", "reason"), [
    (C.EXIT, "exit"), (C.CRASH, "exit"), (C.NEEDS_OPERATOR, "exit"),
    (C.KILLED, "killed"), (C.OPERATOR_KILL, "killed"),
    (C.HEALTH, "health"),
    (C.OPERATOR_RESTART, "manual"), (C.SHUTDOWN, "manual"),
])
def test_exit_cause_keeps_the_reason_status_and_metrics_have_always_shown(cause, reason):
    assert cause.reason == reason
    assert reason in RESTART_REASONS  # the restarts metric lists exactly these


@pytest.mark.parametrize("state", ["starting", "running"])
def test_transition_to_fatal_when_the_agent_needs_an_operator(state):
    life = lifecycle(policy="always", max_restarts=10)
    life.spawned(now=0.0)
    if state == "running":
        life.became_ready(now=0.1)
    assert life.exited(now=1.0, cause=C.NEEDS_OPERATOR, code=78) is S.FATAL
    assert not life.due(now=100.0)
    assert (life.last_exit.reason, life.last_exit.code) == ("exit", 78)


def test_backoff_delay_never_overflows():
    life = lifecycle(backoff_initial=0.1, backoff_max=5.0, max_restarts=1_000_000)
    assert life.backoff_delay(1_000_000) == 5.0
    assert life.backoff_delay(1) == pytest.approx(0.1)


def test_states_are_strings():
    assert S.BACKOFF == "backoff"
    assert str(S.FATAL) == "fatal"


def test_transition_running_to_backoff_on_deliberate_kill_counts_no_failure():
    """`paxosctl kill` is the operator's choice: restarted, but never a step towards fatal."""
    life = running(now=0.0, max_restarts=1)
    for i in range(5):
        assert life.exited(now=1.0 + i, cause=C.OPERATOR_KILL) is S.BACKOFF
        assert life.consecutive_failures == 0
        assert life.next_start_at == pytest.approx(1.0 + i + 0.1)  # backoff_initial
        life.spawned(now=1.2 + i)
        life.became_ready(now=1.3 + i)
    assert life.restarts == 5


def test_transition_running_to_stopped_on_deliberate_kill_under_policy_never():
    life = running(now=0.0, policy="never")
    assert life.exited(now=1.0, cause=C.OPERATOR_KILL) is S.STOPPED


def test_transition_running_to_fatal_when_undeliberate_kills_exceed_max_restarts():
    life = running(now=0.0, max_restarts=1)
    assert life.exited(now=1.0, cause=C.KILLED) is S.BACKOFF
    life.spawned(now=1.2)
    life.became_ready(now=1.3)
    assert life.exited(now=2.0, cause=C.KILLED) is S.FATAL
