"""The life of one slot, from the protocol records of many agents. Pure.

`slot_life(records, slot, rings)` picks the records about `slot`, orders
them causally and pairs each send with its receipt into `Step`s:

- **Which records.** Those whose `slots` range holds the slot (accept,
  accepted, decide, retry, chunk, and the learners' local `decided`: the
  slot's *own* records); then the prepares and promises whose
  `[first_slot, null]` covers it, and the nacks, when their ballot is one
  the slot's own records carry (the phase 1 that made that ballot) or
  when they fall, in causal order, between the slot's first and last own
  record (a duel during its life). Heartbeats, stored and fetch are never
  drawn.
- **Causal order.** Each agent's records in its own order (incarnation,
  then seq); a receipt only after the send with the same `link`. Among
  events that causality leaves concurrent, the earlier `at` first, then the
  agent's name: clocks only break ties, they never put an effect before
  its cause. A receipt whose send is not among the records (gone from the
  sender's ring) is placed by its own agent's order alone.
- **Steps.** One per message, at the position of its send, with its
  receipt attached (`recv`); one per receipt whose send is gone
  (`status` "send-missing"); one per local `decided` (a mark). A send never
  received is "dropped" (the sender's chaos dropped it: the record says
  so) or "lost" (never received as far as the receiver's records go; when
  the receiver's ring lost records, "not-seen"). A message sent again
  with the same kind, ballot, slots and value to the same agent is a
  `resend`; a second receipt of one send (a duplicating network) is
  counted in `duplicates`. A message an agent sends itself (a replica's
  proposer to its own acceptor) has no link: its receipt is paired with
  the oldest unanswered self-send of the same kind, ballot and slots.
- **Values.** Agents name a value where it is first given (an Accept
  sent, a promise's votes, a Decide: trace.records says why). A step
  without one gets the value its (slot, ballot) was named with: an
  Accept's receipt and an Accepted that of their ballot (one value per
  ballot and slot), a learner's decision that of the Decide it received,
  else that of the highest ballot it received an Accepted in for the slot
  (it decided by counting a majority in one ballot, and every ballot above
  the one a value was chosen in proposes that value: P2c). None when no
  record names it (the proposer's records gone, no promise carried it) or
  the learner installed the slot from a peer's Chunk.
- **Gaps.** `rings` says, per agent, which records its ring still held
  when read (`first`, `missed`). An agent that lost records and misses its
  end of a drawn message (a send to it never seen, a receipt of its send
  whose send is gone) gets a `Gap`. A slot every ring lost is no life at
  all (`slot_life` returns None).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

Record = Mapping[str, Any]

#: Kinds whose `slots` name the slot they are about (the slot's own records).
OWN_KINDS = frozenset({"accept", "accepted", "decide", "retry", "chunk", "decided"})
#: Kinds drawn when they fall in the slot's life or carry one of its ballots.
PHASE1_KINDS = frozenset({"prepare", "promise", "nack"})


@dataclass(frozen=True, slots=True)
class Ring:
    """What one agent's ring held when it was read (the INFO reply's fields)."""

    incarnation: int
    first: int = 1          # oldest seq kept
    missed: bool = False    # the reader asked for records the ring no longer held

    @property
    def lost_records(self) -> bool:
        return self.missed or self.first > 1


@dataclass(slots=True)
class Step:
    """One arrow (a message) or one mark (a learner's decision) of the diagram."""

    kind: str
    src: str                      # the sender, or the deciding learner for a mark
    dst: str | None               # the receiver; None for a mark
    ballot: str | None
    slots: list | None
    status: str                   # delivered | dropped | lost | not-seen | send-missing | local
    send: Record | None = None    # the send record (None: send-missing)
    recv: Record | None = None    # the first receipt (None: not received)
    duplicates: int = 0
    resend: bool = False
    #: The value digest its (slot, ballot) was named with elsewhere (see Values).
    value: str | None = None

    def field(self, name: str) -> Any:
        """A kind-specific field (value, votes, promised, dropped) of the send,
        else the recv; a value not in either, the one `value` holds."""
        for record in (self.send, self.recv):
            if record is not None and name in record:
                return record[name]
        return self.value if name == "value" else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "from": self.src, "to": self.dst,
                               "ballot": self.ballot, "slots": self.slots,
                               "status": self.status}
        for name in ("value", "votes", "promised", "dropped"):
            v = self.field(name)
            if v is not None:
                out[name] = v
        if self.resend:
            out["resend"] = True
        if self.duplicates:
            out["duplicates"] = self.duplicates
        for end, record in (("send", self.send), ("recv", self.recv)):
            if record is not None:
                out[end] = {k: record.get(k) for k in ("agent", "incarnation", "seq", "mono", "at")}
                if self.kind == "decided":
                    out["local"] = out.pop(end)
        return out


@dataclass(frozen=True, slots=True)
class Gap:
    """Agent `agent`'s ring no longer held part of the slot's life."""

    agent: str
    first: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"agent": self.agent, "first": self.first, "reason": self.reason}


@dataclass(slots=True)
class SlotLife:
    """A slot's steps in causal order, the agents involved and what is missing."""

    slot: int
    steps: list[Step]
    agents: list[str]
    gaps: list[Gap] = field(default_factory=list)

    @property
    def decided(self) -> dict[str, str]:
        """Learner -> the value digest it decided in this slot."""
        return {s.src: s.field("value") for s in self.steps if s.kind == "decided"}

    def to_json(self) -> dict[str, Any]:
        return {"slot": self.slot, "agents": self.agents, "decided": self.decided,
                "steps": [s.to_json() for s in self.steps],
                "gaps": [g.to_json() for g in self.gaps]}


def covers(record: Record, slot: int) -> bool:
    """True if `record`'s slots range holds `slot` (`[lo, None]`: from lo on)."""
    slots = record.get("slots")
    if not slots:
        return False
    lo, hi = slots
    return lo <= slot and (hi is None or slot <= hi)


def _link(record: Record) -> tuple | None:
    link = record.get("link")
    return tuple(link) if link else None


def causal_order(records: Iterable[Record]) -> list[Record]:
    """`records` of many agents in one causal order (see the module doc)."""
    queues: dict[str, list[Record]] = {}
    for r in records:
        queues.setdefault(r["agent"], []).append(r)
    for q in queues.values():
        q.sort(key=lambda r: (r["incarnation"], r["seq"]), reverse=True)  # pop() takes the head
    sends = {_link(r) for q in queues.values() for r in q if r["dir"] == "send" and _link(r)}
    emitted: set[tuple] = set()
    out: list[Record] = []

    def ready(r: Record) -> bool:
        link = _link(r)
        return r["dir"] != "recv" or link is None or link not in sends or link in emitted

    while queues:
        heads = [(q[-1].get("at") or 0, agent) for agent, q in queues.items() if ready(q[-1])]
        if not heads:  # records that contradict causality (a cycle): take the earliest anyway
            heads = [(q[-1].get("at") or 0, agent) for agent, q in queues.items()]
        _, agent = min(heads)
        r = queues[agent].pop()
        if not queues[agent]:
            del queues[agent]
        link = _link(r)
        if r["dir"] == "send" and link:
            emitted.add(link)
        out.append(r)
    return out


def _steps(ordered: list[Record], rings: Mapping[str, Ring]) -> list[Step]:
    """Pair sends and receipts of `ordered` into steps, in order."""
    steps: list[Step] = []
    by_link: dict[tuple, Step] = {}
    # A message an agent sends itself (a replica's proposer to its own
    # acceptor) never crosses a connection, so it has no link: its receipt is
    # the oldest unanswered self-send of the same message, in the agent's order.
    to_self: dict[tuple, list[Step]] = {}
    seen: set[tuple] = set()
    for r in ordered:
        if r["dir"] == "local":
            steps.append(Step(r["kind"], r["agent"], None, r.get("ballot"), r.get("slots"),
                              "local", send=r))
            continue
        link = _link(r)
        if r["dir"] == "send":
            step = Step(r["kind"], r["agent"], r["peer"], r.get("ballot"), r.get("slots"), "",
                        send=r)
            key = (r["agent"], r["peer"], r["kind"], r.get("ballot"), tuple(r.get("slots") or ()),
                   r.get("value"))
            step.resend = key in seen
            seen.add(key)
            if r.get("dropped"):
                step.status = "dropped"
            if link:
                by_link[link] = step
            elif r["peer"] == r["agent"] and not r.get("dropped"):
                to_self.setdefault(_self_key(r), []).append(step)
            steps.append(step)
            continue
        found: Step | None = None
        if link:
            found = by_link.get(link)
        elif r["peer"] == r["agent"] and to_self.get(_self_key(r)):
            found = to_self[_self_key(r)].pop(0)
        if found is None:
            steps.append(Step(r["kind"], r["peer"], r["agent"], r.get("ballot"), r.get("slots"),
                              "send-missing", recv=r))
        elif found.recv is None:
            found.recv = r
        else:
            found.duplicates += 1
    for step in steps:
        if step.status:
            continue
        if step.recv is not None:
            step.status = "delivered"
        else:
            ring = rings.get(step.dst or "")
            step.status = "not-seen" if ring is not None and ring.lost_records else "lost"
    return steps


def _self_key(record: Record) -> tuple:
    """What pairs a message an agent sent itself with its receipt (no link)."""
    return (record["agent"], record["incarnation"], record["kind"], record.get("ballot"),
            tuple(record.get("slots") or ()))


def slot_life(records: Iterable[Record], slot: int,
              rings: Mapping[str, Ring] | None = None) -> SlotLife | None:
    """The life of `slot` in `records` (many agents'); None if no record is about it."""
    rings = rings or {}
    candidates = [r for r in records
                  if (r["kind"] in OWN_KINDS and covers(r, slot))
                  or (r["kind"] in PHASE1_KINDS and (r["kind"] == "nack" or covers(r, slot)))]
    if not any(r["kind"] in OWN_KINDS for r in candidates):
        return None
    steps = _steps(causal_order(candidates), rings)
    own = [i for i, s in enumerate(steps) if s.kind in OWN_KINDS]
    first, last = own[0], own[-1]
    ballots = {steps[i].ballot for i in own if steps[i].ballot}
    kept = [s for i, s in enumerate(steps)
            if s.kind in OWN_KINDS or s.ballot in ballots or first <= i <= last]
    agents = sorted({a for s in kept for a in (s.src, s.dst) if a})
    _name_values(steps, slot)
    return SlotLife(slot, kept, agents, _gaps(kept, rings))


def _ballot_key(ballot: str) -> tuple[int, str]:
    round_, _, node = ballot.partition(".")
    return (int(round_), node) if round_.lstrip("-").isdigit() else (-1, ballot)


def _name_values(steps: list[Step], slot: int) -> None:
    """Give steps that carry no value the one their (slot, ballot) was
    named with (the module docstring's Values)."""
    named: dict[str, str] = {}  # ballot -> value digest, for this slot
    for step in steps:
        if step.kind == "accept" and step.ballot and step.field("value") is not None:
            named.setdefault(step.ballot, step.field("value"))
        elif step.kind == "promise":
            for vote_slot, vote_ballot, value in step.field("votes") or ():
                if vote_slot == slot:
                    named.setdefault(vote_ballot, value)
    highest: dict[str, str] = {}  # learner -> the highest ballot it received an Accepted in
    told: dict[str, str | None] = {}  # learner -> the value a Decide or a Chunk gave it
    for step in steps:
        if step.kind in ("accept", "accepted") and step.field("value") is None:
            step.value = named.get(step.ballot or "")
        if step.recv is None or not step.dst:
            continue
        if step.kind == "accepted" and step.ballot:
            best = highest.get(step.dst)
            if best is None or _ballot_key(step.ballot) > _ballot_key(best):
                highest[step.dst] = step.ballot
        elif step.kind == "decide":
            told[step.dst] = step.field("value")
        elif step.kind == "chunk":
            told.setdefault(step.dst, None)  # installed from a peer: its value is not recorded
    for step in steps:
        if step.kind != "decided" or step.field("value") is not None:
            continue
        if step.src in told:
            # Learned from a leader's Decide or a peer's Chunk: the highest
            # Accepted it heard may be of a ballot below the chosen one.
            step.value = told[step.src]
        elif step.src in highest:
            step.value = named.get(highest[step.src])


def _gaps(steps: list[Step], rings: Mapping[str, Ring]) -> list[Gap]:
    """Agents whose ring lost records and that miss one end of a drawn message."""
    gaps = []
    for agent, ring in sorted(rings.items()):
        if ring.lost_records and any(
                (s.dst == agent and s.status == "not-seen")
                or (s.src == agent and s.status == "send-missing") for s in steps):
            gaps.append(Gap(agent, ring.first, "records of this slot left its ring"))
    return gaps
