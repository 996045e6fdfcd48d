"""How long a leader took to decide a slot: the commit-duration histogram.

Timed per slot, never per command: from the arrival of the slot's oldest
command at this proposer's intake (queueing and batching included) to the
moment the leader learns the slot decided (its own count of a majority of
Accepted in one ballot, or a decision it learns otherwise for a slot it
has in flight with its value). The runtime exports it as
`paxos_commit_duration_seconds`.

The core reads no clock: the runtime tells it the time (`Node.set_time`,
once per loop turn, as it tells it that a tick passed), and `now` holds
the last reading. Nothing the protocol decides depends on it; a core that
is never told the time (the simulator) times every slot as 0 seconds.

What is timed from where (intake.py keeps the arrivals, pipeline.py the
slots in flight):

- a slot of fresh commands: from the earliest arrival among its commands;
- commands queued again here (their slot lost, or this proposer stopped
  leading and leads again): from when they were queued again. They are
  re-proposed after a leader change, and are timed from their arrival at
  the leader that proposes them again, as a command forwarded to a new
  leader is;
- a value phase 1 reported (P2c, re-proposed by a new leader): from when
  this leader proposed it, its arrival here;
- a no-op is not timed: it holds no command.
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["COMMIT_BUCKETS", "CommitTimes"]

#: Upper bounds (seconds) of the histogram's buckets: 0.1 ms to 10 s.
COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                  0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CommitTimes:
    """The clock reading the runtime last gave, and the slots timed so far.

    `buckets[i]` counts the slots that took at most `COMMIT_BUCKETS[i]`
    seconds and more than the bound before it; the last bucket counts those
    above every bound (not cumulative, as `PersistHistogram`'s).
    """

    __slots__ = ("now", "count", "sum", "buckets")

    def __init__(self) -> None:
        #: Seconds on the runtime's monotonic clock, as of its last `Node.set_time`.
        self.now = 0.0
        self.count = 0
        self.sum = 0.0
        self.buckets = [0] * (len(COMMIT_BUCKETS) + 1)

    def observe(self, arrived: float) -> None:
        """A slot whose oldest command arrived at `arrived` is decided now."""
        seconds = max(0.0, self.now - arrived)
        self.count += 1
        self.sum += seconds
        self.buckets[bisect_left(COMMIT_BUCKETS, seconds)] += 1
