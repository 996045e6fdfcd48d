"""`paxosctl soak`: load, SIGKILLs and chaos against a running cluster,
then its own verdict through `paxosctl.tools.history.check`.
"""

from __future__ import annotations

import re

from paxosctl import Client
from paxosctl.tools.soak import soak

from .harness import FAST_RESTART, describe

SUMMARY = re.compile(r"kills: (\d+), proposals acknowledged: (\d+), lost: 0, duplicated: 0, "
                     r"linearizable: yes")


def test_soak_with_kills_and_drops(fault_clusters) -> None:
    cluster = fault_clusters("roles", restart=FAST_RESTART)
    # ... and one learner deaf to every Accepted: it learns what it misses from
    # the leader (Retry) or from its peer (Fetch) while agents die around it.
    result = cluster.run("soak", "--duration", "10s", "--kill-every", "500ms",
                         "--chaos", "drop=0.05,drop_kinds=accepted,drop_to=learner-0", timeout=240)
    assert result.returncode == 0, describe(result)
    assert "chaos: drop=0.05, drop_kinds=accepted, drop_to=learner-0" in result.stderr, describe(result)
    lines = result.stdout.strip().splitlines()
    assert lines, describe(result)
    m = SUMMARY.fullmatch(lines[-1])
    assert m, describe(result)
    kills, acked = int(m.group(1)), int(m.group(2))
    assert kills >= 10 and acked > 0, lines[-1]
    assert "anomaly" not in result.stderr, describe(result)
    # The kills happened: the agents were restarted that many times in all.
    status = cluster.status()
    assert sum(a["restarts"] for a in status["agents"]) >= kills, status
    assert status["chaos"] == {}, "soak left chaos in force"


class OneAtATime:
    """A client whose `propose_async` returns only once the proposal is
    decided: the soak's loop then launches exactly one proposal in a window
    shorter than a decision."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def propose_async(self, *args, **kwargs):
        future = self._client.propose_async(*args, **kwargs)
        future.result(timeout=30)
        return future

    def __getattr__(self, name: str):
        return getattr(self._client, name)


def test_soak_of_a_single_decision_heals(fault_clusters) -> None:
    """A soak that decides one proposal, in slot 0 of a fresh cluster, must
    find the cluster healed at once: `decided_up_to` 0 is a slot, not
    "nothing decided" (it must not wait out `settle` and report that the
    cluster did not heal)."""
    cluster = fault_clusters("replicas", restart=FAST_RESTART)
    with Client.for_manifest(cluster.manifest) as client:
        result = soak(OneAtATime(client), duration=0.001, kill_every=None, chaos={},
                      concurrency=1, settle=5.0)
    assert result.report.acknowledged == 1, result.summary()
    assert cluster.status()["decided_up_to"] == 0
    assert result.ok, result.problems
    assert result.seconds < 5.0, result.seconds


def test_soak_mixing_membership_changes_into_kills(fault_clusters) -> None:
    """`--reconfig-every`: the acceptors grow by two, shrink back and one is
    replaced, under load and kills; nothing acknowledged is lost or doubled,
    and the group ends at its size (with a replaced member's new name)."""
    cluster = fault_clusters("replicas", restart=FAST_RESTART)
    result = cluster.run("soak", "--duration", "8s", "--kill-every", "700ms",
                         "--reconfig-every", "1.2s", timeout=240)
    assert result.returncode == 0, describe(result)
    last = result.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"kills: (\d+), membership changes: (\d+) \((\d+) skipped\), proposals "
                     r"acknowledged: (\d+), lost: 0, duplicated: 0, linearizable: yes", last)
    assert m, describe(result)
    changes, acked = int(m.group(2)), int(m.group(4))
    assert changes >= 3 and acked > 0, last
    config = cluster.status()["configuration"]
    assert config["epoch"] >= 3 and len(config["in_force"]) == 3, config
    assert config["in_force"] != ["replica-0", "replica-1", "replica-2"], config  # one replaced
