"""The supervisor behind `paxosctl up`: the control plane of one cluster.

One thread runs the loop (`Supervisor.serve`) and owns all state. Each
turn it

1. waits (`paxosctl.supervisor.loop`) on every agent's outbox and process sentinel,
   the control socket and its clients, and a wake-up pipe, and runs the
   handler each ready descriptor was registered with, then what other
   threads posted (the metrics server's, signal handlers);
2. serves the control socket (`paxosctl.supervisor.control`) a bounded share per
   client, each request one operation of `paxosctl.supervisor.ops.OPS`;
3. writes the agents' inbox pipes, and on its clock judges their health
   and restarts ended ones (`paxosctl.supervisor.fleet`);
4. publishes a metrics snapshot when one is due (`paxosctl.supervisor.snapshot`);
5. advances an `apply` in progress (`paxosctl.supervisor.rollout`) and a membership
   change (`paxosctl.membership`: `scale`, `replace`, and the agents an
   `apply` adds or removes), and answers the one pending long operation
   (`paxosctl.supervisor.pending`) once it is in force.

`apply` (the control op) and SIGHUP re-read the manifest and reconcile
the running cluster with it (`paxosctl.supervisor.reconcile` says what changes and
how; one refused change refuses the whole apply).

It is not on the data path: agents talk to each other and clients talk
to proposers and learners directly, over the endpoints in `run/`
(paxos_agents.runtime.transport; `endpoints.json` tells clients where).
A supervisor stopped with SIGSTOP stalls no command, and its health
clock does not blame agents for the silence its own stall caused.
"""

from __future__ import annotations

import logging
import signal
import threading
from functools import partial
from typing import Any

from .agents import monotonic
from .control import ClientConnection, ControlServer, Fault, OpError
from ..endpoints import endpoints_body, write_endpoints
from .fleet import STOP_GRACE_SECONDS, Fleet, membership_of
from ..layout import paths
from .loop import Loop
from ..manifest import AgentSpec, Manifest, display_path, load_manifest
from .members import MemberRegistry
from .metrics import Metrics
from ..errors import PaxosctlError
from ..membership.change import Transition
from ..membership.driver import Driver
from .engine import FleetEngine
from ..membership.names import project, replace_target, scale_target, with_agents
from ..membership.plan import Asked, ChangePlan, Current
from ..membership.record import decided
from ..membership.topology import load as load_topology
from .ops import dispatch
from .ownership import Claim, manifest_digest
from .pending import Pending
from .pidfile import write_pid_file
from .reconcile import Plan, plan
from .restart import AgentState
from .rollout import Rollout
from .roster import Roster
from .snapshot import Publisher

log = logging.getLogger("paxosctl.supervisor")

#: How often the loop wakes with nothing to do (timers: health, backoff).
LOOP_WAKE_SECONDS = 0.02


class Supervisor:
    """Runs one cluster from a validated manifest until `down` or a signal.

    `claim` is this process's ownership of the state dir (ownership.claim):
    the supervisor writes there only as its owner, and `serve` releases it
    last. It is the `ops.Cluster` the control operations act on.
    """

    def __init__(self, manifest: Manifest, claim: Claim) -> None:
        self.claim = claim
        self.paths = paths(manifest.state_dir)
        # After a scale or replace the cluster runs the agents topology.json
        # names, not the manifest's (see paxosctl.membership.topology).
        topology = load_topology(self.paths["topology"])
        if topology is not None:
            if {a.name for a in topology.agents} != {a.name for a in manifest.agents}:
                log.warning("running the agents of the last membership change (%s), not the "
                            "manifest's; paxosctl apply puts the manifest's counts back",
                            ", ".join(a.name for a in topology.agents))
            manifest = with_agents(manifest, topology.agents)
        self.manifest = manifest
        self.loop = Loop()
        #: Who ran here before: their stores must not go missing (see members.py).
        members = MemberRegistry(self.paths["members"], cluster_id=claim.identity.id,
                                 agents=[a.name for a in manifest.agents],
                                 footprint=claim.footprint)
        #: Who plays which role, and the configurations the agents report.
        self.roster = Roster(membership_of(manifest),
                             topology.history if topology is not None else None)
        self.fleet = Fleet(manifest, members, self.loop, self.paths, self.roster)
        #: `scale`, `replace` and the agents `apply` adds or removes (paxosctl.membership).
        self.driver = Driver(FleetEngine(self.fleet, self.roster), self.paths["topology"],
                             topology, self._adopt_agents)
        self._resume: Asked | None = topology.change if topology is not None else None
        self.control = ControlServer(str(self.paths["socket"]), self.loop.selector,
                                     partial(dispatch, self))
        self.metrics = Metrics()
        self.metrics.collector.refresh = self._refresh_metrics
        self.metrics_url: str | None = None
        self.publisher = Publisher(self.fleet, self.metrics)
        self.publisher.changing = lambda: self.driver.transition is not None
        self._stopping = False
        #: `down` requests, answered once every agent has stopped.
        self._stop_replies: list[tuple[ClientConnection, Any]] = []
        #: The settings of an apply in progress, if any.
        self.rollout: Rollout | None = None
        #: The long operation (apply, scale, replace) in progress, if any: what
        #: answers its caller once it is in force (`_answer`), and who waits
        #: (None: nobody, e.g. SIGHUP or --no-wait).
        self._operation: _Operation | None = None

    # ------------------------------------------------------------ lifecycle

    def serve(self) -> None:
        """Start everything, run the loop until stopped, then stop every agent
        and release the state dir (see ownership.Claim)."""
        try:
            self.control.start()  # claim made logs/, state/ and run/ (ownership._lay_out)
            listen = self.manifest.metrics
            if listen.enabled:
                port = self.metrics.serve(listen.host, listen.port)
                host = f"[{listen.host}]" if ":" in listen.host else listen.host
                self.metrics_url = f"http://{host}:{port}/metrics"
                log.info("metrics at %s", self.metrics_url)
            self._write_endpoints()
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGHUP, self.request_reload)
            self.fleet.start(monotonic())
            log.info("cluster %s up: %d agents", self.manifest.name, len(self.fleet.agents))
            if self._resume is not None:
                self.driver.resume(self.manifest.agents, self._resume, monotonic())
            self._run()
        finally:
            try:
                self.paths["endpoints"].unlink()  # clients: nothing runs here any more
            except FileNotFoundError:
                pass
            self.fleet.stop(STOP_GRACE_SECONDS)
            log.info("cluster %s stopped", self.manifest.name)
            self.metrics.close()
            for connection, request_id in self._stop_replies:
                connection.reply({"id": request_id, "ok": True, "stopped": True})
            self.control.close()  # writes what is queued, bounded, then closes
            self.claim.release()

    def request_stop(self, *_: object) -> None:
        """Ask the loop to stop (safe from a signal handler or any thread)."""
        self.loop.post(self._stop_now)

    def stop(self, reply_to: tuple[ClientConnection, Any]) -> None:
        """From the loop (`down`): stop after this turn; answer `reply_to`
        (connection, request id) once every agent has stopped."""
        self._stop_replies.append(reply_to)
        self._stopping = True

    def _stop_now(self) -> None:
        self._stopping = True

    def _run(self) -> None:
        control, fleet = self.control, self.fleet
        while not self._stopping:
            # Requests waiting in a client's buffer: serve them, not sleep.
            self.loop.turn(0.0 if control.has_work() else LOOP_WAKE_SECONDS)
            control.serve()  # a bounded share per client; the rest next turn
            fleet.flush()
            now = monotonic()  # one clock read per turn, passed down
            fleet.tick(now)
            self._advance(now)
            self.publisher.publish_if_due(now)
            control.flush()

    # ---------------------------------------------------------------- apply

    def request_reload(self, *_: object) -> None:
        """SIGHUP: re-read the manifest file and apply it, on the loop
        (safe from a signal handler); the outcome goes to the log."""
        self.loop.post(self._reload)

    def _reload(self) -> None:
        path = str(self.manifest.path)
        log.info("SIGHUP: applying %s", path)
        try:
            found = self.apply(path, None, timeout=None)
        except (PaxosctlError, OpError) as e:
            for line in [e.message, *getattr(e, "extra", {}).get("refused", [])]:
                log.error("SIGHUP: %s", line)
            return
        if not found.changes:
            log.info("SIGHUP: no change: the cluster already runs %s", path)

    def apply(self, path: str, reply_to: tuple[ClientConnection, Any] | None,
              timeout: float | None) -> Plan:
        """Reconcile the cluster with the manifest at `path`, from the loop.

        Changes nothing and raises ManifestError if the file is invalid,
        OpError if another apply is still in progress, if a change is
        refused (the error's `extra["refused"]` lists each, one line), or
        if the new metrics address cannot be bound. Otherwise starts the rollout and
        returns the plan; `reply_to` is answered once it is in force (or
        with a timeout fault after `timeout` seconds; it goes on).
        """
        if self.rollout is not None:
            raise OpError(Fault.UNAVAILABLE, "another apply is in progress (waiting for "
                          + ", ".join(self.rollout.pending()) + "); try again when it is done")
        self._refuse_during_change()
        # The file gives each group's count; the names stay the running ones.
        wanted = project(load_manifest(path), self.manifest, self.driver.retired)
        found = plan(self.manifest, wanted)
        if found.refused:
            raise OpError(Fault.BAD_REQUEST, f"{len(found.refused)} change(s) refused; "
                          "nothing was changed", refused=list(found.refused))
        if not found.changes:
            self._adopt(wanted)
            return found
        why = "apply " + display_path(wanted.path)
        if found.reconfigure:
            # The acceptors change: nothing else does (reconcile refused that).
            change = self._begin(wanted.agents, frozenset(), why)
            self._operation = _Operation(Pending.of(reply_to, timeout, monotonic()), change)
            return found
        # Planned before anything changes: a refusal leaves all as it was.
        agents = self._plan(wanted.agents, frozenset(), why) if found.membership_changed else None
        if {"metrics.listen", "metrics.enabled"} & found.live_keys:
            self._rebind_metrics(wanted)  # may fail: before anything else changes
        self._adopt(with_agents(wanted, self.manifest.agents))
        self.rollout = Rollout(self.fleet, found)
        self.rollout.start(monotonic())  # the settings first: new agents spawn with them
        if agents is not None:
            self._start(agents)
        for line in found.changes:
            log.info("apply: %s", line.line)
        self._operation = _Operation(Pending.of(reply_to, timeout, monotonic()), agents, found)
        self._advance(monotonic())
        return found

    # ------------------------------------------------- scale and replace

    def scale(self, group: str, replicas: int, reply_to: tuple[ClientConnection, Any] | None,
              timeout: float | None) -> dict[str, Any]:
        """Resize agent group `group` to `replicas` (paxosctl.membership);
        OpError if refused (nothing changed). The reply says what it does."""
        self._refuse_during_change()
        target = scale_target(self.manifest, group, replicas, self._taken())
        before = sum(1 for a in self.manifest.agents if a.group == group)
        why = f"scale {group} {before} -> {replicas}"
        if target == self.manifest.agents:
            return {"why": why, "unchanged": True}
        change = self._begin(target, frozenset(), why)
        self._operation = _Operation(Pending.of(reply_to, timeout, monotonic()), change)
        return _summary(change, self.driver.transition)

    def replace(self, name: str, force: bool, reply_to: tuple[ClientConnection, Any] | None,
                timeout: float | None) -> dict[str, Any]:
        """Replace agent `name` by a new member under its group's next name;
        `name` is retired for good. OpError if refused (nothing changed)."""
        self._refuse_during_change()
        agent = self.fleet.agents.get(name)
        if agent is None or name not in {a.name for a in self.manifest.agents}:
            raise OpError(Fault.BAD_REQUEST, f"no agent {name!r}; agents: "
                                             f"{', '.join(a.name for a in self.manifest.agents)}")
        if agent.state is AgentState.RUNNING and not agent.held and not force:
            raise OpError(Fault.BAD_REQUEST, f"{name} is running; replacing it retires a healthy "
                                             "member: add --force to replace it anyway")
        # Never a name that ran before: the new member must start empty.
        target, new = replace_target(self.manifest, name, self._taken() | self.fleet.members.names)
        change = self._begin(target, frozenset({name}), f"replace {name} with {new.name}")
        self._operation = _Operation(Pending.of(reply_to, timeout, monotonic()), change)
        return _summary(change, self.driver.transition)

    def _taken(self) -> set[str]:
        """Names a new agent may not take: retired ones and those that run.
        (`scale` may bring back a name it removed, with its files: that is
        the same member, its promises and votes intact.)"""
        return (set(self.driver.retired) | {a.name for a in self.manifest.agents}
                | set(self.fleet.agents))

    def _begin(self, target: tuple[AgentSpec, ...], retire: frozenset[str], why: str) -> ChangePlan:
        """Plan and start the membership change to `target` (OpError if refused)."""
        change = self._plan(target, retire, why)
        self._start(change)
        return change

    def _plan(self, target: tuple[AgentSpec, ...], retire: frozenset[str], why: str) -> ChangePlan:
        """The membership change to `target` from what runs (OpError if refused)."""
        config = self.roster.config
        current = Current(agents=self.manifest.agents,
                          decided=decided(config) if config is not None else None,
                          running=frozenset(a.name for a in self.fleet.running()),
                          retired=self.driver.retired)
        return self.driver.plan(current, Asked(target, retire, why))

    def _start(self, change: ChangePlan) -> None:
        self.driver.start(change, monotonic())
        self._write_endpoints()  # new agents are in it at once; removed ones leave at the end

    def _refuse_during_change(self) -> None:
        if self.rollout is not None:
            raise OpError(Fault.UNAVAILABLE, "an apply is in progress (waiting for "
                          + ", ".join(self.rollout.pending()) + "); try again when it is done")
        self.driver.refuse_if_busy()

    def _adopt(self, wanted: Manifest) -> None:
        """Run `wanted` from now on: what status compares and `up` recognizes."""
        self.manifest = wanted
        self.fleet.manifest = wanted
        write_pid_file(self.paths["pid"], cluster=wanted.name, manifest=str(wanted.path),
                       digest=manifest_digest(wanted))

    def _adopt_agents(self, agents: tuple[AgentSpec, ...]) -> None:
        """A membership change finished: the cluster runs `agents`."""
        self._adopt(with_agents(self.manifest, agents))

    def _advance(self, now: float) -> None:
        """Step the rollout and the membership change; answer the pending
        operation once both are done (or past its deadline)."""
        rollout = self.rollout
        if rollout is not None:
            rollout.step(now)
        finished = self.driver.advance(now)
        if finished is not None:
            self._write_endpoints()
        operation = self._operation
        if operation is not None and finished is not None:
            operation.finished = finished
        if rollout is not None and rollout.done and self.driver.transition is None:
            rollout.finish()
            self.rollout = None
            log.info("apply: in force%s", f" (restarted {', '.join(rollout.restarted)})"
                     if rollout.restarted else "")
        if operation is None:
            return
        if self.rollout is None and self.driver.transition is None:
            self._operation = None
            operation.answer(rollout)
        elif operation.pending is not None and operation.pending.late(now):
            waiting = self.rollout.pending() if self.rollout is not None else []
            change = self.driver.waiting()
            if change is not None:
                waiting.insert(0, change if operation.found is None else self.driver.busy or change)
            operation.time_out(", ".join(waiting))

    def _rebind_metrics(self, wanted: Manifest) -> None:
        """Serve metrics where `wanted` says (or stop); the old server closes
        only once the new one is bound, so a failure changes nothing."""
        old = self.metrics.server
        url = None
        listen = wanted.metrics
        if listen.enabled:
            try:
                port = self.metrics.serve(listen.host, listen.port)
            except OSError as e:
                raise OpError(Fault.BAD_REQUEST, f"{display_path(wanted.path)}: metrics.listen: "
                              f"cannot bind {listen.listen} ({e.strerror or e}); nothing was "
                              "changed; allowed: a free port, or port 0 for any") from None
            host = f"[{listen.host}]" if ":" in listen.host else listen.host
            url = f"http://{host}:{port}/metrics"
        else:
            self.metrics.server = None
        self.metrics_url = url
        if old is not None:
            # shutdown() waits for the server's poll loop: not on our loop.
            threading.Thread(target=lambda: (old.shutdown(), old.server_close()),
                             name="metrics-close", daemon=True).start()
        log.info("metrics %s", f"now at {url}" if url else "off")

    def _refresh_metrics(self) -> None:
        """Publish a fresh snapshot before a scrape; from another thread, via the loop
        (waiting at most 1s), since only the loop may read the fleet."""
        if self.loop.in_loop_thread():
            self.publisher.publish(monotonic())
            return
        done = threading.Event()

        def publish() -> None:
            self.publisher.publish(monotonic())
            done.set()
        self.loop.post(publish)
        done.wait(1.0)

    def _write_endpoints(self) -> None:
        """Tell clients where the data path is: `run/endpoints.json` (see
        paxosctl.client). Written whole, then renamed into place."""
        if self.claim.footprint is not None:
            self.claim.footprint.make_folder(self.paths["run"])  # gone since `up`? made, not chmod-ed
        body = endpoints_body(self.manifest, self.fleet.members.cluster_id,
                              self.roster.membership.proposers, self.roster.membership.learners,
                              self.fleet.settings.retain_slots)
        write_endpoints(self.paths["endpoints"], body)


class _Operation:
    """The long operation in progress: its `change` (membership) and/or
    `found` (an apply's plan, whose settings roll out), and who waits."""

    def __init__(self, pending: Pending | None, change: ChangePlan | None,
                 found: Plan | None = None) -> None:
        self.pending = pending
        self.change = change
        self.found = found
        #: The membership change, once finished.
        self.finished: Transition | None = None

    def answer(self, rollout: Rollout | None) -> None:
        """Everything is in force (or the membership change was undone)."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        t = self.finished
        if t is not None and t.error is not None:
            pending.fail(Fault.UNAVAILABLE, t.error)
        elif self.found is not None:
            pending.answer({"changes": [c.line for c in self.found.changes],
                            "restarted": rollout.restarted if rollout is not None else []})
        elif self.change is not None:
            pending.answer(_summary(self.change, t))

    def time_out(self, waiting: str) -> None:
        """Past the caller's deadline: say what is still awaited (it goes on)."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        if self.found is not None:
            pending.fail(Fault.TIMEOUT, f"the changes are made but not yet in force: waiting for "
                         f"{waiting} (it goes on; see paxosctl status)",
                         changes=[c.line for c in self.found.changes])
        elif self.change is not None:
            pending.fail(Fault.TIMEOUT, f"{self.change.why}: not yet in force: {waiting} "
                         "(it goes on; see paxosctl status)")


def _summary(change: ChangePlan, t: Transition | None) -> dict[str, Any]:
    """The reply of scale, replace and an apply of the acceptors."""
    return {**change.summary(), "epoch": t.epoch if t is not None else None,
            "in_force": t is not None and t.done and t.error is None, "restarted": []}
