"""Test-only fault injection at the storage's crash points.

Switched on by the environment variable `PAXOSCTL_FAULTS` (inherited by
the agents from the supervisor), never by the manifest:

    PAXOSCTL_FAULTS="acceptor-0:after-write:3:crash;learner-1:before-write:1:eio"

Each rule is `agent:point:n:action`: at the n-th time agent passes point
(`open`: the store was opened, before it is read; `before-write`,
`after-write`: written but not committed, `before-commit`: about to
commit what was written, maybe over several loop turns (a learner's group
commit), `after-commit`: committed but nothing answered yet), do action:

- `crash`: SIGKILL itself, as `kill -9` at that instant would;
- `eio`: fail the way SQLite reports an fsync error (`disk I/O error`);
- `full`: fail the way SQLite reports a full disk;
- `slow`: take `SLOW_SECONDS` there (a long migration of an old state file).

A rule fires once per state file: it leaves `<state file>.fault-<point>`
behind, so the restarted agent does not fire it again.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from typing import Callable

ENV = "PAXOSCTL_FAULTS"
POINTS = ("open", "before-write", "after-write", "before-commit", "after-commit")
ACTIONS = ("crash", "eio", "full", "slow")
#: How long the `slow` action takes.
SLOW_SECONDS = 4.0


def storage_fault(agent: str, state_path: str,
                  spec: str | None = None) -> Callable[[str], None] | None:
    """The hook for `SqliteStorage(fault=...)` that `spec` (default: the environment) asks for."""
    spec = os.environ.get(ENV, "") if spec is None else spec
    rules: dict[str, tuple[int, str]] = {}
    for rule in filter(None, (r.strip() for r in spec.split(";"))):
        parts = rule.split(":")
        if len(parts) != 4 or parts[1] not in POINTS or parts[3] not in ACTIONS \
                or not parts[2].isdigit() or int(parts[2]) < 1:
            raise ValueError(f"{ENV}: bad rule {rule!r}; expected agent:point:n:action with "
                             f"point in {', '.join(POINTS)} and action in {', '.join(ACTIONS)}")
        if parts[0] == agent:
            rules[parts[1]] = (int(parts[2]), parts[3])
    if not rules:
        return None
    seen = dict.fromkeys(rules, 0)

    def fault(point: str) -> None:
        rule = rules.get(point)
        if rule is None:
            return
        seen[point] += 1
        marker = f"{state_path}.fault-{point}"
        if seen[point] != rule[0] or os.path.exists(marker):
            return
        with open(marker, "w"):
            pass
        action = rule[1]
        if action == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "slow":
            time.sleep(SLOW_SECONDS)
        elif action == "eio":
            raise sqlite3.OperationalError("disk I/O error (injected by PAXOSCTL_FAULTS)")
        else:
            raise sqlite3.OperationalError("database or disk is full (injected by PAXOSCTL_FAULTS)")

    return fault
