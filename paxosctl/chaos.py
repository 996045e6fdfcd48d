"""Faults the hub injects into agent-to-agent messages, on purpose.

The supervisor routes every protocol message between agents, so it is the
one place to drop, delay, duplicate and partition them (`[chaos]` in the
manifest, or `paxosctl chaos` against a running cluster). Only protocol
messages are affected: heartbeats to the supervisor, proposals and
answers still flow, so the health checks keep telling a live agent from
a dead one while its links are cut.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class ChaosSettings:
    """[chaos]: all off by default.

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


def update(settings: ChaosSettings, changes: dict[str, Any], agents: tuple[str, ...]) -> ChaosSettings:
    """`settings` with `changes` applied; ValueError naming the bad field.

    `changes` holds any of drop, duplicate (fractions), delay (seconds),
    partition (agent names) and heal (true: everything off).
    """
    if changes.get("heal"):
        settings = ChaosSettings(seed=settings.seed)
    values: dict[str, Any] = {}
    for key in ("drop", "duplicate"):
        if key in changes:
            value = changes[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{key}: expected a fraction from 0 to 1, got {value!r}")
            values[key] = float(value)
    if "delay" in changes:
        value = changes["delay"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 60:
            raise ValueError(f"delay: expected seconds from 0 to 60, got {value!r}")
        values["delay"] = float(value)
    if "partition" in changes:
        names = changes["partition"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("partition: expected a list of agent names")
        unknown = [n for n in names if n not in agents]
        if unknown:
            raise ValueError(f"partition: no agent {unknown[0]!r}; agents: {', '.join(agents)}")
        values["partition"] = tuple(dict.fromkeys(names))
    return replace(settings, **values)


@dataclass(slots=True)
class Chaos:
    """The faults in force and what they did (counters for the metrics)."""

    settings: ChaosSettings = field(default_factory=ChaosSettings)
    rng: random.Random = field(default_factory=random.Random)
    dropped: int = 0
    partitioned: int = 0
    duplicated: int = 0
    delayed: int = 0

    def set(self, settings: ChaosSettings) -> None:
        if settings.seed != self.settings.seed or not self.settings.active:
            self.rng = random.Random(settings.seed)
        self.settings = settings

    def fate(self, src: str, dst: str) -> tuple[int, float]:
        """How many copies of a src->dst message to deliver (0, 1 or 2), and after what delay."""
        s = self.settings
        if s.partition and ((src in s.partition) != (dst in s.partition)):
            self.partitioned += 1
            return 0, 0.0
        rng = self.rng
        if s.drop and rng.random() < s.drop:
            self.dropped += 1
            return 0, 0.0
        copies = 1
        if s.duplicate and rng.random() < s.duplicate:
            self.duplicated += 1
            copies = 2
        delay = 0.0
        if s.delay:
            delay = rng.uniform(0.0, s.delay)
            self.delayed += 1
        return copies, delay
