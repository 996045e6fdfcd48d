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
4. publishes a metrics snapshot when one is due (`paxosctl.snapshot`).

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
import threading
from functools import partial
from typing import Any

from .agents import monotonic
from .control import ClientConnection, ControlServer
from .endpoints import ENDPOINTS_VERSION
from .fleet import Fleet
from .layout import paths
from .loop import Loop
from .manifest import Manifest
from .members import MemberRegistry
from .metrics import Metrics
from .ops import dispatch
from .ownership import Claim
from .snapshot import Publisher

log = logging.getLogger("paxosctl.supervisor")

#: SIGTERM, then this long for agents to finish, then SIGKILL.
STOP_GRACE_SECONDS = 5.0
#: How often the loop wakes with nothing to do (timers: health, backoff).
LOOP_WAKE_SECONDS = 0.02


class Supervisor:
    """Runs one cluster from a validated manifest until `down` or a signal.

    `claim` is this process's ownership of the state dir (ownership.claim):
    the supervisor writes there only as its owner, and `serve` releases it
    last. It is the `ops.Cluster` the control operations act on.
    """

    def __init__(self, manifest: Manifest, claim: Claim) -> None:
        self.manifest = manifest
        self.claim = claim
        self.paths = paths(manifest.state_dir)
        self.loop = Loop()
        #: Who ran here before: their stores must not go missing (see members.py).
        members = MemberRegistry(self.paths["members"], cluster_id=claim.identity.id)
        self.fleet = Fleet(manifest, members, self.loop, self.paths)
        self.control = ControlServer(str(self.paths["socket"]), self.loop.selector,
                                     partial(dispatch, self))
        self.metrics = Metrics()
        self.metrics.collector.refresh = self._refresh_metrics
        self.metrics_url: str | None = None
        self.publisher = Publisher(self.fleet, self.metrics)
        self._stopping = False
        #: `down` requests, answered once every agent has stopped.
        self._stop_replies: list[tuple[ClientConnection, Any]] = []

    # ------------------------------------------------------------ lifecycle

    def serve(self) -> None:
        """Start everything, run the loop until stopped, then stop every agent
        and release the state dir (see ownership.Claim)."""
        try:
            for key in ("logs", "state"):
                self.paths[key].mkdir(mode=0o700, parents=True, exist_ok=True)
            self.control.start()
            listen = self.manifest.metrics
            if listen.enabled:
                port = self.metrics.serve(listen.host, listen.port)
                host = f"[{listen.host}]" if ":" in listen.host else listen.host
                self.metrics_url = f"http://{host}:{port}/metrics"
                log.info("metrics at %s", self.metrics_url)
            self._write_endpoints()
            self.fleet.start(monotonic())
            log.info("cluster %s up: %d agents", self.manifest.name, len(self.fleet.agents))
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
            self.publisher.publish_if_due(now)
            control.flush()

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
        run = self.paths["run"]
        run.mkdir(mode=0o700, exist_ok=True)
        os.chmod(run, 0o700)
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
