"""Readers following the decided log across a partition of their learner.

Issue 20 (9): after a partition healed on an idle cluster, followers of
the learner that had been cut off printed none of the entries decided
meanwhile until the next proposal (the slots it installed by state
transfer were never announced), and a follower of a cut-off learner never
moved to another one. Real processes: a cluster, `paxosctl chaos`, and a
follower reading through a `DataClient` in a thread. Every wait has a
deadline; no proposal is made after the heal.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from typing import Iterator

from paxosctl.client.datapath import DataClient
from paxosctl.client.decidedlog import DecidedCommand, read_log

from .harness import FaultCluster, describe, wait_until

#: Commands decided while the learner is partitioned.
PROPOSALS = 40
#: Of them, in the test of installed slots: one per slot ([paxos] batch = 1),
#: well past the 64 slots proposers keep decided values for (KEEP_DECIDED),
#: so that the learner copies most of them from its peer (Chunk), as it
#: does after a longer partition, instead of being sent them again (Decide).
INSTALLED = 400


class Follower:
    """`read_log(data, start, follow=True)` in a thread; its entries in a queue."""

    def __init__(self, data: DataClient, start: int) -> None:
        self.data = data
        self.entries: queue.Queue[DecidedCommand | BaseException] = queue.Queue()
        self.seen: list[DecidedCommand] = []
        threading.Thread(target=self._read, args=(read_log(data, start, follow=True),),
                         daemon=True).start()

    def _read(self, entries: Iterator[DecidedCommand]) -> None:
        try:
            for entry in entries:
                self.entries.put(entry)
        except BaseException as e:  # noqa: BLE001 - handed to the test (NotRunning at close)
            self.entries.put(e)

    def until(self, request_ids: set[str], timeout: float, what: str) -> None:
        """Take entries until every one of `request_ids` was seen."""
        def arrived() -> bool:
            while True:
                try:
                    entry = self.entries.get_nowait()
                except queue.Empty:
                    break
                if isinstance(entry, BaseException):
                    raise entry
                self.seen.append(entry)
            return request_ids <= {e.request_id for e in self.seen}
        wait_until(arrived, timeout, what)

    def check_each_once_in_order(self) -> None:
        positions = [(e.slot, e.index) for e in self.seen]
        assert positions == sorted(set(positions)), "an entry twice, or out of order"


def propose_all(cluster: FaultCluster, prefix: str, learner: str,
                count: int = PROPOSALS) -> set[str]:
    """`count` commands, answered by `learner` (one not cut off): none is
    sent again later, so nothing is decided after they are answered."""
    endpoints = cluster.client().data().endpoints
    data = DataClient(dataclasses.replace(endpoints, learners=(learner,)))
    try:
        futures = [data.propose_async(f"{prefix} {n}", request_id=f"{prefix}-{n}", fresh=True,
                                      timeout=30) for n in range(count)]
        return {future.result(40).request_id for future in futures}
    finally:
        data.close()


def test_a_follower_of_a_partitioned_learner_gets_what_it_installed_after_the_heal(
        fault_clusters) -> None:
    """Pinned to the one learner (it has no other to move to), the follower
    gets every entry that learner copied from its peer after the heal."""
    cluster = fault_clusters("roles", paxos={"batch": 1})
    client = cluster.client()
    first = client.propose("before the partition", fresh=True, timeout=10)
    learner = cluster.learners[0]
    pinned = DataClient(dataclasses.replace(client.data().endpoints, learners=(learner,)))
    try:
        follower = Follower(pinned, first.slot)
        follower.until({first.request_id}, 20, "the follower to read the log so far")
        result = cluster.run("chaos", "--partition", learner)
        assert result.returncode == 0, describe(result)
        other = next(n for n in cluster.learners if n != learner)
        decided = propose_all(cluster, "installed", other, INSTALLED)
        result = cluster.run("chaos", "--heal")
        assert result.returncode == 0, describe(result)
        # No proposal from here on: the installed slots alone must reach it.
        follower.until(decided, 30, f"the follower of {learner} to print what it installed")
        follower.check_each_once_in_order()
        assert cluster.agent(learner)["restarts"] == 0
        # Caught up, and durable: a learner commits what it installed within
        # its group-commit window (runtime/persister.py), after the client saw it.
        wait_until(lambda: cluster.durable_decided_up_to(learner) >= first.slot + INSTALLED, 10,
                   f"{learner}'s file to hold the {INSTALLED} installed slots")
    finally:
        pinned.close()


def test_a_follower_leaves_a_learner_cut_off_and_goes_on_from_its_position(
        fault_clusters) -> None:
    """The learner followed is partitioned and stays so: the follower moves
    to the other learner and prints what is decided, nothing twice."""
    cluster = fault_clusters("roles")
    client = cluster.client()
    first = client.propose("before the cut", fresh=True, timeout=10)
    data = DataClient(client.data().endpoints)
    try:
        follower = Follower(data, first.slot)
        follower.until({first.request_id}, 20, "the follower to read the log so far")
        followed = data.following
        assert followed in cluster.learners, followed
        result = cluster.run("chaos", "--partition", followed)
        assert result.returncode == 0, describe(result)
        decided = propose_all(cluster, "moved",
                              next(n for n in cluster.learners if n != followed))
        follower.until(decided, 30, f"the follower to leave {followed} and print the rest")
        follower.check_each_once_in_order()
        assert data.following not in (None, followed), data.following
    finally:
        data.close()
