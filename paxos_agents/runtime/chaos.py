"""Faults injected on purpose into the messages agents send to each other.

Each agent applies the cluster's settings (`[chaos]` in the manifest, or
`paxosctl chaos` against a running cluster; the supervisor hands them to
every agent) to what it sends, with its own seeded dice. Only protocol
messages between agents are affected: heartbeats to the supervisor and
client traffic still flow, so the health checks keep telling a live
agent from a dead one while its links are cut.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ChaosSettings:
    """[chaos]: the faults agents inject into what they send; all off by default.

    - drop = 0.0: fraction (0..1) of messages dropped.
    - duplicate = 0.0: fraction (0..1) of messages delivered twice.
    - delay = "0s": each message is held back a uniform random time up to
      this (which also reorders them).
    - partition = []: agents cut off from the rest (messages between the
      two sides are dropped; inside each side they flow).
    - seed = 0: seeds the choices, so a run's faults can be replayed.
    """

    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    partition: tuple[str, ...] = ()
    seed: int = 0

    @property
    def active(self) -> bool:
        return bool(self.drop or self.duplicate or self.delay or self.partition)

    def describe(self) -> dict[str, Any]:
        """What is in force, for `status` and `paxosctl chaos` (empty when off)."""
        out: dict[str, Any] = {}
        if self.drop:
            out["drop"] = self.drop
        if self.duplicate:
            out["duplicate"] = self.duplicate
        if self.delay:
            out["delay_s"] = self.delay
        if self.partition:
            out["partition"] = list(self.partition)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "ChaosSettings":
        return cls(drop=float(obj.get("drop", 0.0)), duplicate=float(obj.get("duplicate", 0.0)),
                   delay=float(obj.get("delay", 0.0)),
                   partition=tuple(str(n) for n in obj.get("partition", ())),
                   seed=int(obj.get("seed", 0)))


class Chaos:
    """Seeded fates of outgoing messages, and what they did (counters)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self.settings = ChaosSettings()
        self._rng = random.Random(0)
        self.counts: Counter[str] = Counter()

    def set(self, settings: ChaosSettings) -> None:
        """Put `settings` in force; a new seed (or chaos switched on) restarts the dice."""
        if settings.seed != self.settings.seed or not self.settings.active:
            # Seeded per agent, so two agents do not drop in lockstep.
            self._rng = random.Random(f"{settings.seed}/{self._name}")
        self.settings = settings

    def fate(self, dst: str) -> tuple[int, float]:
        """How many copies of a message to `dst` to send (0, 1 or 2), and after what delay."""
        s = self.settings
        if s.partition and ((self._name in s.partition) != (dst in s.partition)):
            self.counts["partition"] += 1
            return 0, 0.0
        rng = self._rng
        if s.drop and rng.random() < s.drop:
            self.counts["drop"] += 1
            return 0, 0.0
        copies = 1
        if s.duplicate and rng.random() < s.duplicate:
            self.counts["duplicate"] += 1
            copies = 2
        delay = 0.0
        if s.delay:
            delay = rng.uniform(0.0, s.delay)
            self.counts["delay"] += 1
        return copies, delay
