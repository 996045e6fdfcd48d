"""The simulator's protocol records: what every node sent, received and decided.

The same dicts an agent keeps (paxos_agents.trace.records), so one renderer
draws a simulated slot and a live one: `mono` and `at` are the tick,
`incarnation` is the node's boot count (1 for its first life), and a
message's `link` is `[src, src's incarnation, dst, 0, n]`, n counting the
messages from that incarnation to that node from 1 (the simulator has no
connections that restart: generation 0). A message the network dropped is
recorded as sent with `dropped: "network"`; a duplicated one is received
twice with one link. Unbounded: a recorder is for one scripted run or one
seed replayed (`--trace`), never the seed sweeps.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ..core.messages import Message
from ..trace.records import decided_note, note, record


class SimRecorder:
    """Records of every node of one `SimCluster`, in the order they happened."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._seq: dict[tuple[str, int], int] = defaultdict(int)
        self._n: dict[tuple[str, int, str], int] = defaultdict(int)

    def _next(self, agent: str, incarnation: int) -> int:
        self._seq[agent, incarnation] += 1
        return self._seq[agent, incarnation]

    def sent(self, msg: Message, incarnation: int, now: int,
             dropped: str | None = None) -> list:
        """Record `msg` leaving its sender; returns its link (for `received`)."""
        key = (msg.src, incarnation, msg.dst)
        self._n[key] += 1
        link = [msg.src, incarnation, msg.dst, 0, self._n[key]]
        self.records.append(record(note(msg), seq=self._next(msg.src, incarnation),
                                   agent=msg.src, incarnation=incarnation, direction="send",
                                   peer=msg.dst, link=link, mono=now, at=now, dropped=dropped))
        return link

    def received(self, msg: Message, link: list | None, incarnation: int, now: int) -> None:
        """Record `msg` handed to its receiver (its `link` from `sent`)."""
        if link is None:  # sent before the recorder was attached
            return
        self.records.append(record(note(msg, sent=False), seq=self._next(msg.dst, incarnation),
                                   agent=msg.dst, incarnation=incarnation, direction="recv",
                                   peer=msg.src, link=link, mono=now, at=now))

    def decided(self, node_id: str, incarnation: int, slot: int, now: int) -> None:
        """Record `node_id`'s learner deciding `slot` (its value: see trace.records)."""
        self.records.append(record(decided_note(slot),
                                   seq=self._next(node_id, incarnation), agent=node_id,
                                   incarnation=incarnation, direction="local", peer=None,
                                   link=None, mono=now, at=now))
