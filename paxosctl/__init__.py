"""paxosctl: run a Multi-Paxos cluster on one machine, one process per agent.

`from paxosctl import Client` drives a running cluster from Python.
"""

__version__ = "0.1.0"

from .client import Client, Decision  # noqa: E402

__all__ = ["Client", "Decision", "__version__"]
