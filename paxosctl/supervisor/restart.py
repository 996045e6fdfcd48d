"""When to restart an agent: a pure state machine, one per agent.

Modelled on supervisord's Subprocess.transition(). It makes no OS calls and
reads no clock: every method that needs the time takes `now` (float seconds,
any monotonic origin), so the supervisor drives it and tests replay it.

    event          from                  to
    spawned        STOPPED               STARTING
    spawned        BACKOFF (when due)    STARTING
    became_ready   STARTING              RUNNING
    exited         STARTING, RUNNING     BACKOFF, FATAL or STOPPED (see below)
    exited         STARTING, RUNNING     FATAL     (cause NEEDS_OPERATOR)
    exited         STOPPED               STOPPED   (the process stop() asked to end)
    stop()         any                   STOPPED   (never restarted automatically)
    reset()        FATAL, STOPPED        STOPPED   (failures forgotten)

Any other event raises TransitionError, except became_ready, which is
ignored outside STARTING (heartbeats keep arriving, some late).

A fresh Lifecycle is STOPPED: the supervisor spawns every agent once at
`up`, and after that only when `due(now)` says so.

Failures and backoff: every exit that leads to a restart counts one
consecutive failure, clean or not (under policy "always" a process that
exits 0 at once would otherwise be restarted in a tight loop). A run that
reached RUNNING and stayed up `stable_after` seconds resets the count
first. The n-th consecutive failure waits
min(backoff_initial * 2**(n-1), backoff_max); once the count exceeds
`max_restarts` the agent goes FATAL and stays there until `reset()`.

Why a process ended is one `ExitCause`, decided once when it is reaped
(`exit_cause`); `exited` takes it:

    cause             failed   restarted                           counts towards FATAL
    EXIT              no       policy "always"                     yes (see above)
    CRASH, KILLED,
    HEALTH            yes      policy "always" or "on-failure"     yes
    OPERATOR_KILL     -        unless policy "never", after
                               backoff_initial                     no
    OPERATOR_RESTART  -        at once, whatever the policy        no
    OPERATOR_STOP     -        no (the agent is STOPPED first,
                               until the operator starts it)       -
    NEEDS_OPERATOR    yes      no: FATAL at once, until reset()    -
    SHUTDOWN          -        no (the agent is STOPPED first)     -
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from paxos_agents.runtime.frames import EXIT_NEEDS_OPERATOR

if TYPE_CHECKING:  # a type only: this module needs nothing else from the manifest
    from paxosctl.manifest import RestartSettings


class ExitCause(StrEnum):
    """Why an agent's process ended. The values name the cause in logs;
    `reason` is the coarser word status and the restarts metric show."""

    EXIT = "exit"                          # it exited 0, unasked
    CRASH = "crash"                        # it exited non-zero unasked (or its status is unknown)
    KILLED = "killed"                      # a signal the supervisor did not send
    HEALTH = "health"                      # SIGKILLed by the supervisor for missing heartbeats
    OPERATOR_KILL = "operator-kill"        # `paxosctl kill` (KILL or TERM): restarted, never a failure
    OPERATOR_RESTART = "operator-restart"  # `paxosctl restart`: restarted at once
    OPERATOR_STOP = "operator-stop"        # `paxosctl stop AGENT`: stopped until `start`
    NEEDS_OPERATOR = "needs-operator"      # exit 78: its state is unreadable or lost
    SHUTDOWN = "shutdown"                  # the whole cluster is stopping

    @property
    def reason(self) -> str:
        """`status`'s last_exit.reason and the restarts metric's `reason` label:
        one of `RESTART_REASONS`, as dashboards have always known them."""
        return _REASONS[self]

    @property
    def operator(self) -> bool:
        """Whether an operator's command ended it (kill, restart, stop)."""
        return self in (ExitCause.OPERATOR_KILL, ExitCause.OPERATOR_RESTART,
                        ExitCause.OPERATOR_STOP)

    @property
    def failed(self) -> bool:
        """Whether the agent failed (restart policy "on-failure" restarts it)."""
        return self in (ExitCause.CRASH, ExitCause.KILLED, ExitCause.HEALTH,
                        ExitCause.NEEDS_OPERATOR)


_REASONS = {
    ExitCause.EXIT: "exit",
    ExitCause.CRASH: "exit",
    ExitCause.NEEDS_OPERATOR: "exit",
    ExitCause.KILLED: "killed",
    ExitCause.OPERATOR_KILL: "killed",
    ExitCause.HEALTH: "health",
    ExitCause.OPERATOR_RESTART: "manual",
    ExitCause.OPERATOR_STOP: "manual",
    ExitCause.SHUTDOWN: "manual",
}

#: Every `ExitCause.reason`, in the order the metrics list them.
RESTART_REASONS = ("exit", "killed", "health", "manual")


def exit_cause(code: int | None, requested: ExitCause | None) -> ExitCause:
    """Why a process ended, from its exit status and what the supervisor asked.

    `code` is the exit status (negative: the signal that ended it; None:
    unknown); `requested` is the cause the supervisor signalled it for, if
    it did. An agent's own exit 78 outranks any request: whatever we asked,
    it cannot run again until an operator acts.
    """
    if code == EXIT_NEEDS_OPERATOR:
        return ExitCause.NEEDS_OPERATOR
    if requested is not None:
        return requested
    if code == 0:
        return ExitCause.EXIT
    if code is not None and code < 0:
        return ExitCause.KILLED
    return ExitCause.CRASH


class AgentState(StrEnum):
    """Where an agent is in its lifecycle; the values are what status shows."""

    STARTING = "starting"  # spawned, no heartbeat yet
    RUNNING = "running"  # heartbeating
    BACKOFF = "backoff"  # ended; waiting until next_start_at to be spawned again
    FATAL = "fatal"  # failed more than max_restarts times in a row; given up
    STOPPED = "stopped"  # not running and not to be restarted (fresh, stopped, or policy)


class TransitionError(RuntimeError):
    """An event that cannot happen in the current state: a supervisor bug."""


@dataclass(frozen=True, slots=True)
class LastExit:
    """How the latest run ended. `code` is the exit status if known (a
    negative value is a signal number, as in subprocess); `uptime` is
    seconds from spawn to exit."""

    at: float
    cause: ExitCause
    code: int | None
    uptime: float

    @property
    def reason(self) -> str:
        return self.cause.reason

    @property
    def failed(self) -> bool:
        return self.cause.failed


class Lifecycle:
    """The restart state of one agent. Read the fields; change them only
    through the methods, each of which is one labelled transition."""

    def __init__(self, settings: RestartSettings) -> None:
        self.settings = settings
        self.state = AgentState.STOPPED
        self.restarts = 0  # spawns after the first one: restarts performed
        self.consecutive_failures = 0
        self.started_at: float | None = None  # when the current/latest run was spawned
        self.ready_at: float | None = None  # its first heartbeat
        self.next_start_at: float | None = None  # set only in BACKOFF
        self.last_exit: LastExit | None = None

    def __repr__(self) -> str:
        return (f"Lifecycle(state={self.state.value}, restarts={self.restarts}, "
                f"consecutive_failures={self.consecutive_failures}, next_start_at={self.next_start_at})")

    # -- events ---------------------------------------------------------------

    def spawned(self, now: float) -> AgentState:
        """The supervisor started a process for this agent."""
        if self.state is AgentState.BACKOFF and not self.due(now):
            raise TransitionError(f"spawned at {now} while backing off until {self.next_start_at}")
        if self.state not in (AgentState.STOPPED, AgentState.BACKOFF):
            # FATAL needs reset() first; STARTING/RUNNING already have a process.
            raise TransitionError(f"spawned while {self.state.value}")
        # STOPPED -> STARTING, BACKOFF -> STARTING
        if self.started_at is not None:  # spawned before: this is a restart
            self.restarts += 1
        self.started_at, self.ready_at, self.next_start_at = now, None, None
        self.state = AgentState.STARTING
        return self.state

    def became_ready(self, now: float) -> AgentState:
        """The agent's first heartbeat arrived. Later heartbeats, and a late
        one from a process already gone, change nothing."""
        if self.state is AgentState.STARTING:
            # STARTING -> RUNNING
            self.ready_at = now
            self.state = AgentState.RUNNING
        return self.state

    def exited(self, now: float, cause: ExitCause, code: int | None = None) -> AgentState:
        """The agent's process ended, for `cause` (see `exit_cause`), with
        exit status `code` if known. The table in the module docstring says
        which causes restart it and which count as failures."""
        uptime = now - self.started_at if self.started_at is not None else 0.0
        if self.state is AgentState.STOPPED:
            # STOPPED -> STOPPED: the process the operator stopped has ended.
            self.last_exit = LastExit(now, cause, code, uptime)
            return self.state
        if self.state not in (AgentState.STARTING, AgentState.RUNNING):
            raise TransitionError(f"exited while {self.state.value}: no process was running")
        self.last_exit = LastExit(now, cause, code, uptime)

        if cause is ExitCause.NEEDS_OPERATOR:
            # STARTING/RUNNING -> FATAL: restarting would only fail the same way.
            self.state = AgentState.FATAL
            self.next_start_at = None
            return self.state

        if cause is ExitCause.OPERATOR_RESTART:
            # STARTING/RUNNING -> BACKOFF, due now: the operator asked for a restart.
            return self._back_off(now, delay=0.0)

        if cause is ExitCause.OPERATOR_KILL:
            if self.settings.policy == "never":
                # STARTING/RUNNING -> STOPPED: the policy wants no restart.
                self.state = AgentState.STOPPED
                return self.state
            # STARTING/RUNNING -> BACKOFF: killed on purpose; no failure counted.
            return self._back_off(now, delay=self.settings.backoff_initial)

        # Only a run that became ready counts as stable: a process killed at
        # start_timeout without one heartbeat must not reset its own backoff.
        if self.state is AgentState.RUNNING and uptime >= self.settings.stable_after:
            self.consecutive_failures = 0

        policy = self.settings.policy
        if policy == "never" or (policy == "on-failure" and not cause.failed):
            # STARTING/RUNNING -> STOPPED: the policy wants no restart.
            self.state = AgentState.STOPPED
            return self.state

        self.consecutive_failures += 1
        if self.consecutive_failures > self.settings.max_restarts:
            # STARTING/RUNNING -> FATAL: too many failures in a row.
            self.state = AgentState.FATAL
            return self.state
        # STARTING/RUNNING -> BACKOFF
        return self._back_off(now, delay=self.backoff_delay(self.consecutive_failures))

    def stop(self) -> AgentState:
        """The operator stopped the agent: it will not be restarted until
        spawned again explicitly. The caller kills any process itself."""
        # any state -> STOPPED
        self.state = AgentState.STOPPED
        self.next_start_at = None
        return self.state

    def reset(self) -> AgentState:
        """The operator restarts a FATAL or STOPPED agent: forget its
        failures so the next spawn starts from the initial backoff."""
        if self.state not in (AgentState.FATAL, AgentState.STOPPED):
            raise TransitionError(f"reset while {self.state.value}; stop it first or use a manual restart")
        # FATAL -> STOPPED, STOPPED -> STOPPED
        self.consecutive_failures = 0
        self.next_start_at = None
        self.state = AgentState.STOPPED
        return self.state

    # -- queries -----------------------------------------------------------

    def due(self, now: float) -> bool:
        """True when backing off and the wait is over: spawn it now."""
        return self.state is AgentState.BACKOFF and self.next_start_at is not None and now >= self.next_start_at

    def backoff_remaining(self, now: float) -> float:
        """Seconds until `due`; 0.0 when due or not backing off."""
        if self.state is not AgentState.BACKOFF or self.next_start_at is None:
            return 0.0
        return max(0.0, self.next_start_at - now)

    def backoff_delay(self, failures: int) -> float:
        """The wait after the `failures`-th consecutive failure (>= 1)."""
        initial, cap = self.settings.backoff_initial, self.settings.backoff_max
        # Cap the exponent: 2**failures as a float overflows long before
        # max_restarts' upper bound, and the delay has hit backoff_max anyway.
        return min(initial * 2.0 ** min(failures - 1, 64), cap)

    def _back_off(self, now: float, *, delay: float) -> AgentState:
        self.next_start_at = now + delay
        self.state = AgentState.BACKOFF
        return self.state


def exit_text(code: int | None, cause: ExitCause) -> str:
    """How a run ended, for a person: "exited with code 1 (crash)",
    "ended by signal KILL (health)", "ended, status unknown (crash)"."""
    if code is None:
        how = "ended, status unknown"
    elif code < 0:
        try:
            how = f"ended by signal {signal.Signals(-code).name.removeprefix('SIG')}"
        except ValueError:
            how = f"ended by signal {-code}"
    else:
        how = f"exited with code {code}"
    return f"{how} ({cause.value})"
