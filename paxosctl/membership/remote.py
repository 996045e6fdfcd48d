"""An engine for agents the CLI does not run: `RemoteEngine` (a `driver.Engine`).

When no supervisor runs the cluster (agents run by `paxosctl agent NAME`
under Kubernetes or systemd, each on its own host), `paxosctl scale` and
`replace` drive the change from the operator's machine. What runs and
stops the processes is a `Launcher` (launchers.py: Kubernetes objects or
systemd units, printed or applied; a test's own); what the agents say is
asked of them, over the operator channel:

- the view comes from polling (`poll`, once per turn): every name the
  change involves is sent a client HELLO (`Poll`, paxosctl.client.probe
  `ask` in the CLI); an agent that answers and says it is admitted is
  RUNNING, one asked to start that does not answer yet is STARTING (or
  FAILED when the launcher knows it ended for good), one asked to stop is
  gone once it no longer answers. The leader and the configurations are
  what the answering proposers and learners say (the most advanced view);
- `Announce` becomes a versioned `members` record (the newest version any
  agent runs, plus one; the retired names that are no longer members;
  where to dial the members the manifest does not place), sent to every
  member that answers but leaves out the `leaving` ones, and sent again at
  each poll to any member that reports an older version, until each
  reports it;
- `Propose` is a `reconfig` admin frame to the leader (a refusal sets the
  view's `refused`, so the transition asks again soon);
- `StartAgent` / `StopAgent` go to the launcher; `Note`s are printed.

The agents' answers and the frames are behind `Poll` and `Admin` (the CLI
passes the real ones; tests may pass fakes), so this module keeps to the
membership wing's imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol

from paxos_agents.core.configs import History
from paxos_agents.core.settings import Membership

from ..manifest import AgentSpec
from .change import Action, Announce, Liveness, Note, Propose, StartAgent, StopAgent, View
from .plan import Decided


class Launcher(Protocol):
    """What starts and stops agent processes on the engine."""

    def start(self, spec: AgentSpec, why: str) -> None:
        """Run agent `spec` (a name a change added: no --bootstrap)."""

    def stop(self, name: str, why: str, retired: bool) -> None:
        """Stop agent `name` for good (its volume stays)."""

    def failed(self, name: str) -> str | None:
        """Why `name` ended for good (e.g. exit 78), if the launcher can tell; else None."""


#: ask(names) -> {name: the WELCOME dict it answered, or None when it did not}.
Poll = Callable[[tuple[str, ...]], Mapping[str, "dict[str, Any] | None"]]
#: admin(name, frame) -> None when done, else the one-line refusal or failure.
Admin = Callable[[str, dict[str, Any]], "str | None"]


@dataclass
class _Record:
    """The membership record being announced, and who still runs an older one."""

    version: int
    frame: dict[str, Any]
    to: frozenset[str]


@dataclass
class RemoteEngine:
    """`driver.Engine` over agents on their own hosts (module docstring)."""

    poll_agents: Poll
    admin: Admin
    launcher: Launcher
    #: Every name to watch: the members now (more are added as actions name them).
    names: set[str]
    #: Names retired for good (the driver's and the cluster's record's).
    retired: set[str] = field(default_factory=set)
    #: Where to dial members the manifest does not place (name -> "host:port").
    place: Callable[[Iterable[str]], Mapping[str, str]] = lambda names: {}
    say: Callable[[str], None] = lambda line: None
    #: The newest membership record version any agent runs (0: the manifest's).
    version: int = 0
    #: Every name ever a member (the record's `used`): grows with each announcement.
    used: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._answers: dict[str, dict[str, Any]] = {}
        self._started: set[str] = set()
        self._stopping: set[str] = set()
        self._refused = False
        self._record: _Record | None = None

    # ------------------------------------------------------------- polling

    def poll(self) -> None:
        """Ask every watched agent now; resend the record to members behind it."""
        answers = self.poll_agents(tuple(sorted(self.names)))
        self._answers = {n: w for n, w in answers.items() if w is not None}
        for welcome in self._answers.values():
            v = welcome.get("members_version")
            if type(v) is int and v > self.version and self._record is None:
                self.version = v
        for name in list(self._stopping):
            if name not in self._answers:
                self._stopping.discard(name)
                self.names.discard(name)  # gone: a stopped agent is no longer watched
        self._resend()

    def reported(self, name: str) -> dict[str, Any] | None:
        """`name`'s last answer (its WELCOME), None if it did not answer."""
        return self._answers.get(name)

    # ----------------------------------------------------------- the Engine

    def view(self) -> View:
        agents: dict[str, Liveness] = {}
        for name in self.names:
            welcome = self._answers.get(name)
            if welcome is not None:
                agents[name] = (Liveness.RUNNING if welcome.get("admitted", True)
                                else Liveness.STARTING)
            elif name in self._stopping:
                agents[name] = Liveness.STARTING  # still ending: not gone until it stops answering
            elif name in self._started:
                agents[name] = (Liveness.FAILED if self.launcher.failed(name) is not None
                                else Liveness.STARTING)
            else:
                agents[name] = Liveness.STARTING  # a member that does not answer now
        return View(agents=agents, leader=self._leader(), decided=self._decided(),
                    refused=self._refused)

    def history(self) -> History | None:
        return None  # the agents keep it; topology.json here records names only

    def carry_out(self, action: Action, now: float) -> None:
        if isinstance(action, Announce):
            self._announce(action.membership, action.leaving)
        elif isinstance(action, StartAgent):
            name = action.spec.name
            self.names.add(name)
            self._started.add(name)
            self.say(f"starting {name} ({action.why})")
            self.launcher.start(action.spec, action.why)
        elif isinstance(action, StopAgent):
            self._stopping.add(action.name)
            if action.retired:
                self.retired.add(action.name)
            self.say(f"stopping {action.name} ({action.why}; its volume stays)")
            self.launcher.stop(action.name, action.why, action.retired)
        elif isinstance(action, Propose):
            self._refused = False
            why = self.admin(action.leader, {"op": "reconfig", "acceptors": list(action.acceptors)})
            if why is not None:
                self._refused = True
                self.say(f"{action.leader} did not take the proposal of epoch {action.epoch}: "
                         f"{why}; asking again")
        elif isinstance(action, Note):
            self.say(("warning: " if action.warning else "") + action.text)
        else:  # pragma: no cover - a new action kind needs its line here
            raise TypeError(f"unknown action {action!r}")

    # ------------------------------------------------------------- helpers

    def _announce(self, membership: Membership, leaving: frozenset[str]) -> None:
        members = tuple(dict.fromkeys((*membership.proposers, *membership.acceptors,
                                       *membership.learners)))
        self.version += 1
        frame = {"op": "members", "version": self.version,
                 "proposers": list(membership.proposers), "acceptors": list(membership.acceptors),
                 "learners": list(membership.learners),
                 # A name is retired in the record once it is no member (until then a
                 # removed acceptor still votes for the old configuration's slots).
                 "retired": sorted(self.retired - set(members)),
                 "addresses": dict(self.place(members)),
                 "used": sorted(self.used.union(members, self.retired))}
        self.used.update(members)
        self.names.update(members)
        self._record = _Record(self.version, frame, frozenset(members) - leaving)
        self._resend()

    def _resend(self) -> None:
        """Send the record to each of its members that answers with an older version."""
        record = self._record
        if record is None:
            return
        for name in sorted(record.to):
            welcome = self._answers.get(name)
            if welcome is None or welcome.get("members_version", 0) >= record.version:
                continue
            why = self.admin(name, record.frame)
            if why is None:
                welcome["members_version"] = record.version
            elif "not newer" in why:
                # Someone announced a newer record meanwhile (another operator):
                # leave it; the transition's view shows the truth.
                self.say(f"{name} runs a newer membership record than version "
                         f"{record.version}: {why}")

    def _leader(self) -> str | None:
        """The proposer that says it leads, else the one most answers name."""
        hints: dict[str, int] = {}
        for name, welcome in self._answers.items():
            leader = welcome.get("leader")
            if leader == name:
                return name
            if isinstance(leader, str) and leader in self._answers:
                hints[leader] = hints.get(leader, 0) + 1
        return max(hints, key=lambda n: hints[n]) if hints else None

    def _decided(self) -> Decided | None:
        """The most advanced configuration view among the answers."""
        best: Decided | None = None
        for welcome in self._answers.values():
            epoch, in_force = welcome.get("epoch"), welcome.get("in_force_epoch")
            acceptors = welcome.get("acceptors")
            if type(epoch) is not int or type(in_force) is not int or not isinstance(acceptors, list):
                continue
            found = Decided(epoch, tuple(acceptors), in_force, -1 if in_force >= epoch else 0)
            if best is None or (found.epoch, found.in_force_epoch) > (best.epoch, best.in_force_epoch):
                best = found
        return best
