"""Who the members are now, asked of the agents: `current(endpoints, manifest)`.

A cluster that `scale` or `replace` changed runs names its manifest does
not hold. Every agent says, in the WELCOME to a client's HELLO, the
version of the membership record it runs (`members_version`: 0 for the
manifest's), that record when it has one (`members`), and its view of the
configurations (`epoch`, `in_force_epoch`, `acceptors`; a proposer's or
learner's). `current` asks the agents it knows of (the manifest's and any
`also` names) at once, then once more the names the newest record adds,
and returns the newest record among those that answered, with the most
advanced configuration view any of them has.

Names the manifest does not place (an agent a change added) are dialled
at the address the record gives, or where the manifest's template or
hosts place them (`placed`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..endpoints import Endpoints
from ..manifest import Manifest
from .probe import ASK_SECONDS, Answer, survey


@dataclass(frozen=True, slots=True)
class Members:
    """The newest membership an answering agent runs, and what it knows of
    the configurations. `version` 0: the manifest's (no change recorded)."""

    version: int
    proposers: tuple[str, ...]
    acceptors: tuple[str, ...]
    learners: tuple[str, ...]
    retired: frozenset[str] = frozenset()
    addresses: Mapping[str, str] = field(default_factory=dict)
    #: Every name ever a member, as the newest record says (replace never reuses one).
    used: frozenset[str] = frozenset()
    #: The latest decided configuration's epoch and acceptors, and the epoch in force
    #: (-1 and () when no proposer or learner answered).
    epoch: int = -1
    in_force_epoch: int = -1
    config_acceptors: tuple[str, ...] = ()
    #: Every agent asked, answered or not, by name.
    answers: Mapping[str, Answer] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        """Every member, proposers first, each once."""
        return tuple(dict.fromkeys((*self.proposers, *self.acceptors, *self.learners)))

    @property
    def answering(self) -> frozenset[str]:
        return frozenset(n for n, a in self.answers.items() if a.answered)

    def record(self, version: int) -> dict[str, Any]:
        """This membership as a `members` admin frame of `version`."""
        return {"op": "members", "version": version, "proposers": list(self.proposers),
                "acceptors": list(self.acceptors), "learners": list(self.learners),
                "retired": sorted(self.retired), "addresses": dict(self.addresses)}


def placed(endpoints: Endpoints, manifest: Manifest, names: Iterable[str],
           addresses: Mapping[str, str] = {}) -> Endpoints:
    """`endpoints` that also reach `names`: at `addresses` (a record's), else
    where the manifest's template or hosts place them (names it cannot
    place are left out: their dial fails, "not listening")."""
    if endpoints.tls is None:
        return endpoints
    known = dict(endpoints.tls.addresses)
    for name in names:
        if name in known:
            continue
        address = addresses.get(name) or placed_at(manifest, name)
        if address is not None:
            known[name] = address
    tls = dataclasses.replace(endpoints.tls, addresses=tuple(known.items()))
    return dataclasses.replace(endpoints, tls=tls)


def placed_at(manifest: Manifest, name: str) -> str | None:
    """The address the manifest places `name` at (by address, host or
    template), any name, in it or added since; None if it places it nowhere."""
    try:
        where = manifest.transport.placement(name)
    except ValueError:
        return None
    return where.address if where.placed else None


def current(endpoints: Endpoints, manifest: Manifest, also: Iterable[str] = (),
            timeout: float = ASK_SECONDS) -> Members:
    """The newest membership among the agents that answer (module docstring)."""
    base = Members(0, manifest.proposers, manifest.acceptors, manifest.learners)
    asked: dict[str, Answer] = {}
    best = base
    todo = tuple(dict.fromkeys((*base.names, *also)))
    for _ in range(2):  # the manifest's names, then those the newest record adds
        if not todo:
            break
        reach = placed(endpoints, manifest, todo, best.addresses)
        for answer in survey(reach, todo, timeout=timeout, learn=False):
            asked[answer.name] = answer
            best = _newer(best, answer.welcome)
        todo = tuple(n for n in best.names if n not in asked)
    return _with_view(best, asked)


def _newer(best: Members, welcome: dict[str, Any]) -> Members:
    version = welcome.get("members_version")
    body = welcome.get("membership")
    if type(version) is not int or version <= best.version or not isinstance(body, dict):
        return best
    try:
        return Members(version, _names(body, "proposers"), _names(body, "acceptors"),
                       _names(body, "learners"), frozenset(_names(body, "retired")),
                       {str(k): str(v) for k, v in dict(body.get("addresses", {})).items()},
                       frozenset(_names(body, "used")))
    except (TypeError, ValueError):
        return best  # a malformed answer teaches nothing


def _names(body: dict, key: str) -> tuple[str, ...]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise ValueError(key)
    return tuple(value)


def _with_view(best: Members, asked: dict[str, Answer]) -> Members:
    """`best` with the most advanced configuration view among the answers."""
    view = (-1, -1, ())
    for answer in asked.values():
        w = answer.welcome
        epoch, in_force, acceptors = w.get("epoch"), w.get("in_force_epoch"), w.get("acceptors")
        if type(epoch) is int and type(in_force) is int and isinstance(acceptors, list):
            view = max(view, (epoch, in_force, tuple(map(str, acceptors))),
                       key=lambda v: (v[0], v[1]))
    return dataclasses.replace(best, epoch=view[0], in_force_epoch=view[1],
                               config_acceptors=view[2], answers=dict(asked))
