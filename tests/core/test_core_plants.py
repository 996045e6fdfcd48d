"""Planted bugs are subclasses that `Node` picks only when `Settings.plant` names them.

Whether each one is *caught* is tests/sim/test_sim_runs.py's job; this
guards how they are chosen, so the real roles stay free of plant branches.
"""

from __future__ import annotations

import inspect
import random

import pytest

from paxos_agents.core import PLANTABLE, Membership, Node, Record, Settings
from paxos_agents.core import acceptor, decided, election, intake, learner, pipeline, proposer
from paxos_agents.core import gaps, heartbeats, reconfig, retries, tally
from paxos_agents.core.acceptor import Acceptor
from paxos_agents.core.learner import Learner
from paxos_agents.core.plants import (
    ACCEPTORS,
    LEARNERS,
    PROPOSERS,
    CrossBallotLearner,
    IgnoreIndexFloorLearner,
    IgnorePromisedValueProposer,
    LenientExpiryLearner,
    ReuseBallotProposer,
    SendBeforePersistAcceptor,
    StoredBeforePersistLearner,
    TruncateEarlyAcceptor,
    ValuesOnlyTransferLearner,
)
from paxos_agents.core.proposer import Proposer

REPLICAS = Membership(proposers=("r1", "r2", "r3"), acceptors=("r1", "r2", "r3"),
                      learners=("r1", "r2", "r3"))


def roles(plant: set[str]) -> tuple[type, type, type]:
    node = Node("r1", REPLICAS, Settings(plant=frozenset(plant)), Record(), random.Random(0))
    return type(node.acceptor), type(node.proposer), type(node.learner)


@pytest.mark.parametrize(
    ("plant", "expected"),
    [(set(), (Acceptor, Proposer, Learner)),
     ({"reuse-ballot"}, (Acceptor, ReuseBallotProposer, Learner)),
     ({"ignore-promised-value"}, (Acceptor, IgnorePromisedValueProposer, Learner)),
     ({"cross-ballot-learner"}, (Acceptor, Proposer, CrossBallotLearner)),
     ({"truncate-early", "cross-ballot-learner"}, (TruncateEarlyAcceptor, Proposer, CrossBallotLearner)),
     ({"forget-promise"}, (Acceptor, Proposer, Learner)),
     ({"send-before-persist"}, (SendBeforePersistAcceptor, Proposer, Learner)),
     ({"stored-before-persist"}, (Acceptor, Proposer, StoredBeforePersistLearner)),
     ({"lenient-expiry"}, (Acceptor, Proposer, LenientExpiryLearner)),
     ({"ignore-index-floor"}, (Acceptor, Proposer, IgnoreIndexFloorLearner)),
     ({"values-only-transfer"}, (Acceptor, Proposer, ValuesOnlyTransferLearner))],
    ids=["none-real-classes", "reuse-ballot", "ignore-promised-value", "cross-ballot-learner",
         "one-per-role-combine", "forget-promise-is-the-simulators-disk", "send-before-persist",
         "stored-before-persist", "lenient-expiry", "ignore-index-floor", "values-only-transfer"],
)
def test_node_chooses_the_planted_class(plant, expected):
    assert roles(plant) == expected


def test_two_plants_in_one_role_are_refused():
    with pytest.raises(ValueError, match="at most one planted proposer bug"):
        roles({"reuse-ballot", "ignore-promised-value"})


def test_every_rule_plant_has_a_class_and_the_real_roles_never_read_plant():
    # forget-promise is about the disk, applied by the simulator at boot.
    assert set(ACCEPTORS) | set(PROPOSERS) | set(LEARNERS) == PLANTABLE - {"forget-promise"}
    for module in (acceptor, proposer, learner, election, pipeline, intake, decided, reconfig,
                   retries, heartbeats, gaps, tally):
        assert "plant" not in inspect.getsource(module), module.__name__
