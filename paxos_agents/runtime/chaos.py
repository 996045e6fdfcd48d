"""Faults injected on purpose into the messages agents send to each other.

Each agent applies the cluster's settings (`[chaos]` in the manifest, or
`paxosctl chaos` against a running cluster; the supervisor hands them to
every agent) to what it sends, with its own seeded dice. Only protocol
messages between agents are affected: heartbeats to the supervisor and
client traffic still flow, so the health checks keep telling a live
agent from a dead one while its links are cut.

One rule is not a dice roll: `drop_kinds` (with `drop_to`) drops EVERY
message of those kinds (to those agents), to build one exact scenario,
e.g. a leader that never hears its Accepteds. The sender knows a message's
kind from its frame's TYPE byte (paxos_agents.runtime.codec), so the rule
costs no decode, and nothing at all while chaos is off.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .codec import TYPE_CODES

#: Message kind (lower-case class name, as in the protocol records) -> TYPE byte.
KIND_CODES: dict[str, int] = {cls.__name__.lower(): code for cls, code in TYPE_CODES.items()}
#: The kinds `drop_kinds` may name, in TYPE order (for error messages).
KINDS: tuple[str, ...] = tuple(sorted(KIND_CODES, key=KIND_CODES.__getitem__))


@dataclass(frozen=True, slots=True)
class ChaosSettings:
    """[chaos]: the faults agents inject into what they send; all off by default.

    - drop = 0.0: fraction (0..1) of messages dropped.
    - duplicate = 0.0: fraction (0..1) of messages delivered twice.
    - delay = "0s": each message is held back a uniform random time up to
      this (which also reorders them).
    - partition = []: agents cut off from the rest (messages between the
      two sides are dropped; inside each side they flow).
    - drop_kinds = []: message kinds (see `KINDS`: accepted, accept,
      promise, prepare, nack, decide, ...) of which every one is dropped,
      with probability 1 (`drop` then applies to the rest, as ever).
    - drop_to = []: the agents whose inbound messages of `drop_kinds` are
      dropped (empty: to any agent). Meaningless without `drop_kinds`, so
      refused without it.
    - seed = 0: seeds the choices, so a run's faults can be replayed.

    Raises ValueError naming the unknown kind, or `drop_to` without
    `drop_kinds` (agent names are checked by whoever knows the agents:
    the manifest loader and the supervisor).
    """

    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    partition: tuple[str, ...] = ()
    drop_kinds: tuple[str, ...] = ()
    drop_to: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        for kind in self.drop_kinds:
            if kind not in KIND_CODES:
                raise ValueError(f"drop_kinds: no message kind {kind!r}; kinds: {', '.join(KINDS)}")
        if self.drop_to and not self.drop_kinds:
            raise ValueError("drop_to: names whose inbound drop_kinds to drop; "
                             "give drop_kinds too")

    @property
    def active(self) -> bool:
        return bool(self.drop or self.duplicate or self.delay or self.partition
                    or self.drop_kinds)

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
        if self.drop_kinds:
            out["drop_kinds"] = list(self.drop_kinds)
            if self.drop_to:
                out["drop_to"] = list(self.drop_to)
        return out

    def to_json(self) -> dict[str, Any]:
        """Every field, as `from_json` reads it (the supervisor's CHAOS frame)."""
        return {"drop": self.drop, "duplicate": self.duplicate, "delay": self.delay,
                "partition": list(self.partition), "drop_kinds": list(self.drop_kinds),
                "drop_to": list(self.drop_to), "seed": self.seed}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "ChaosSettings":
        return cls(drop=float(obj.get("drop", 0.0)), duplicate=float(obj.get("duplicate", 0.0)),
                   delay=float(obj.get("delay", 0.0)),
                   partition=tuple(str(n) for n in obj.get("partition", ())),
                   drop_kinds=tuple(str(k) for k in obj.get("drop_kinds", ())),
                   drop_to=tuple(str(n) for n in obj.get("drop_to", ())),
                   seed=int(obj.get("seed", 0)))


class Chaos:
    """Seeded fates of outgoing messages, and what they did (counters)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self.settings = ChaosSettings()
        self._rng = random.Random(0)
        self.counts: Counter[str] = Counter()
        #: TYPE bytes of `settings.drop_kinds`, looked up per message.
        self._drop_codes: frozenset[bytes] = frozenset()

    def set(self, settings: ChaosSettings) -> None:
        """Put `settings` in force; a new seed (or chaos switched on) restarts the dice."""
        if settings.seed != self.settings.seed or not self.settings.active:
            # Seeded per agent, so two agents do not drop in lockstep.
            self._rng = random.Random(f"{settings.seed}/{self._name}")
        self.settings = settings
        self._drop_codes = frozenset(bytes((KIND_CODES[k],)) for k in settings.drop_kinds)

    def fate(self, dst: str, code: bytes) -> tuple[int, float]:
        """How many copies of a message to `dst` to send (0, 1 or 2), and after
        what delay; `code` is the message's TYPE byte, `frame[1:2]` (a slice:
        empty for a frame too short to have one, which no rule then matches).

        A message `drop_kinds`/`drop_to` drops is counted under "drop", with
        those the `drop` fraction dropped (one drop-by-chaos counter)."""
        s = self.settings
        if s.partition and ((self._name in s.partition) != (dst in s.partition)):
            self.counts["partition"] += 1
            return 0, 0.0
        if code in self._drop_codes and (not s.drop_to or dst in s.drop_to):
            self.counts["drop"] += 1
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
