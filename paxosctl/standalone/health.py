"""The standalone agent's HTTP probes: /healthz, /readyz, /metrics.

Plain HTTP on a port of its own: it serves no values and takes no actions,
so it needs no TLS even when the data path has it. A thread with
`http.server` that only reads the last heartbeat the agent's loop
published (`control.Board`): a probe never touches the loop.

- /healthz: 200 while the loop turns (a heartbeat newer than
  `STALE_BEATS` heartbeat intervals), else 503 and why.
- /readyz: 200 when the agent can do its part (`not_ready`), else 503 and why.
- /metrics: the agent's own Prometheus families, as the supervisor
  exports them for each agent (`paxosctl.supervisor.metrics.agent_families`),
  labelled with this one agent, plus what it knows of the cluster
  (`cluster_view`: leading, acceptor up, quorum, epochs) and this
  process's `process_*`.

Every answer is one line of text.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.registry import Collector

from paxos_agents.core.configs import majority
from paxos_agents.core.settings import Membership
from paxos_agents.runtime.control import Beat, Board
from paxos_agents.runtime.report import AgentReport

from ..supervisor.metrics import AgentSample, Snapshot, agent_families, report_gauges, report_totals
from .cluster_view import ClusterViewCollector

#: /healthz fails once the last heartbeat is older than this many intervals.
STALE_BEATS = 3


def not_ready(beat: Beat, name: str, membership: Membership) -> str | None:
    """Why agent `name` cannot do its part now (None: it can).

    Every role it plays must be ready:
    - a proposer: connected (either way) to a majority of the acceptors in
      force, itself included when it is one (it can lead); or, not
      leading, connected to the leader it knows of: a follower talks to no
      acceptor until it runs for leader, and forwards its clients'
      commands to the leader meanwhile;
    - an acceptor: connected to a proposer (or is one): a leader can reach
      it. Acceptors never talk to each other, so that is all it can know;
    - a learner: caught up (no slots left to copy from peers) and
      connected to a peer.
    """
    roles = membership.roles(name)
    connected = beat.connected | {name}
    stats = beat.report.get("stats", {})
    if "proposer" in roles:
        config = beat.report.get("config")
        acceptors = config["in_force"] if config else list(membership.acceptors)
        linked = sorted(a for a in acceptors if a in connected)
        leader = beat.report.get("leader_hint")
        follows = not beat.report.get("leader") and leader not in (None, name) \
            and leader in beat.connected
        if len(linked) < majority(len(acceptors)) and not follows:
            return (f"connected to {len(linked)} of {len(acceptors)} acceptors "
                    f"({', '.join(linked) or 'none'}); a majority is {majority(len(acceptors))}")
    if "acceptor" in roles and not connected & set(membership.proposers):
        return "connected to no proposer"
    if "learner" in roles:
        remaining = stats.get("catchup_remaining", 0)
        if remaining:
            return f"catching up: {remaining} slots to copy from peer learners"
        if not beat.connected:
            return "connected to no peer"
    return None


class _AgentCollector(Collector):
    """One agent's families from its latest heartbeat report."""

    def __init__(self, board: Board, role: str) -> None:
        self._board = board
        self._role = role

    def collect(self) -> Iterator[Any]:
        beat = self._board.latest
        if beat is None:
            return
        report = AgentReport.from_json(beat.report)
        ballot = report.ballot
        sample = AgentSample(
            name=report.name, role=self._role, up=True, stopped=False, restarts={},
            health_failures=0, cpu_seconds=0.0, rss_bytes=None, backoff_seconds=0.0,
            ballot_round=ballot[0] if ballot else None, totals=dict(report_totals(report)),
            gauges=report_gauges(report))
        # The lag gauges compare with the furthest learner's slot, which one
        # agent does not know: here they compare with its own (a learner's
        # lag is then 0; Prometheus computes the cluster's across agents).
        decided = report.decided_up_to if report.decided_up_to is not None else -1
        yield from agent_families(Snapshot(agents=(sample,), decided_slot=decided))


class Probes:
    """The HTTP server of one standalone agent (see the module docstring)."""

    def __init__(self, board: Board, name: str, role: str, membership: Membership,
                 heartbeat_seconds: float, host: str, port: int) -> None:
        self.board = board
        self.name = name
        self.membership = membership
        self.stale_after = STALE_BEATS * heartbeat_seconds
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_AgentCollector(board, role))
        self.registry.register(ClusterViewCollector(board, role, membership, self.stale_after))
        ProcessCollector(registry=self.registry)
        probes = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                status, body, kind = probes.answer(self.path.split("?", 1)[0])
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # probes every few seconds would drown the agent's log

        #: OSError (the port taken, an address not of this host) goes to the caller.
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        # A short poll: `close` (at the agent's exit) waits for it.
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.1,),
                                        name="probes", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str) -> tuple[int, str, str]:
        """(status, body, content type) of a GET of `path`."""
        text = "text/plain; charset=utf-8"
        beat = self.board.latest
        if path == "/metrics":
            return 200, generate_latest(self.registry).decode(), "text/plain; version=0.0.4"
        if path not in ("/healthz", "/readyz"):
            return 404, "not found; paths: /healthz, /readyz, /metrics\n", text
        if beat is None:
            return 503, "starting: no heartbeat yet\n", text
        age = time.monotonic() - beat.at
        if age > self.stale_after:
            return 503, f"stalled: the last heartbeat is {age:.1f} s old\n", text
        if path == "/healthz":
            return 200, "ok\n", text
        why = not_ready(beat, self.name, self.membership)
        return (503, f"not ready: {why}\n", text) if why else (200, "ready\n", text)
