"""Amnesia: when an agent whose store is new may take part in its cluster.

An acceptor that lost its disk and starts empty may vote against what it
promised, or vote twice in a slot; a proposer may reuse a ballot round.
Either can undo a chosen value. A certificate is no proof of state (in
Kubernetes a Secret outlives a lost volume), and the supervisor's "has run
before" registry lives on one host. So the agent's own store decides, with
its peers' memory as the witness: every agent keeps, in its store, the
newest incarnation it welcomed from each member (transport's `Greeter`).

The rules, in order:

- A store that has run (its admitted marker is set: it was admitted once,
  or it was migrated from a release before the marker) is admitted at once.
- A new store is not admitted yet. Until it is, the agent steps no
  protocol message and sends none (nothing may leave an amnesic acceptor:
  a promise or vote it forgot could undo a chosen value), but it dials
  every other member with a HELLO marked `fresh` and reads what each
  WELCOME says of it (`handshake.Welcome`): the newest incarnation that
  peer welcomed from it (0: never), whether the peer has anything decided
  or voted, and whether the agent's name was added by a change.
  (Messages a replica sends to its own roles never cross the transport:
  they change only its own new store, which no peer sees.)
- A learner-only agent is always admitted: a learner may start empty, it
  copies the decided log from its peers. It waits only until peers that
  make, with itself, a majority of all members have answered, and moves
  its incarnation past the highest one any of them welcomed from it
  (persisted), so that its next HELLOs are not refused as stale.
- With the `bootstrap` flag (a new cluster's first start): admitted once
  itself and the peers that answered "never welcomed you, nothing
  decided" make a majority of all members; refused as soon as any peer
  answers that it welcomed it before.
- Without it: admitted once itself and the peers that answered "never
  welcomed you, and your name was added by a change" make a majority;
  refused as soon as any peer answers that it welcomed it. A member that
  ran before and lost its disk is welcomed by the peers it talked to, so
  it is refused; one that a change added (`paxosctl scale`, `replace`) is
  admitted by its peers' word.
- Either way, admitted once every other member has answered and none ever
  welcomed it; and once a peer answers that it has decided slots, only so
  (the majority rule of `bootstrap` no longer applies). A member's
  promises and votes go to proposers and learners, its Prepares and
  Accepts to acceptors, and each records a welcome in its store before it
  answers, so if nobody welcomed it, it never ran where anyone heard. This
  admits an initial member that first starts after its cluster decided
  slots (a late pod, a host that was down at the start) and keeps out a
  wiped one that still has `bootstrap` in its unit or pod spec: the
  witnesses of its past (the proposer it promised to, the learners it
  voted to) all answer before it is admitted. (The issue asked for a
  refusal on a peer's decided slot; that refused the late member for
  good, with no safety gained over waiting for every witness.)
- A majority of answers can still come before a witness's: a wiped agent
  started with a lingering `bootstrap` in a cluster that has decided
  nothing yet (only elected a leader) is admitted if the majority that
  answers first never heard from it. Closing that would mean waiting for
  every member on every first start.
- A cluster of one member is admitted at once: it is its own majority.
- A peer that answers that the agent's name was retired (`paxosctl
  replace`: runtime/members.py) refuses it, whatever the other rules say.
- Refused: the agent exits with `frames.EXIT_NEEDS_OPERATOR` and one line
  naming the peer and the incarnation it found, and the way out
  (`paxosctl replace NAME`, or restore the disk).

Admission is written to the store (`Incarnations.admit`) before the agent
sends anything: from then on the store has run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .handshake import Welcome


class AdmissionRefused(Exception):
    """This agent's new store may not take part: the text is the one line to show."""


@dataclass
class Admission:
    """The rules above for one agent whose store is new.

    `hear(peer, welcome)` takes each peer's answer to a fresh HELLO (the
    latest answer of a peer replaces its earlier one) and returns the
    incarnation to be admitted with (>= `incarnation`), or None to keep
    waiting; it raises `AdmissionRefused` for a refusal.
    """

    name: str
    members: frozenset[str]
    incarnation: int
    learner_only: bool
    bootstrap: bool
    answers: dict[str, Welcome] = field(default_factory=dict)
    #: A peer answered that it has decided slots: the cluster is not new.
    decided_seen: bool = False

    @property
    def majority(self) -> int:
        return len(self.members) // 2 + 1

    def hear(self, peer: str, welcome: Welcome) -> int | None:
        if peer == self.name or peer not in self.members:
            return None
        self.answers[peer] = welcome
        if welcome.retired:
            raise AdmissionRefused(
                f"{self.name} was retired by a replace ({peer} says so): a retired name never "
                f"takes part again; remove its unit or StatefulSet (its files stay)")
        if self.learner_only:
            if 1 + len(self.answers) < self.majority:
                return None
            return max([self.incarnation] + [w.welcomed + 1 for w in self.answers.values()])
        if welcome.welcomed:
            raise AdmissionRefused(
                f"{self.name} starts with an empty store, but {peer} welcomed its incarnation "
                f"{welcome.welcomed} before: it ran and lost its state, and starting empty could "
                f"undo its promises and votes; restore its disk, or replace the member: "
                f"paxosctl replace {self.name}")
        if welcome.decided:
            self.decided_seen = True
        if self.members - {self.name} <= self.answers.keys():
            return self.incarnation  # nobody ever welcomed it (a welcome was refused above)
        if self.bootstrap and self.decided_seen:
            return None  # not a new cluster: only every member's word admits it
        return self.incarnation if 1 + self._agreeing() >= self.majority else None

    def _agreeing(self) -> int:
        """Peers whose answer counts toward admission (all answers, for a learner)."""
        if self.learner_only:
            return len(self.answers)
        return sum(1 for w in self.answers.values()
                   if not w.welcomed and (not w.decided if self.bootstrap else w.added))

    def waiting_for(self) -> str:
        """What admission still waits for, for the log."""
        if self.decided_seen and self.bootstrap:
            silent = sorted(self.members - {self.name} - self.answers.keys())
            return (f"every other member to answer that it never welcomed {self.name} (a peer has "
                    f"decided slots: this cluster is not new); still to answer: {', '.join(silent)}")
        how = ("never welcomed it, nothing decided" if self.bootstrap
               else "any answer" if self.learner_only else "never welcomed it, a change added it")
        return (f"{self.majority - 1} of the other {len(self.members) - 1} members to answer "
                f"({how}); {len(self.answers)} answered, {self._agreeing()} so")


def admission_for(spec, store) -> Admission | None:
    """The `Admission` an agent of `spec` (an `AgentSpec`) must pass, or None
    if its store (`Incarnations`) has run already."""
    if store.admitted:
        return None
    members = spec.membership
    admission = Admission(name=spec.name,
                          members=frozenset(members.proposers) | frozenset(members.acceptors)
                          | frozenset(members.learners),
                          incarnation=store.incarnation,
                          learner_only=members.roles(spec.name) == frozenset({"learner"}),
                          bootstrap=spec.bootstrap)
    if admission.majority <= 1:
        # A cluster of one: no peer to ask, and the agent alone is the
        # majority every rule asks for. (Nobody can witness that it lost
        # its state: the supervisor's registry is its only guard.)
        store.admit(store.incarnation)
        return None
    return admission


def peer_facts(node, initial, name: str) -> dict:
    """What this agent's WELCOME to a fresh HELLO from `name` says of it
    (`handshake.Welcome`), from its `node` (core.node.Node) and the
    membership it started with (`initial`): whether the node has a decided
    slot or a vote ("decided"), and whether `name` was added by a change
    ("added": not in `initial`, or added by an epoch of the node's
    configuration history after the first)."""
    status = node.status()
    acceptor = node.acceptor
    decided = (status.decided_up_to is not None and status.decided_up_to >= 0) or (
        acceptor is not None and (acceptor.compacted > 0
                                  or bool(acceptor.votes_from(acceptor.compacted))))
    added = name not in {*initial.proposers, *initial.acceptors, *initial.learners}
    if status.config is not None:
        configs = status.config.history.configs
        added = added or (name not in configs[0].acceptors
                          and any(name in c.acceptors for c in configs[1:]))
    return {"decided": decided, "added": added}
