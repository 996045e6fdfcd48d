"""Configurations: which acceptors govern which slots (alpha-window reconfiguration).

The protocol is Lamport's alpha reconfiguration (Paxos Made Simple,
end of section 3; Lamport, Malkhi and Zhou, "Reconfiguring a State
Machine", 2010, section 4, "the alpha approach"), fitted to our
Multi-Paxos:

- A *configuration* is an epoch and a set of acceptor names. Epoch 0 is
  the cluster's first set of acceptors, in force from slot 0.
- A reconfiguration is an ordinary command decided in a slot: "epoch E
  has acceptors A" (`config_command`). Decided in slot i, and the first
  command of the log (in slot order, then batch order; at most one per
  slot) that names E = (latest epoch so far) + 1, it governs every slot
  >= i + alpha. Any other config command (a stale epoch, a second one for
  an epoch, a malformed payload) is skipped by everyone alike: the
  history is a function of the decided log alone.
- config(s) therefore depends only on the decided values of slots
  <= s - alpha: whoever knows every decision below `known` knows
  config(s) for every s < known + alpha, and nothing further.

Why alpha and not a swap at once: two slots whose configurations two
proposers judge differently could be chosen by two majorities that do
not intersect (the planted `naive-swap` shows the simulator finding
exactly that). Why not Stoppable Paxos or Vertical Paxos: alpha keeps
acceptors ignorant of configurations (no new acceptor state, no
configuration master), needs no extra message type for the change
itself, and costs only a bound on how far a leader runs ahead of the
decided prefix, which our `window` already imposes.

Node ids in a configuration are names. A member whose disk was lost
comes back under a new name (its old name is retired for good), so a
fresh disk can never be counted as the old member.

A `History` is immutable; roles keep the latest one and replace it as
decisions come in (`fed`) or a peer tells them more (`merged`). Its
JSON form (`to_json`, a list) is what `Persist.configs` and
`Record.configs` hold and what the wire carries (`Stored.history`,
`Chunk.history`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Iterable

from .commands import Command, Value

__all__ = ["CONFIG_PREFIX", "PAYLOAD_VERSION", "Config", "History", "ConfigError",
           "config_command", "is_config_request", "parse_config"]

#: Request ids of config commands start with this; proposers refuse it from
#: clients (a NUL cannot be typed on the command line, and clients never send it).
CONFIG_PREFIX = "\x00config:"
_MARK = CONFIG_PREFIX.encode()
#: Version of the config command's payload (and of `History.to_json`).
PAYLOAD_VERSION = 1


def majority(count: int) -> int:
    """How many of `count` acceptors make a quorum: more than half. Written
    once; everything that counts a quorum or shows one asks here."""
    return count // 2 + 1


class ConfigError(ValueError):
    """A configuration change that cannot be made (the message says why)."""


@dataclass(frozen=True, slots=True)
class Config:
    """The acceptors of `epoch`, governing every slot from `first_slot` to the next epoch's."""

    epoch: int
    first_slot: int
    acceptors: tuple[str, ...]

    @property
    def majority(self) -> int:
        """Acceptors of this configuration needed for a quorum."""
        return majority(len(self.acceptors))

    def is_quorum(self, voters: Iterable[str]) -> bool:
        """Whether `voters` hold a majority of this configuration (non-members never count)."""
        members = self.acceptors
        return sum(1 for v in set(voters) if v in members) >= self.majority


def config_command(epoch: int, acceptors: Iterable[str], issued: int = -1) -> Command:
    """The command "epoch `epoch` has `acceptors`"; the payload is versioned JSON.

    The request id is the prefix, the epoch, a digest of the payload and
    `issued` (the proposer's decided prefix, see `Command`). So one request id
    names one payload (seeds 2930 and 5703 --reconfig: a per-proposer counter
    did not survive a restart) and one stamp (seed 218: a later proposal of the
    same change under an earlier one's request id carried a later stamp, and a
    restarted learner trusted it and applied the command twice). Every slot up
    to `issued` was decided before any proposal of that request id, so the
    stamp is true.
    """
    names = tuple(acceptors)
    payload = json.dumps({"v": PAYLOAD_VERSION, "epoch": epoch, "acceptors": list(names)},
                         separators=(",", ":")).encode()
    digest = hashlib.sha256(payload).hexdigest()[:16]
    return Command(f"{CONFIG_PREFIX}{epoch}:{digest}:{issued}", payload, issued)


def is_config_request(request_id: str) -> bool:
    """Whether `request_id` is reserved for config commands."""
    return request_id.startswith(CONFIG_PREFIX)


def parse_config(command: Command) -> tuple[int, tuple[str, ...]] | None:
    """(epoch, acceptors) of a config command; None if it is not one or is malformed
    (a malformed one is skipped by everyone, like a stale one)."""
    if not is_config_request(command.request_id):
        return None
    try:
        body = json.loads(command.payload)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("v") != PAYLOAD_VERSION:
        return None
    epoch, names = body.get("epoch"), body.get("acceptors")
    if type(epoch) is not int or epoch < 1 or not isinstance(names, list) or not names:
        return None
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        return None
    return epoch, tuple(names)


@dataclass(frozen=True, slots=True)
class History:
    """The configurations decided so far, as known to one node.

    `known`: every decided slot below it has been fed (`fed`), so the
    configurations of all slots < `known + alpha` are known. `configs`
    are in epoch order, epoch 0 first.
    """

    alpha: int
    configs: tuple[Config, ...]
    known: int = 0

    @classmethod
    def initial(cls, alpha: int, acceptors: Iterable[str]) -> "History":
        """Epoch 0: `acceptors` from slot 0; nothing fed yet."""
        if alpha < 1:
            raise ConfigError(f"alpha must be >= 1, got {alpha}")
        names = tuple(acceptors)
        if not names:
            raise ConfigError("the first configuration needs at least one acceptor")
        return cls(alpha, (Config(0, 0, names),), 0)

    @property
    def latest(self) -> Config:
        """The configuration of the highest epoch decided (maybe not governing any slot yet)."""
        return self.configs[-1]

    def knows(self, slot: int) -> bool:
        """Whether config(`slot`) is known: every slot <= slot - alpha was fed."""
        return slot < self.known + self.alpha

    def config_for(self, slot: int) -> Config | None:
        """config(`slot`), or None while it is not known."""
        if not self.knows(slot):
            return None
        for config in reversed(self.configs):
            if config.first_slot <= slot:
                return config
        return self.configs[0]  # slots below 0 do not exist; be total anyway

    def configs_from(self, slot: int) -> tuple[Config, ...]:
        """The known configurations governing some slot >= `slot` (config(`slot`) first).

        Every known configuration starts below `known + alpha`, so the
        list is complete for the slots whose configuration is known.
        """
        first = self.config_for(slot)
        if first is None:
            return ()
        return (first, *(c for c in self.configs if c.first_slot > slot))

    def acceptors_from(self, slot: int) -> tuple[str, ...]:
        """Every acceptor of a configuration governing some slot >= `slot`
        (the latest one's, if config(`slot`) is not known yet)."""
        configs = self.configs_from(slot) or (self.latest,)
        return tuple(dict.fromkeys(a for c in configs for a in c.acceptors))

    def effective_slot(self, decided_at: int) -> int:
        """The first slot governed by a config command decided in `decided_at`."""
        return decided_at + self.alpha

    def fed(self, slot: int, value: Value) -> "History":
        """This history after the decision of `slot` (which must be `known`;
        any other slot leaves it as it is: fed already, or a gap first)."""
        if slot != self.known:
            return self
        cls = type(self)
        if _MARK not in value.data:  # the usual slot: no config command (no decoding)
            return cls(self.alpha, self.configs, slot + 1)
        configs = self.configs
        for command in value.commands:
            parsed = parse_config(command)
            if parsed is not None and parsed[0] == configs[-1].epoch + 1:
                epoch, acceptors = parsed
                configs = (*configs, Config(epoch, self.effective_slot(slot), acceptors))
                break  # at most one change per slot
        return cls(self.alpha, configs, slot + 1)

    def merged(self, other: "History | None") -> "History":
        """The history that knows more, of this one and `other` (a peer's).

        Both are prefixes of one history (it is a function of the decided
        log), so the one fed further is a superset. One that disagrees
        (another alpha, other configurations) is ignored: it cannot be
        this cluster's.
        """
        if other is None or other.known <= self.known:
            return self
        if other.alpha != self.alpha or other.configs[:len(self.configs)] != self.configs:
            return self
        return type(self)(self.alpha, other.configs, other.known)

    def with_known(self, known: int) -> "History":
        """The same configurations, fed up to `known` (see `Learner`: a learner's
        persisted history holds every change decided up to its applied prefix)."""
        return self if known <= self.known else type(self)(self.alpha, self.configs, known)

    def in_force(self, stored_by_all: int) -> Config:
        """The latest configuration whose earlier slots every learner has stored
        (`stored_by_all`: the lowest applied prefix any learner reported)."""
        for config in reversed(self.configs):
            if config.first_slot <= stored_by_all + 1:
                return config
        return self.configs[0]

    def to_json(self) -> list:
        """`[version, alpha, known, [[epoch, first_slot, [acceptor, ...]], ...]]`."""
        return [PAYLOAD_VERSION, self.alpha, self.known,
                [[c.epoch, c.first_slot, list(c.acceptors)] for c in self.configs]]

    @classmethod
    def from_json(cls, data: object) -> "History":
        """The history `to_json` wrote; raises `ConfigError` on anything else.

        Exact types only (it arrives from peers): every number must be an
        int (not a float, not a bool) within i64, every name a string.
        """
        if type(data) is not list or len(data) != 4:
            raise ConfigError(f"bad configuration history: not a list of 4 fields: {data!r:.200}")
        version, alpha, known, rows = data
        if version != PAYLOAD_VERSION or type(version) is not int:
            raise ConfigError(f"unknown configuration history version {version!r:.40}")
        if type(rows) is not list or not all(
                type(row) is list and len(row) == 3 and _is_i64(row[0]) and _is_i64(row[1])
                and type(row[2]) is list and all(type(a) is str for a in row[2])
                for row in rows):
            raise ConfigError(f"bad configuration history: rows must be [epoch, first_slot, "
                              f"[acceptor, ...]], got {rows!r:.200}")
        configs = tuple(Config(e, f, tuple(names)) for e, f, names in rows)
        if (not _is_i64(alpha) or alpha < 1 or not _is_i64(known) or known < 0
                or not configs or [c.epoch for c in configs] != list(range(len(configs)))
                or any(not c.acceptors for c in configs)):
            raise ConfigError(f"bad configuration history: {data!r:.200}")
        return cls(alpha, configs, known)


def _is_i64(number: object) -> bool:
    """An int (not a bool, not a float) that fits a signed 64-bit field."""
    return type(number) is int and -2**63 <= number < 2**63
