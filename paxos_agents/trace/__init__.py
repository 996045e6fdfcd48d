"""The life of one slot, seen from the agents' protocol records. Pure.

The simulator (`python -m paxos_agents.sim --trace SLOT`) and `paxosctl
trace SLOT` both hand their records here: `records` builds a record from a
core message, `model.slot_life` orders a slot's records causally into
steps, `render.render` draws them, `SlotLife.to_json()` is `-o json`.

Imports point down: this package imports `paxos_agents.core` only.

`-o json` (`SlotLife.to_json()`), the ordered steps of one slot:

    {"slot": 5,
     "agents": ["acceptor-0", ...],                # every agent in a step
     "decided": {"learner-0": "9f3a01c2", ...},    # learner -> value digest
     "steps": [                                    # causal order (model.py)
       {"kind": "accept",                          # a record kind (message or "decided")
        "from": "proposer-0", "to": "acceptor-1",  # "to" null for a "decided" mark
        "ballot": "1.proposer-0" | null,
        "slots": [5, 5] | [first_slot, null],
        "status": "delivered" | "dropped" | "lost" | "not-seen" | "send-missing" | "local",
        "value": "9f3a01c2",                       # when the message carries one
        "votes": [[slot, ballot, digest], ...],    # promise: the votes it carried
        "promised": "3.proposer-1",                # nack
        "dropped": "chaos",                        # status "dropped": who dropped it
        "resend": true, "duplicates": 1,           # only when so
        "send": {"agent", "incarnation", "seq", "mono", "at"},   # absent: send-missing
        "recv": {... the same for the receipt ...},              # absent: not received
        "local": {...}},                           # a "decided" mark's own record
       ...],
     "gaps": [{"agent": "acceptor-2", "first": 120, "reason": "..."}]}
"""

from .model import Gap, Ring, SlotLife, Step, causal_order, covers, slot_life
from .records import digest, note, record
from .render import render

__all__ = ["Gap", "Ring", "SlotLife", "Step", "causal_order", "covers", "slot_life",
           "digest", "note", "record", "render"]
