"""Changing the chaos settings of a running cluster (`paxosctl chaos`).

The settings themselves, and how agents apply them to what they send,
are in `paxos_agents.runtime.chaos`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from paxos_agents.runtime.chaos import KINDS, ChaosSettings

__all__ = ["ChaosSettings", "update"]


def update(settings: ChaosSettings, changes: dict[str, Any], agents: tuple[str, ...]) -> ChaosSettings:
    """`settings` with `changes` applied; ValueError naming the bad field.

    `changes` holds any of drop, duplicate (fractions), delay (seconds),
    partition (agent names), drop_kinds (message kinds), drop_to (agent
    names; `drop_kinds` emptied empties it too) and heal (true: everything
    off).
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
        values["partition"] = _agent_names(changes, "partition", agents)
    if "drop_kinds" in changes:
        kinds = changes["drop_kinds"]
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            raise ValueError(f"drop_kinds: expected a list of message kinds; kinds: {', '.join(KINDS)}")
        values["drop_kinds"] = tuple(dict.fromkeys(kinds))
        if not kinds:  # the rule off: its targets go with it
            values["drop_to"] = ()
    if "drop_to" in changes:
        values["drop_to"] = _agent_names(changes, "drop_to", agents)
    return replace(settings, **values)  # ChaosSettings checks the kinds (ValueError)


def _agent_names(changes: dict[str, Any], key: str, agents: tuple[str, ...]) -> tuple[str, ...]:
    """`changes[key]` as agent names, each once; ValueError naming the agents if not."""
    names = changes[key]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{key}: expected a list of agent names")
    unknown = [n for n in names if n not in agents]
    if unknown:
        raise ValueError(f"{key}: no agent {unknown[0]!r}; agents: {', '.join(agents)}")
    return tuple(dict.fromkeys(names))
