"""A retry is never applied twice, whatever stamp it carries (issue 20, finding 1).

The probe: `propose --request-id r1 "pay alice 100"` decided at 0.0; after
the learners restarted, the same command retried with `--issued 6` (newer
than its first issue) was decided and acknowledged again at 7.0. The
learners used to skip their store whenever the stamp said "new". Now they
ask only what they hold (an IdFilter of every retained id, confirmed in
the store), so each retry below, stamped wrong in each direction, after
learner restarts and after a state transfer, answers the first position,
and the decided log and the decided-commands metric count r1 once.

Real clusters, both topologies, the real CLI and the Python API.
"""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

from clusters import describe, wait_until
from paxos_agents.core.requestkeys import request_key
from paxosctl import Client

VALUE = "pay alice 100"


def propose(cluster, *args: str) -> dict:
    done = cluster.run("propose", VALUE, "--request-id", "r1", "-o", "json", *args)
    assert done.returncode == 0, describe(done)
    return json.loads(done.stdout)


def decided_commands_metric(cluster) -> int:
    text = cluster.run_ok("metrics").stdout
    return int(float(re.search(r"^paxos_decided_commands_total (\S+)$", text, re.M).group(1)))


def restart_learners(cluster) -> None:
    for name in cluster.learners:
        cluster.run_ok("restart", name)
    cluster.wait_healthy(60)


def index_entry(cluster, learner: str) -> list:
    with sqlite3.connect(f"file:{cluster.state_file(learner)}?mode=ro", uri=True) as db:
        # Keyed by request_key (schema 6); r1's row is the one at its position.
        return db.execute("SELECT slot FROM requests WHERE key = ?",
                          (request_key("r1"),)).fetchall()


@pytest.mark.parametrize("topology", ["roles", "replicas"])
def test_a_retry_stamped_wrong_is_never_applied_twice(make_cluster, topology):
    cluster = make_cluster(topology)
    first = propose(cluster)
    assert first["position"] == "0.0"
    with Client.for_manifest(cluster.manifest) as client:
        for i in range(8):
            client.propose(f"filler {i}", request_id=f"filler-{i}", timeout=20)
    restart_learners(cluster)  # nothing in memory remembers r1 now

    # Stamped newer than its first issue (the probe's --issued 6), far in the
    # future, unknown, and as old as can be: each is proposed again (a stamp
    # skips the client's lookup) and each answers the first position.
    for stamp in ("6", "9223372036854775806", "-1", "0"):
        again = propose(cluster, "--issued", stamp)
        assert again["position"] == first["position"], (stamp, again)
    with Client.for_manifest(cluster.manifest) as client:
        api = client.propose(VALUE, request_id="r1", fresh=True, timeout=20)
        assert (api.slot, api.index) == (first["slot"], first["index"])
        api = client.propose(VALUE, request_id="r1", issued=7, timeout=20)
        assert (api.slot, api.index) == (first["slot"], first["index"])

    ids = [e["request_id"] for e in cluster.decided()]
    assert ids.count("r1") == 1
    assert ids.count("filler-3") == 1
    # Every learner's index keeps the first slot; the metric counts r1 once.
    for learner in cluster.learners:
        assert index_entry(cluster, learner) == [(first["slot"],)]
    wait_until(lambda: decided_commands_metric(cluster) == 9, 20,
               "paxos_decided_commands_total to count 9 commands (r1 once)")


def test_a_learner_that_copied_its_log_still_knows_r1(make_cluster):
    """State transfer: a learner whose disk is gone copies the log (and the
    request index) from its peer; a wrongly stamped retry then answers the
    first position there too."""
    cluster = make_cluster("roles")
    first = propose(cluster)
    cluster.run_ok("stop", "learner-1")
    cluster.state_file("learner-1").unlink()
    for suffix in ("-wal", "-shm"):
        cluster.state_file("learner-1").with_name(f"learner-1.db{suffix}").unlink(missing_ok=True)
    cluster.run_ok("start", "learner-1")
    cluster.wait_healthy(60)
    wait_until(lambda: index_entry(cluster, "learner-1"), 30,
               "learner-1 to copy the log and its index from learner-0")
    # learner-0 restarted too: only the copied index remembers r1 on learner-1,
    # only the stored index on learner-0.
    cluster.run_ok("restart", "learner-0")
    cluster.wait_healthy(60)
    again = propose(cluster, "--issued", "5")
    assert again["position"] == first["position"]
    for learner in cluster.learners:
        assert index_entry(cluster, learner) == [(first["slot"],)]
    assert [e["request_id"] for e in cluster.decided()].count("r1") == 1
