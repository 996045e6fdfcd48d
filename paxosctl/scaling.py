"""`scale`, `replace` and `apply`'s acceptor changes: the supervisor's driver.

`Scaler` turns what the operator asked for into a target list of agents
(`scale_target`, `replace_target`), refuses what is not allowed
(`reconfig.check`), runs one `reconfig.MembershipChange` at a time, keeps
topology.json in step with it (so a restarted supervisor runs the right
agents and finishes a change it was in the middle of), and answers the
caller when the change is in force, or at once with `--no-wait`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from .control import ClientConnection, Fault, OpError
from .errors import UsageError
from .fleet import Fleet
from .manifest import AgentSpec, Manifest
from .reconfig import MembershipChange, Phase, check
from .restart import AgentState
from .topology import Change, Topology, resize, save

log = logging.getLogger("paxosctl.supervisor")

Reply = tuple[ClientConnection, Any]


class Scaler:
    """The membership change in progress, if any, and who waits for it.

    `adopt(manifest)` is called with the manifest the cluster runs once a
    change is done (the supervisor's `_adopt`).
    """

    def __init__(self, fleet: Fleet, path: Path, topology: Topology | None,
                 adopt: Callable[[Manifest], None]) -> None:
        self.fleet = fleet
        self.path = path
        self.retired: frozenset[str] = topology.retired if topology is not None else frozenset()
        self.change: MembershipChange | None = None
        self._adopt = adopt
        self._reply: Reply | None = None
        self._deadline = float("inf")

    # ------------------------------------------------------------- targets

    def scale_target(self, running: Manifest, group: str, replicas: int) -> tuple[AgentSpec, ...]:
        """`running`'s agents with `group` resized to `replicas` (OpError if unknown)."""
        groups = list(dict.fromkeys(a.group for a in running.agents))
        if group not in groups:
            raise OpError(Fault.BAD_REQUEST, f"no agent group {group!r}; groups: {', '.join(groups)}")
        if isinstance(replicas, bool) or not isinstance(replicas, int) or not 0 <= replicas <= 64:
            raise OpError(Fault.BAD_REQUEST, f"replicas: expected an integer from 0 to 64, got {replicas!r}")
        current = [a for a in running.agents if a.group == group]
        resized = self._resize(current, replicas, group, current[0].role, self._taken(running),
                               running)
        out: list[AgentSpec] = []
        for a in running.agents:
            if a.group == group:
                if resized:
                    out.extend(resized)
                    resized = []
            else:
                out.append(a)
        return tuple(out)

    def replace_target(self, running: Manifest, name: str, force: bool) -> tuple[tuple[AgentSpec, ...], AgentSpec]:
        """`running`'s agents with `name` swapped for its group's next name."""
        agent = self.fleet.agents.get(name)
        old = next((a for a in running.agents if a.name == name), None)
        if agent is None or old is None:
            raise OpError(Fault.BAD_REQUEST, f"no agent {name!r}; agents: "
                                           f"{', '.join(a.name for a in running.agents)}")
        if agent.state is AgentState.RUNNING and not agent.held and not force:
            raise OpError(Fault.BAD_REQUEST, f"{name} is running; replacing it retires a healthy "
                                             "member: add --force to replace it anyway")
        # Never a name that ran before: the new member must start empty.
        new, = self._resize([], 1, old.group, old.role,
                            self._taken(running) | self.fleet.members.names, running)
        return tuple(new if a.name == name else a for a in running.agents), new

    @staticmethod
    def _resize(current: list[AgentSpec], count: int, group: str, role: str, taken: set[str],
                running: Manifest) -> list[AgentSpec]:
        """`topology.resize`; a name too long for its endpoint is a bad request."""
        try:
            return resize(current, count, group, role, taken, running.state_dir)
        except UsageError as e:
            raise OpError(Fault.BAD_REQUEST, e.message) from None

    def _taken(self, running: Manifest) -> set[str]:
        """Names a new agent may not take: retired ones and those that run.
        (`scale` may bring back a name it removed, with its files: that is
        the same member, its promises and votes intact.)"""
        return set(self.retired) | {a.name for a in running.agents} | set(self.fleet.agents)

    # --------------------------------------------------------------- driving

    def begin(self, running: Manifest, target: tuple[AgentSpec, ...], retire: frozenset[str],
              why: str, reply_to: Reply | None, timeout: float | None, now: float) -> MembershipChange:
        """Start the change to `target`, or raise OpError (nothing changed).
        The caller has refused it while another change (or an apply) runs
        (`Supervisor._refuse_during_change`).

        `reply_to` is answered once it is in force (a timeout fault after
        `timeout` seconds: it goes on); None answers nobody (--no-wait,
        or a resumed change).
        """
        check(self.fleet, running, target)
        change = Change(target, retire, why)
        self.retired |= retire
        self._save(running.agents, change)
        self.change = MembershipChange(self.fleet, running, change)
        log.info("membership change: %s", why)
        self._reply = reply_to
        self._deadline = now + timeout if timeout is not None else float("inf")
        self.change.start(now)
        return self.change

    def resume(self, running: Manifest, change: Change, now: float) -> None:
        """Finish a change a previous supervisor began (topology.json's)."""
        log.info("membership change: resuming %s", change.why)
        self.change = MembershipChange(self.fleet, running, change)
        self.change.start(now)

    def advance(self, now: float) -> None:
        """Step the change; once done (or past the caller's deadline), answer."""
        change = self.change
        if change is None:
            return
        change.step(now)
        if change.done:
            self.change = None
            if change.phase is Phase.DONE:
                self._save(change.change.target, None)
                self._adopt(change.wanted)
                log.info("membership change done: %s", change.change.why)
            else:
                self._save(change.running.agents, None)
            self._answer(change)
        elif self._reply is not None and now >= self._deadline:
            connection, request_id = self._reply
            connection.fail(request_id, Fault.TIMEOUT,
                            f"{change.change.why}: not yet in force: {change.pending()} "
                            "(it goes on; see paxosctl status)")
            self._reply = None

    def _answer(self, change: MembershipChange) -> None:
        if self._reply is None:
            return
        connection, request_id = self._reply
        self._reply = None
        if change.phase is Phase.FAILED:
            connection.fail(request_id, Fault.UNAVAILABLE, change.error or "the change failed")
        else:
            connection.reply({"id": request_id, "ok": True, **summary(change)})

    def _save(self, agents: tuple[AgentSpec, ...], change: Change | None) -> None:
        save(self.path, Topology(agents=tuple(agents), retired=self.retired,
                                 history=self.fleet.history, change=change))


def summary(change: MembershipChange) -> dict[str, Any]:
    """What a change does (the reply of scale, replace and apply): its
    fields, and "changes", one line each for people."""
    added = [a.name for a in change.added]
    retired = sorted(change.change.retire)
    removed = [a.name for a in change.removed if a.name not in change.change.retire]
    lines = []
    if added:
        lines.append("adding " + ", ".join(added))
    if removed:
        lines.append("removing " + ", ".join(removed) + " (the files stay)")
    if retired:
        lines.append("retiring " + ", ".join(retired) + " (the name is never used again; "
                     "the files stay)")
    acceptors = list(change.acceptors)
    lines.append(f"acceptors: {', '.join(acceptors)} (majority {len(acceptors) // 2 + 1})")
    return {"why": change.change.why, "added": added, "removed": removed, "retired": retired,
            "acceptors": acceptors, "epoch": change.epoch, "in_force": change.phase is Phase.DONE,
            "changes": lines, "restarted": []}
