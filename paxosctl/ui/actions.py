"""What the page may do (only with --allow-actions): the control requests
that `paxosctl kill` and `paxosctl chaos` send to the supervisor.

    kill AGENT           -> "kill" {agent, signal: KILL}   (restarted per policy)
    cut AGENT            -> "chaos" {partition: [AGENT]}   (cut off from the rest)
    heal                 -> "chaos" {heal: true}           (every fault off)
    slow SECONDS         -> "chaos" {delay: SECONDS}       (0: off)

An action is a JSON object {"action": ..., "agent"?: ..., "seconds"?: ...};
`parse` turns it into an `Action` or raises `BadAction` naming what is
wrong and what is allowed; `run` sends it on a fresh control connection
and returns the supervisor's reply (or raises its `PaxosctlError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The actions and the fields each takes.
ACTIONS = {"kill": ("agent",), "cut": ("agent",), "heal": (), "slow": ("seconds",)}

#: The longest delay the page may set: enough to follow one slot by eye.
MAX_SLOW_SECONDS = 2.0


class BadAction(ValueError):
    """An action the page sent that is not one of `ACTIONS`, or bad fields."""


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    agent: str | None = None
    seconds: float | None = None

    def request(self) -> tuple[str, dict[str, Any]]:
        """The control request (op, fields) that does it."""
        if self.name == "kill":
            return "kill", {"agent": self.agent, "signal": "KILL"}
        if self.name == "cut":
            return "chaos", {"partition": [self.agent]}
        if self.name == "heal":
            return "chaos", {"heal": True}
        return "chaos", {"delay": self.seconds}


def parse(body: object, agents: set[str]) -> Action:
    """The action `body` asks for; `agents`: the names it may name."""
    if not isinstance(body, dict) or not isinstance(body.get("action"), str):
        raise BadAction(f"expected a JSON object with \"action\": one of {', '.join(ACTIONS)}")
    name = body["action"]
    if name not in ACTIONS:
        raise BadAction(f"action {name[:40]!r} unknown; actions: {', '.join(ACTIONS)}")
    extra = set(body) - {"action", *ACTIONS[name]}
    if extra:
        raise BadAction(f"{name}: unexpected {', '.join(sorted(extra))}; it takes "
                        f"{', '.join(ACTIONS[name]) or 'nothing else'}")
    if "agent" in ACTIONS[name]:
        agent = body.get("agent")
        if agent not in agents:
            raise BadAction(f"{name}: agent {str(agent)[:40]!r} unknown; agents: "
                            f"{', '.join(sorted(agents))}")
        return Action(name, agent=agent)
    if name == "slow":
        seconds = body.get("seconds")
        if (type(seconds) not in (int, float) or not 0 <= seconds <= MAX_SLOW_SECONDS):
            raise BadAction(f"slow: seconds must be a number from 0 to {MAX_SLOW_SECONDS:g}")
        return Action(name, seconds=float(seconds))
    return Action(name)


def run(action: Action, socket_path: Path, cluster_file: str) -> dict[str, Any]:
    """Send `action` to the supervisor at `socket_path`; its reply.
    Raises `NotRunning` without a supervisor, `RequestFailed` if refused."""
    from ..client.sync import Client

    op, fields = action.request()
    with Client(socket_path, cluster_file=cluster_file) as client:
        return client.request(op, **fields)
