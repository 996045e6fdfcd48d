"""The client library: what a program uses to drive a running cluster.

- `sync.Client` and `aio.AsyncClient`: the control requests (to the
  supervisor's socket) and the data path, typed results (`results`);
- `datapath.DataClient`: the data path's API (commands straight to the
  proposers, answers straight from a learner); `handoff` what its callers
  hand its I/O thread, `dataloop` that thread (`links` its connections),
  `tracker` its per-request state machine without sockets, `outcomes` how
  a request ends, `following` which learner to read from;
- `decidedlog`: reading the decided log, a page at a time or followed.

May import: the shared top modules of `paxosctl` (errors, manifest,
layout, endpoints...) and `paxos_agents.runtime`'s wire formats; never
the supervisor, the membership wing, the tools or the CLI (a client runs
where no supervisor does). `from paxosctl import Client` is the public
path; `paxosctl.client.Client` and `paxosctl.client.AsyncClient` work too,
imported on first use so that importing a module of this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .aio import AsyncClient
    from .sync import Client

_LAZY = {"Client": "sync", "AsyncClient": "aio"}

__all__ = ["Client", "AsyncClient"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'paxosctl.client' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)
