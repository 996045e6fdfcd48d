"""The supervisor behind `paxosctl up`: the control plane of one cluster.

One thread runs the loop (`Supervisor.serve`) and owns all state. Each
turn it

1. waits (`paxosctl.loop`) on every agent's outbox and process sentinel,
   the control socket and its clients, and a wake-up pipe, and runs the
   handler each ready descriptor was registered with, then what other
   threads posted (the metrics server's, signal handlers);
2. serves the control socket (`paxosctl.control`) a bounded share per
   client, each request one operation of `paxosctl.ops.OPS`;
3. writes the agents' inbox pipes, and on its clock judges their health
   and restarts ended ones (`paxosctl.fleet`);
4. publishes a metrics snapshot when one is due (`paxosctl.snapshot`);
5. advances an `apply` in progress (`paxosctl.rollout`).

`apply` (the control op) and SIGHUP re-read the manifest and reconcile
the running cluster with it (`paxosctl.reconcile` says what changes and
how; one refused change refuses the whole apply).

It is not on the data path: agents talk to each other and clients talk
to proposers and learners directly, over the endpoints in `run/`
(paxos_agents.runtime.transport; `endpoints.json` tells clients where).
A supervisor stopped with SIGSTOP stalls no command, and its health
clock does not blame agents for the silence its own stall caused.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from functools import partial
from typing import Any

from .agents import monotonic
from .control import ClientConnection, ControlServer, Fault, OpError
from .endpoints import ENDPOINTS_VERSION
from .fleet import STOP_GRACE_SECONDS, Fleet
from .layout import paths
from .loop import Loop
from .manifest import Manifest, display_path, load_manifest
from .members import MemberRegistry
from .metrics import Metrics
from .errors import PaxosctlError
from .ops import dispatch
from .ownership import Claim, manifest_digest
from .pidfile import write_pid_file
from .reconcile import Plan, plan
from .rollout import Rollout
from .scaling import Scaler, summary
from .topology import Change, load as load_topology, project, with_agents
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
        # names, not the manifest's (see paxosctl.topology).
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
        self.fleet = Fleet(manifest, members, self.loop, self.paths)
        self.fleet.stored_history = topology.history if topology is not None else None
        #: `scale`, `replace` and acceptor changes by `apply` (paxosctl.scaling).
        self.scaler = Scaler(self.fleet, self.paths["topology"], topology, self._adopt)
        self._resume: Change | None = topology.change if topology is not None else None
        self.control = ControlServer(str(self.paths["socket"]), self.loop.selector,
                                     partial(dispatch, self))
        self.metrics = Metrics()
        self.metrics.collector.refresh = self._refresh_metrics
        self.metrics_url: str | None = None
        self.publisher = Publisher(self.fleet, self.metrics)
        self.publisher.changing = lambda: self.scaler.change is not None
        self._stopping = False
        #: `down` requests, answered once every agent has stopped.
        self._stop_replies: list[tuple[ClientConnection, Any]] = []
        #: The apply in progress, if any, and who waits for it (None: SIGHUP)
        #: until when.
        self.rollout: Rollout | None = None
        self._apply_reply: tuple[ClientConnection, Any] | None = None
        self._apply_deadline = 0.0

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
                self.scaler.resume(self.manifest, self._resume, monotonic())
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
            if self.rollout is not None:
                self._advance_rollout(now)
            if self.scaler.change is not None:
                self.scaler.advance(now)
                if self.scaler.change is None:
                    self._write_endpoints()
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
        wanted = project(load_manifest(path), self.manifest, self.scaler.retired)
        found = plan(self.manifest, wanted)
        if found.refused:
            raise OpError(Fault.BAD_REQUEST, f"{len(found.refused)} change(s) refused; "
                          "nothing was changed", refused=list(found.refused))
        if not found.changes:
            self._adopt(wanted)
            return found
        if found.reconfigure:
            # The acceptors change: the membership-change protocol, not a rollout.
            self.scaler.begin(self.manifest, wanted.agents, frozenset(),
                              "apply " + display_path(wanted.path), reply_to, timeout, monotonic())
            return found
        if {"metrics.listen", "metrics.enabled"} & found.live_keys:
            self._rebind_metrics(wanted)  # may fail: before anything else changes
        self._adopt(wanted)
        self.rollout = Rollout(self.fleet, found)
        self.rollout.start(monotonic())
        self._write_endpoints()  # removed agents leave it now; added ones are in it
        for change in found.changes:
            log.info("apply: %s", change.line)
        self._apply_reply = reply_to
        self._apply_deadline = monotonic() + timeout if timeout is not None else float("inf")
        self._advance_rollout(monotonic())
        return found

    # ------------------------------------------------- scale and replace

    def scale(self, group: str, replicas: int, reply_to: tuple[ClientConnection, Any] | None,
              timeout: float | None) -> dict[str, Any]:
        """Resize agent group `group` to `replicas` (paxosctl.scaling);
        OpError if refused (nothing changed). The reply says what it does."""
        self._refuse_during_change()
        target = self.scaler.scale_target(self.manifest, group, replicas)
        before = sum(1 for a in self.manifest.agents if a.group == group)
        if target == self.manifest.agents:
            return {"why": f"scale {group} {before} -> {replicas}", "unchanged": True}
        change = self.scaler.begin(self.manifest, target, frozenset(),
                                   f"scale {group} {before} -> {replicas}", reply_to, timeout,
                                   monotonic())
        self._write_endpoints()
        return summary(change)

    def replace(self, name: str, force: bool, reply_to: tuple[ClientConnection, Any] | None,
                timeout: float | None) -> dict[str, Any]:
        """Replace agent `name` by a new member under its group's next name;
        `name` is retired for good. OpError if refused (nothing changed)."""
        self._refuse_during_change()
        target, new = self.scaler.replace_target(self.manifest, name, force)
        change = self.scaler.begin(self.manifest, target, frozenset({name}),
                                   f"replace {name} with {new.name}", reply_to, timeout, monotonic())
        self._write_endpoints()
        return summary(change)

    def _refuse_during_change(self) -> None:
        if self.rollout is not None:
            raise OpError(Fault.UNAVAILABLE, "an apply is in progress (waiting for "
                          + ", ".join(self.rollout.pending()) + "); try again when it is done")
        change = self.scaler.change
        if change is not None:
            raise OpError(Fault.UNAVAILABLE, f"a membership change is in progress ({change.change.why}:"
                                             f" {change.pending()}); try again when it is done")

    def _adopt(self, wanted: Manifest) -> None:
        """Run `wanted` from now on: what status compares and `up` recognizes."""
        self.manifest = wanted
        self.fleet.manifest = wanted
        write_pid_file(self.paths["pid"], cluster=wanted.name, manifest=str(wanted.path),
                       digest=manifest_digest(wanted))

    def _advance_rollout(self, now: float) -> None:
        """Step the rollout; once it is done (or past the caller's deadline), answer."""
        rollout = self.rollout
        rollout.step(now)
        if rollout.done:
            rollout.finish()
            self.rollout = None
            self._write_endpoints()
            log.info("apply: in force%s", f" (restarted {', '.join(rollout.restarted)})"
                     if rollout.restarted else "")
            if self._apply_reply is not None:
                connection, request_id = self._apply_reply
                connection.reply({"id": request_id, "ok": True,
                                  "changes": [c.line for c in rollout.plan.changes],
                                  "restarted": rollout.restarted})
                self._apply_reply = None
        elif self._apply_reply is not None and now >= self._apply_deadline:
            connection, request_id = self._apply_reply
            connection.fail(request_id, Fault.TIMEOUT,
                            "the changes are made but not yet in force: waiting for "
                            + ", ".join(rollout.pending()) + " (it goes on; see paxosctl status)",
                            changes=[c.line for c in rollout.plan.changes])
            self._apply_reply = None

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
        p = self.manifest.paxos
        body = {
            "version": ENDPOINTS_VERSION,
            "cluster": self.manifest.name,
            "cluster_id": self.fleet.members.cluster_id,
            "proposers": list(self.fleet.membership.proposers),
            "learners": list(self.fleet.membership.learners),
            "retry_seconds": max(1.0, 4 * p.election_timeout),
            "max_value_bytes": p.max_value_bytes,
            "retain_slots": self.fleet.settings.retain_slots,
        }
        target = self.paths["endpoints"]
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(body, indent=1) + "\n")
        os.replace(tmp, target)
