"""The proposer's conflict rule: a request id outstanding here (queued or in
flight, not seen decided) with one payload refuses a client's command that
carries it with another payload; a repeat with the same payload is dropped;
an id decided, or forwarded to the leader, is not held here (core/intake.py).
The runtime answers each refusal with CONFLICT (runtime/proposals.py).

One table test, through the node's public inputs: the steps (a client's
batch, a leader heard, leading, a decision, a peer proposer's forward),
the refusals `Node.propose_batch` returns for the last batch, and what the
proposer sent on (Accepts at the leader, ClientRequests forwarded).
"""

from __future__ import annotations

import random

import pytest

from paxos_agents.core import (Accept, Ballot, ClientRequest, Command, Decide, Heartbeat,
                               Membership, Node, Record, Settings)
from paxos_agents.core.commands import Value

from core.leading import lead

MEMBERS = Membership(proposers=("p1", "p2"), acceptors=("a1", "a2", "a3"), learners=("l1",))


def commands(spec: str) -> tuple[Command, ...]:
    """"x=a y=b" -> (Command("x", b"a"), Command("y", b"b"))."""
    return tuple(Command(rid, payload.encode())
                 for rid, payload in (item.split("=") for item in spec.split()))


class Run:
    """A proposer p1 driven by the steps of one row; what it sent on, as text."""

    def __init__(self) -> None:
        self.node = Node("p1", MEMBERS, Settings(), Record(), random.Random(3))
        self.sent: list[str] = []
        self.refused: list[tuple[str, str, str]] = []

    def drain(self) -> None:
        for m in self.node.ready().send:
            if isinstance(m, Accept) and m.dst == "a1":
                self.sent += [f"accept {m.slot} {c.request_id}={c.payload.decode()}"
                              for c in m.value]
            elif isinstance(m, ClientRequest):
                c = m.command
                self.sent.append(f"forward {m.dst} {c.request_id}={c.payload.decode()}")

    def do(self, step: str) -> None:
        verb, _, arg = step.partition(" ")
        node = self.node
        if verb == "client":
            self.refused = [(c.command.request_id, c.command.payload.decode(),
                             c.first.payload.decode()) for c in node.propose_batch(commands(arg))]
        elif verb == "lead":
            lead(node)
        elif verb == "heard":  # a live leader elsewhere
            node.step(Heartbeat(src=arg, dst="p1", ballot=Ballot(50, arg), highest_slot=-1,
                                decided_up_to=-1))
        elif verb == "decided":  # "decided 0 x=a"
            slot, _, spec = arg.partition(" ")
            node.step(Decide(src="p2", dst="p1", slot=int(slot), value=Value.of(commands(spec))))
        elif verb == "forwarded":  # a peer proposer hands us a client's command
            [command] = commands(arg)
            node.step(ClientRequest(src="p2", dst="p1", command=command))
        else:
            raise ValueError(step)
        self.drain()


CASES = [
    # (id, steps, refusals of the last client batch (id, refused payload, first payload),
    #  what p1 sent on)
    ("queued-here-another-payload-is-refused",
     ["client x=a", "client x=b"], [("x", "b", "a")], []),
    ("queued-here-the-same-payload-is-dropped",
     ["client x=a", "client x=a", "lead"], [], ["accept 0 x=a"]),
    ("in-one-batch-the-first-holds-the-id",
     ["client x=a y=1 x=b", "lead"], [("x", "b", "a")], ["accept 0 x=a", "accept 0 y=1"]),
    ("in-flight-at-the-leader-another-payload-is-refused",
     ["lead", "client x=a", "client x=b y=1"], [("x", "b", "a")],
     ["accept 0 x=a", "accept 1 y=1"]),
    ("only-the-repeat-is-refused-the-rest-of-the-batch-goes-on",
     ["lead", "client x=a", "client y=1 x=b z=2 x=a"], [("x", "b", "a")],
     ["accept 0 x=a", "accept 1 y=1", "accept 1 z=2"]),
    ("decided-the-id-is-free-here-again",
     ["lead", "client x=a", "decided 0 x=a", "client x=b"], [],
     ["accept 0 x=a", "accept 1 x=b"]),
    ("a-follower-that-forwards-holds-nothing",
     ["heard p2", "client x=a", "client x=b"], [], ["forward p2 x=a", "forward p2 x=b"]),
    ("held-until-a-leader-shows-then-forwarded-and-free",
     ["client x=a", "heard p2", "client x=b"], [], ["forward p2 x=a", "forward p2 x=b"]),
    ("forwarded-to-us-by-a-proposer-then-another-payload-from-a-client",
     ["lead", "forwarded x=a", "client x=b"], [("x", "b", "a")], ["accept 0 x=a"]),
]


@pytest.mark.parametrize("steps, refused, sent", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_a_request_id_outstanding_here_refuses_another_payload(steps, refused, sent) -> None:
    run = Run()
    for step in steps:
        run.do(step)
    assert run.refused == refused
    assert run.sent == sent
