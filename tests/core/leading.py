"""Core-test helper: a proposer made leader of an empty log by hand.

    from core.leading import lead
    lead(node)   # node "p1" of a 3-acceptor membership "a1".."a3"
"""

from __future__ import annotations

from paxos_agents.core import Node, Prepare, Promise


def lead(node: Node, acceptors: tuple[str, ...] = ("a1", "a2")) -> None:
    """Tick `node` until it runs for leader (a Prepare leaves after its
    persist), then hand it the promises of `acceptors` (a majority, with no
    votes): it leads an empty log from slot 0. Its `ready()` is left undrained."""
    for _ in range(100):
        node.tick()
        if any(isinstance(m, Prepare) for m in node.ready().send_after_persist):
            break
    else:
        raise AssertionError("never ran for leader")
    for acceptor in acceptors:
        node.step(Promise(src=acceptor, dst=node.node_id, ballot=node.proposer.ballot,
                          first_slot=0, votes=()))
    assert node.is_leader
