"""paxosctl: run a Multi-Paxos cluster on one machine, one process per agent.

Drive a running cluster from Python:

    from paxosctl import Client
    with Client.for_manifest("cluster.toml") as client:
        print(client.propose("set x=1").position)
        print(client.status().leader)

`AsyncClient` is the same for asyncio. Every error the client raises is a
`PaxosctlError` with an `exit_code` (the one `paxosctl` exits with).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

if TYPE_CHECKING:
    # What type checkers see. At run time these names are imported on first
    # use (`__getattr__`), so `paxosctl --version` and friends start fast.
    from .client.aio import AsyncClient
    from .client.sync import Client, new_request_id
    from .client.decidedlog import DecidedCommand
    from .errors import (ConnectionLost, Expired, NotHealthy, NotRunning, OutcomeUnknown,
                         PaxosctlError, ProposalTimeout, RequestFailed, RequestIdConflict,
                         UsageError)
    from .client.results import (AgentChange, AgentStatus, ClusterStatus, Decision,
                                 DownResult, KillResult, MembershipChange, RestartResult)

#: Where each public name lives, imported when first asked for.
_LAZY = {
    "Client": "client.sync", "new_request_id": "client.sync",
    "AsyncClient": "client.aio",
    "Decision": "client.results", "AgentChange": "client.results",
    "MembershipChange": "client.results", "DecidedCommand": "client.decidedlog",
    "AgentStatus": "client.results", "ClusterStatus": "client.results",
    "DownResult": "client.results", "KillResult": "client.results",
    "RestartResult": "client.results",
    **{name: "errors" for name in (
        "PaxosctlError", "NotRunning", "OutcomeUnknown", "ProposalTimeout", "ConnectionLost",
        "RequestFailed", "RequestIdConflict", "Expired", "NotHealthy", "UsageError")},
}

__all__ = [
    "__version__", "Client", "AsyncClient", "new_request_id",
    "Decision", "DecidedCommand",
    "ClusterStatus", "AgentStatus", "KillResult", "RestartResult", "DownResult", "AgentChange", "MembershipChange",
    "PaxosctlError", "NotRunning", "OutcomeUnknown", "ProposalTimeout", "ConnectionLost",
    "RequestFailed", "RequestIdConflict", "Expired", "NotHealthy", "UsageError",
]  # a literal list: type checkers read it to know what is exported


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'paxosctl' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
