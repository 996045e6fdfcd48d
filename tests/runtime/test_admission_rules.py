"""Admission's rules on their own (runtime/admission.py): no process, the
answers of a new store's peers fed in the order a test chooses. The
real-process cases are in test_amnesia.py."""

from __future__ import annotations

import pytest

from paxos_agents.core.settings import Membership
from paxos_agents.runtime.admission import AdmissionRefused, admission_for
from paxos_agents.runtime.handshake import Welcome

MEMBERS = Membership(("p0", "p1"), ("a0", "a1", "a2"), ("l0", "l1"))
OTHERS = ("p0", "p1", "a1", "a2", "l0", "l1")
NEVER = Welcome(incarnation=1)


class _Spec:
    def __init__(self, name: str, bootstrap: bool) -> None:
        self.name, self.membership, self.bootstrap = name, MEMBERS, bootstrap


class _NewStore:
    admitted = False
    incarnation = 1


def admission(name: str, bootstrap: bool):
    made = admission_for(_Spec(name, bootstrap), _NewStore())
    assert made is not None
    return made


def test_an_initial_member_first_started_late_is_admitted_when_nobody_ever_welcomed_it() -> None:
    """a0 never ran; the cluster decided slots meanwhile, so `bootstrap` is
    refused, and it was not added by a change: admitted once every other
    member has answered that it never welcomed it, not before."""
    decided = Welcome(incarnation=1, decided=True)
    for bootstrap in (False, True):  # a unit or pod spec may keep the flag
        late = admission("a0", bootstrap=bootstrap)
        answers = [late.hear(peer, decided) for peer in OTHERS]
        assert answers == [None] * 5 + [1], bootstrap


def test_bootstrap_after_a_decided_slot_waits_for_every_witness() -> None:
    """A wiped a0 that kept --bootstrap: a majority that never heard from it
    answers first, but one of them has decided slots, so only every
    member's word admits it, and p0, which it promised to, refuses it."""
    wiped = admission("a0", bootstrap=True)
    assert wiped.hear("l0", Welcome(incarnation=1, decided=True)) is None
    for peer in ("a1", "a2", "l1", "p1"):
        assert wiped.hear(peer, NEVER) is None, f"admitted before p0 answered (after {peer})"
    assert "still to answer: p0" in wiped.waiting_for()
    with pytest.raises(AdmissionRefused, match="p0 welcomed its incarnation 3"):
        wiped.hear("p0", Welcome(incarnation=2, welcomed=3))


def test_a_new_cluster_bootstraps_on_a_majority() -> None:
    first = admission("a0", bootstrap=True)
    assert [first.hear(peer, NEVER) for peer in ("p0", "a1", "l0")] == [None, None, 1]


def test_one_welcome_among_all_the_answers_refuses() -> None:
    wiped = admission("a0", bootstrap=False)
    for peer in OTHERS[:-1]:
        assert wiped.hear(peer, NEVER) is None
    with pytest.raises(AdmissionRefused, match="l1 welcomed its incarnation 4"):
        wiped.hear("l1", Welcome(incarnation=2, welcomed=4))


@pytest.mark.parametrize("bootstrap", [False, True])
def test_a_peer_saying_the_name_was_retired_refuses_it_at_once(bootstrap) -> None:
    """Issue 23: `replace` retired a0; a new store under that name (a wiped
    disk, a unit re-enabled by mistake) is refused by the first peer that
    knows, before any majority of other answers could admit it."""
    retired = admission("a0", bootstrap=bootstrap)
    assert retired.hear("a1", NEVER) is None
    with pytest.raises(AdmissionRefused, match="a0 was retired by a replace \\(p0 says so\\)"):
        retired.hear("p0", Welcome(incarnation=1, retired=True))
