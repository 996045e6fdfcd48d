"""Where `paxosctl top` gets what it shows, the way `status` and `describe` do.

Two sources, one interface (`Source`):

- `SupervisedSource`: a cluster run by a supervisor on this host. Each
  pass asks the supervisor for `status` (states, roles, restarts, the
  leader) and each agent it lists for its own view (an INFO `describe`
  over the data path, paxosctl.client.probe.survey: the counters, ballot,
  persist histogram and slots the rates and lags are made of). The
  supervisor is its truth: when it does not answer, the pass fails
  (`Unreachable`); an agent that does not answer only loses its rates.
- `AgentsSource`: agents run on their own (`paxosctl agent NAME`, on this
  host or others): each pass asks every agent the manifest names and any
  member an answering agent names, as `status` does with no supervisor.
  The pass fails when no agent answers.

Both also keep the agents' last protocol records (tail.RecordsTail, read
over the data path at each pass, the pane under the table), and give one
agent's describe page and its last log lines, for the keys Enter and `l`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from ..client.probe import survey
from ..endpoints import Endpoints, read_endpoints
from ..errors import PaxosctlError
from ..layout import paths
from ..logview import read
from ..views import describe_lines, own_view_lines
from .model import Sample, Snapshot, sample_from_view
from .tail import RecordsTail

if TYPE_CHECKING:
    from ..client.sync import Client
    from ..manifest import Manifest

#: Seconds the supervisor has to answer one request: a pass must not hang
#: the screen (its keys are not read meanwhile).
REQUEST_SECONDS = 2.0


class Unreachable(Exception):
    """This pass reached nobody: the supervisor (or every agent) did not
    answer. The message says who and why, in one line."""


class Source(Protocol):
    """What the screen asks, once a pass and on a key."""

    def snapshot(self) -> Snapshot:
        """Every agent now; `Unreachable` when nobody answered."""

    def records(self, agent: str | None, count: int) -> list[str]:
        """The newest `count` protocol records of `agent` (None: all), read at the last pass."""

    def describe(self, name: str) -> list[str]:
        """Agent `name`'s describe page, as `paxosctl describe NAME` prints it."""

    def logs(self, name: str, count: int) -> list[str]:
        """Agent `name`'s last `count` log lines, oldest first."""

    def close(self) -> None:
        """Let go of any connection."""


class SupervisedSource:
    """A cluster whose supervisor runs on this host (see the module docstring)."""

    def __init__(self, manifest: "Manifest", file: str,
                 connect: Callable[[], "Client"]) -> None:
        self.manifest = manifest
        self.file = file
        self._connect = connect   # a new control-socket client; PaxosctlError if none runs
        self._client: Client | None = None
        self.tail = RecordsTail()

    def _request(self, op: str, **fields: Any) -> dict[str, Any]:
        """One control request, connecting first if need be; `Unreachable`
        (and a new connection next time) when the supervisor does not answer."""
        try:
            if self._client is None:
                self._client = self._connect()
            return self._client.request(op, timeout=REQUEST_SECONDS, **fields)
        except PaxosctlError as e:
            self.close()
            raise Unreachable(str(e)) from None

    def _endpoints(self) -> Endpoints | None:
        """The data path's endpoints as the supervisor wrote them (read each
        pass: `scale` rewrites them); None when the file is gone."""
        try:
            return read_endpoints(paths(self.manifest.state_dir)["run"], self.file)
        except PaxosctlError:
            return None

    def snapshot(self) -> Snapshot:
        status = self._request("status", wide=False)
        mono = time.monotonic()
        rows = status["agents"]
        endpoints = self._endpoints()
        views: dict[str, dict[str, Any]] = {}
        running = tuple(r["name"] for r in rows if r["state"] == "running")
        if endpoints is not None and running:
            for answer in survey(endpoints, running, {"op": "describe"}, learn=False):
                if answer.answered:
                    views[answer.name] = answer.reply.get("agent") or {}
            self.tail.update(endpoints, views)
        leader = status.get("leader")
        samples = tuple(
            sample_from_view(r["name"], views.get(r["name"]), role=r["role"], state=r["state"],
                             restarts=r["restarts"], leader=r["name"] == leader)
            for r in rows)
        return Snapshot(mono=mono, cluster=status["cluster"], source="supervisor",
                        leader=leader, agents=samples)

    def records(self, agent: str | None, count: int) -> list[str]:
        return self.tail.lines(agent, count)

    def describe(self, name: str) -> list[str]:
        return describe_lines(self._request("describe", agent=name)["agent"])

    def logs(self, name: str, count: int) -> list[str]:
        logs_dir = paths(self.manifest.state_dir)["logs"]
        lines = read(Path(logs_dir), name)
        return [line.text for line in lines[-count:]] if count else []

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - a dead connection closes as it can
                pass
            self._client = None


class AgentsSource:
    """Agents run on their own, asked directly (see the module docstring)."""

    def __init__(self, manifest: "Manifest", endpoints: Endpoints) -> None:
        self.manifest = manifest
        self.endpoints = endpoints
        self.names: tuple[str, ...] = tuple(a.name for a in manifest.agents)
        #: Each agent's incarnation when first seen and the restarts seen since.
        self._incarnations: dict[str, Any] = {}
        self._restarts: dict[str, int] = {}
        self.tail = RecordsTail()

    def snapshot(self) -> Snapshot:
        answers = survey(self.endpoints, self.names, {"op": "describe"})
        mono = time.monotonic()
        self.names = tuple(dict.fromkeys(self.names + tuple(a.name for a in answers)))
        samples: list[Sample] = []
        for answer in answers:
            view = answer.reply.get("agent") if answer.answered else None
            if view is not None:
                self._count_restart(answer.name, view.get("incarnation"))
            samples.append(sample_from_view(answer.name, view,
                                            restarts=self._restarts.get(answer.name, 0)))
        if not any(s.answered for s in samples):
            why = next((a.error for a in answers if a.error), "no agent to ask")
            raise Unreachable(f"no agent answered ({why})")
        self.tail.update(self.endpoints, [s.name for s in samples if s.answered])
        leaders = {s.name for s in samples if s.leader}
        return Snapshot(mono=mono, cluster=self.manifest.name, source="agents",
                        leader=next(iter(leaders)) if len(leaders) == 1 else None,
                        agents=tuple(samples))

    def _count_restart(self, name: str, incarnation: Any) -> None:
        """One restart more when `name` answers with another incarnation than before."""
        before = self._incarnations.get(name)
        if before is not None and incarnation != before:
            self._restarts[name] = self._restarts.get(name, 0) + 1
        self._incarnations[name] = incarnation

    def _ask(self, name: str, request: dict[str, Any]) -> dict[str, Any]:
        answer = survey(self.endpoints, (name,), request, learn=False)[0]
        if not answer.answered:
            raise Unreachable(f"{name} did not answer: {answer.error}")
        return answer.reply

    def records(self, agent: str | None, count: int) -> list[str]:
        return self.tail.lines(agent, count)

    def describe(self, name: str) -> list[str]:
        return own_view_lines(self._ask(name, {"op": "describe"})["agent"])

    def logs(self, name: str, count: int) -> list[str]:
        """The end of `name`'s ring of recent lines, read page after page."""
        from paxos_agents.runtime.records import LOG_LINES, PAGE

        lines: list[str] = []
        since = 0
        for _ in range(LOG_LINES // PAGE + 2):  # a whole ring, then stop
            reply = self._ask(name, {"op": "logs", "since": since})
            lines += [item["line"] for item in reply["items"]]
            if len(reply["items"]) < PAGE:
                break
            since = reply["last"]
        return lines[-count:] if count else []

    def close(self) -> None:
        pass
