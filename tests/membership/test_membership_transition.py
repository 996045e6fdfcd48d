"""The membership transition and plan as tables: a view in, actions and a
stage out. No process, no file, no clock (every step passes `now`)."""

from __future__ import annotations

import pytest

from paxos_agents.core.settings import Membership
from paxosctl.supervisor.control import Fault
from paxosctl.membership.change import (
    Announce, Liveness, Propose, Stage, StartAgent, StopAgent, Transition, View)
from paxosctl.membership.plan import Asked, ChangePlan, Current, Decided, Refusal, plan_change

from .fake import specs

R, S, F = Liveness.RUNNING, Liveness.STARTING, Liveness.FAILED
P = [*specs("proposer", 1)]
L = [*specs("learner", 1)]
A3 = specs("acceptor", 3)
A4 = specs("acceptor", 4)
OLD = (*P, *A3, *L)
NEW = (*P, *A4, *L)
BASE = {"proposer-0": R, "acceptor-0": R, "acceptor-1": R, "acceptor-2": R, "learner-0": R}
THREE = ("acceptor-0", "acceptor-1", "acceptor-2")
FOUR = (*THREE, "acceptor-3")


def grow() -> Transition:
    found = plan_change(Current(OLD, Decided(0, THREE, 0), frozenset(BASE)),
                        Asked(NEW, frozenset(), "scale acceptor 3 -> 4"))
    assert isinstance(found, ChangePlan) and found.reconfigures
    return Transition(found)


def shrink() -> Transition:
    found = plan_change(Current(NEW, Decided(1, FOUR, 1), frozenset({*BASE, "acceptor-3"})),
                        Asked(OLD, frozenset(), "scale acceptor 4 -> 3"))
    return Transition(found)


def kinds(actions) -> list[str]:
    out = []
    for a in actions:
        if isinstance(a, StartAgent):
            out.append(f"start {a.spec.name}")
        elif isinstance(a, StopAgent):
            out.append(f"stop {a.name}")
        elif isinstance(a, Propose):
            out.append(f"propose {a.epoch} to {a.leader}")
        elif isinstance(a, Announce):
            out.append("announce " + ",".join(a.membership.acceptors)
                       + (" leaving " + ",".join(sorted(a.leaving)) if a.leaving else ""))
        else:
            out.append("note")
    return out


# (view, now, actions, stage after): one row per step, in order.
GROW = [
    (View(BASE, "proposer-0", Decided(0, THREE, 0)), 0.0,
     ["announce " + ",".join(FOUR), "start acceptor-3"], Stage.STARTING),
    (View({**BASE, "acceptor-3": S}, "proposer-0", Decided(0, THREE, 0)), 1.0, [], Stage.STARTING),
    (View({**BASE, "acceptor-3": R}, "proposer-0", Decided(0, THREE, 0)), 2.0,
     ["propose 1 to proposer-0"], Stage.PROPOSING),
    (View({**BASE, "acceptor-3": R}, "proposer-0", Decided(0, THREE, 0)), 3.0, [], Stage.PROPOSING),
    (View({**BASE, "acceptor-3": R}, "proposer-0", Decided(0, THREE, 0)), 4.0,
     ["propose 1 to proposer-0"], Stage.PROPOSING),  # 2 s without a decision: again
    (View({**BASE, "acceptor-3": R}, "proposer-0", Decided(1, FOUR, 0, 70)), 4.5, [],
     Stage.IN_FORCE),
    (View({**BASE, "acceptor-3": R}, "proposer-0", Decided(1, FOUR, 1)), 5.0,
     ["note", "announce " + ",".join(FOUR)], Stage.DONE),
]

SHRINK = [
    (View({**BASE, "acceptor-3": R}, "proposer-0", Decided(1, FOUR, 1)), 0.0,
     ["announce " + ",".join(FOUR) + " leaving acceptor-3", "propose 2 to proposer-0"],
     Stage.PROPOSING),
    # Decided, not in force: acceptor-3 keeps running (a slot of epoch 1 may need it).
    (View({**BASE, "acceptor-3": R}, "proposer-0", Decided(2, THREE, 1, 90)), 1.0, [],
     Stage.IN_FORCE),
    (View({**BASE, "acceptor-3": R}, "proposer-0", Decided(2, THREE, 1, 90)), 9.0, [],
     Stage.IN_FORCE),
    (View({**BASE, "acceptor-3": R}, "proposer-0", Decided(2, THREE, 2)), 10.0,
     ["note", "announce " + ",".join(THREE) + " leaving acceptor-3", "stop acceptor-3"],
     Stage.STOPPING),
    (View({**BASE, "acceptor-3": F}, "proposer-0", Decided(2, THREE, 2)), 11.0, [], Stage.STOPPING),
    (View(BASE, "proposer-0", Decided(2, THREE, 2)), 12.0, [], Stage.DONE),
]

UNDO = [
    (View(BASE, "proposer-0", Decided(0, THREE, 0)), 0.0,
     ["announce " + ",".join(FOUR), "start acceptor-3"], Stage.STARTING),
    (View({**BASE, "acceptor-3": F}, "proposer-0", Decided(0, THREE, 0)), 1.0,
     ["note", "announce " + ",".join(THREE) + " leaving acceptor-3", "stop acceptor-3"],
     Stage.UNDOING),
    (View(BASE, "proposer-0", Decided(0, THREE, 0)), 2.0, [], Stage.UNDONE),
]


@pytest.mark.parametrize("make, table", [(grow, GROW), (shrink, SHRINK), (grow, UNDO)],
                         ids=["grow", "shrink", "undo"])
def test_transition_table(make, table):
    t = make()
    for i, (view, now, actions, stage) in enumerate(table):
        assert kinds(t.step(view, now)) == actions, i
        assert t.stage is stage, i
    assert t.done


def test_no_leader_no_proposal_and_a_refusal_is_retried_soon():
    t = grow()
    view = {**BASE, "acceptor-3": R}
    t.step(View(BASE, None, Decided(0, THREE, 0)), 0.0)
    assert t.step(View(view, None, Decided(0, THREE, 0)), 1.0) == []
    assert t.pending(View(view, None)) == f"{Stage.PROPOSING.value} (no leader yet)"
    assert kinds(t.step(View(view, "proposer-0", Decided(0, THREE, 0)), 1.1)) == ["propose 1 to proposer-0"]
    refused = View(view, "proposer-0", Decided(0, THREE, 0), refused=True)
    assert kinds(t.step(refused, 1.2)) == ["propose 1 to proposer-0"]


def test_a_proposer_change_announces_then_starts_then_stops():
    found = plan_change(Current(OLD, Decided(0, THREE, 0), frozenset(BASE)),
                        Asked((*specs("proposer", 1, start=1), *A3, *L), frozenset(), "apply"))
    t = Transition(found)
    first = t.step(View(BASE, "proposer-0"), 0.0)
    assert first[0] == Announce(Membership(("proposer-1",), THREE, ("learner-0",)),
                                frozenset({"proposer-0"}))
    assert kinds(first[1:]) == ["start proposer-1"]
    assert t.step(View({**BASE, "proposer-1": S}, "proposer-0"), 1.0) == []
    assert kinds(t.step(View({**BASE, "proposer-1": R}, "proposer-0"), 2.0)) == \
        ["announce " + ",".join(THREE) + " leaving proposer-0", "stop proposer-0"]


CURRENT = Current(OLD, Decided(0, THREE, 0), frozenset(BASE), retired=frozenset({"acceptor-9"}))
REFUSALS = [
    (CURRENT, (*P, *L), Fault.BAD_REQUEST, "the cluster would have no acceptor"),
    (CURRENT, (*P, *A3, *L, specs("acceptor", 1, start=9)[0]), Fault.BAD_REQUEST,
     "acceptor-9: retired by a replace"),
    (Current(OLD, Decided(0, THREE, 0), frozenset(BASE), pending="scale: waiting"), NEW,
     Fault.UNAVAILABLE, "a membership change is in progress (scale: waiting)"),
    (Current(OLD, None, frozenset(BASE)), NEW, Fault.UNAVAILABLE,
     "the cluster's configuration is not known yet"),
    (Current(OLD, Decided(1, THREE, 0, 40), frozenset(BASE)), NEW, Fault.UNAVAILABLE,
     "configuration epoch 1 is decided but not yet in force"),
    (CURRENT, (*P, A3[0], *L), Fault.BAD_REQUEST,
     "removing 2 of 3 acceptors at once (acceptor-1, acceptor-2) is more than a minority"),
    (Current(OLD, Decided(0, THREE, 0), frozenset({"acceptor-0"})), NEW, Fault.UNAVAILABLE,
     "only 1 of the 3 acceptors run (acceptor-0); deciding a change needs 2"),
]


@pytest.mark.parametrize("current, target, fault, message", REFUSALS)
def test_plan_refusals(current, target, fault, message):
    found = plan_change(current, Asked(tuple(target), frozenset(), "change"))
    assert isinstance(found, Refusal) and found.fault is fault
    assert found.message.startswith(message), found.message


def test_plan_of_proposers_only_needs_no_configuration():
    """No acceptor changes: allowed before any configuration is known."""
    found = plan_change(Current(OLD, None, frozenset()),
                        Asked((*specs("proposer", 2), *A3, *L), frozenset(), "scale"))
    assert isinstance(found, ChangePlan) and not found.reconfigures
    assert [a.name for a in found.added] == ["proposer-1"] and found.removed == ()
