"""paxosctl: run a Multi-Paxos cluster on one machine, one process per agent.

`from paxosctl import Client` drives a running cluster from Python.
"""

from typing import Any

__version__ = "0.2.0"
__all__ = ["Client", "Decision", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so `paxosctl --version` and friends start fast.
    if name in ("Client", "Decision"):
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'paxosctl' has no attribute {name!r}")
