"""The asyncio client: `paxosctl.Client` for coroutines.

    from paxosctl import AsyncClient
    async with AsyncClient.for_manifest("cluster.toml") as client:
        decision = await client.propose("set x=1")
        results = await client.propose_many([f"v{i}" for i in range(100)])  # Proposed each
        async for entry in client.follow():       # new decisions, as they are applied
            print(entry.position, entry.value)

It wraps the threaded client rather than reimplementing the wire: the
I/O thread of `DataClient` (one per client, already batching commands
and retrying) resolves `concurrent.futures.Future`s, and
`asyncio.wrap_future` hands each result to the event loop with one
`call_soon_threadsafe`. A native asyncio transport would save that hop
but would be a second implementation of the retry, leader and
exactly-once rules (dataclient's docstring), which is where the bugs
live. The futures are created already running, so cancelling an awaiting
task never cancels the request underneath (a proposal that left may still
be decided; cancelling the task only stops waiting).

Nothing here blocks the event loop for long: connecting is a Unix-socket
`connect`, which succeeds or fails at once; `close` (which joins the I/O
thread) runs in a worker thread.

Errors and exit codes are those of `paxosctl.client.Client`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import TracebackType
from typing import Any, AsyncIterator, Iterable

from .sync import ANSWER_GRACE, REQUEST_TIMEOUT, Client, checked_reply, new_request_id
from .datapath import Decision, retry_hint
from .decidedlog import PAGE_SIZE, DecidedCommand, read_log_async
from ..errors import ConnectionLost, OutcomeUnknown, ProposalTimeout
from .results import (ClusterStatus, DownResult, KillResult, MembershipChange, Proposed,
                      RestartResult)

__all__ = ["AsyncClient"]


class AsyncClient:
    """One cluster, for asyncio: the methods of `Client`, as coroutines.

    Connects to the supervisor's control socket at once (`NotRunning`,
    exit 1, if nobody listens). Use `async with`, or `await close()`.
    Use it from one event loop.
    """

    def __init__(self, socket_path: str | Path, *, cluster_file: str | None = None) -> None:
        self._client = Client(socket_path, cluster_file=cluster_file)

    @classmethod
    def for_manifest(cls, manifest_path: str | Path) -> AsyncClient:
        """Connect to the cluster that `manifest_path` describes: `ManifestError`
        (exit 2) if it does not load, `NotRunning` (1) if it does not run."""
        return cls.wrapping(Client.for_manifest(manifest_path))

    @classmethod
    def wrapping(cls, client: Client) -> AsyncClient:
        """An asyncio face for a connected threaded `client` (closing one closes both)."""
        self = cls.__new__(cls)
        self._client = client
        return self

    @property
    def sync(self) -> Client:
        """The threaded client underneath (for `propose_async` and friends)."""
        return self._client

    async def close(self) -> None:
        """Close both paths; what is still in flight fails as `Client.close` says."""
        await asyncio.to_thread(self._client.close)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # ------------------------------------------------------------ proposals

    def propose_nowait(self, value: bytes | str, *, request_id: str | None = None,
                       timeout: float = 10.0, issued: int | None = None,
                       fresh: bool = False) -> asyncio.Future[Decision]:
        """Queue `value` for proposal now (before any await) and return an
        asyncio future of its `Decision`: gather many of them to keep them
        in flight at once. Call from a coroutine (it needs the running
        loop). The future fails as `propose` does, with `ProposalTimeout`
        at `timeout` (the data path's own deadline)."""
        return asyncio.wrap_future(self._client.propose_async(
            value, request_id=request_id, timeout=timeout, issued=issued, fresh=fresh))

    async def propose(self, value: bytes | str, *, request_id: str | None = None,
                      timeout: float = 10.0, issued: int | None = None,
                      fresh: bool = False) -> Decision:
        """Propose `value` and wait until it is decided: its `Decision`.
        Arguments and errors as `Client.propose`: `ProposalTimeout` (exit
        124, retry with its `request_id`) after `timeout` seconds (and
        `ANSWER_GRACE`), whatever the servers do. Cancelling the awaiting
        task stops the wait, not the proposal."""
        if request_id is None:
            request_id, fresh = new_request_id(), True
        future = self.propose_nowait(value, request_id=request_id, timeout=timeout,
                                     issued=issued, fresh=fresh)
        try:
            return await asyncio.wait_for(future, timeout + ANSWER_GRACE)
        except TimeoutError:
            raise ProposalTimeout(
                f"no answer within {timeout:g}s: request {request_id} may still be decided",
                hint=retry_hint(request_id), request_id=request_id) from None

    async def propose_many(self, values: Iterable[bytes | str], *, timeout: float = 10.0,
                           ) -> list[Proposed]:
        """Propose many values at once and wait: one `Proposed` per value, in
        order (its request id, and its `decision` or typed `error`). The
        contract of `Client.propose_many`: one future for the call, not
        atomic nor ordered in the log, at `timeout` only the unanswered
        values fail (`ProposalTimeout`, retry by id); `UsageError` before
        anything is sent if a value is bad. Cancelling the awaiting task
        stops the wait, not the proposals."""
        batch = self._client.propose_many_async(values, timeout=timeout)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(batch), timeout + ANSWER_GRACE)
        except TimeoutError:
            return batch.so_far()

    # ------------------------------------------------------- the decided log

    async def decided(self, start: int | None = None,
                      limit: int | None = None) -> list[DecidedCommand]:
        """The decided log from `start`, at most `limit` entries: as `Client.decided`."""
        return [entry async for entry in self.iter_decided(start, limit=limit)]

    def follow(self, start: int | None = None, *,
               limit: int | None = None) -> AsyncIterator[DecidedCommand]:
        """`async for` over the decided log from `start`, then over each new
        decision as it is applied, without end (or up to `limit` entries).
        Raises as `Client.iter_decided`."""
        return self.iter_decided(start, limit=limit, follow=True)

    async def iter_decided(self, start: int | None = None, *, limit: int | None = None,
                           follow: bool = False, page_size: int = PAGE_SIZE,
                           ) -> AsyncIterator[DecidedCommand]:
        """As `Client.iter_decided`, for `async for`: the same pages, the
        same cursor (`paxosctl.client.decidedlog.LogCursor`)."""
        async for entry in read_log_async(self._client.data(), start, limit=limit,
                                          follow=follow, page_size=page_size):
            yield entry

    # ------------------------------------------------------- control plane

    async def request(self, op: str, timeout: float | None = REQUEST_TIMEOUT,
                      **fields: Any) -> dict[str, Any]:
        """As `Client.request`: the supervisor's reply dict, or the same errors."""
        future = asyncio.wrap_future(self._client.request_async(op, **fields))
        try:
            reply = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise OutcomeUnknown(f"the supervisor for {self._client.cluster_file} did not "
                                 f"answer {op!r} within {timeout:g}s") from None
        except ConnectionLost:
            raise ConnectionLost(f"the supervisor for {self._client.cluster_file} closed the "
                                 f"connection before it answered {op!r}") from None
        return checked_reply(op, reply)

    async def status(self, wide: bool = False) -> ClusterStatus:
        """As `Client.status`."""
        return ClusterStatus.from_wire(await self.request("status", wide=wide))

    async def kill(self, agent: str, signal: str = "KILL") -> KillResult:
        """As `Client.kill`."""
        return KillResult.from_wire(await self.request("kill", agent=agent, signal=signal))

    async def restart(self, agent: str) -> RestartResult:
        """As `Client.restart`."""
        return RestartResult.from_wire(await self.request("restart", agent=agent))

    async def scale(self, group: str, replicas: int, wait: float = 60) -> MembershipChange:
        """As `Client.scale`."""
        return MembershipChange.from_wire(await self.request(
            "scale", timeout=wait + 10, group=group, replicas=replicas, wait=wait))

    async def replace(self, agent: str, force: bool = False, wait: float = 60) -> MembershipChange:
        """As `Client.replace`."""
        return MembershipChange.from_wire(await self.request(
            "replace", timeout=wait + 10, agent=agent, force=force, wait=wait))

    async def down(self) -> DownResult:
        """As `Client.down`."""
        result = DownResult.from_wire(await self.request("down"))
        self._client.stopped_cluster()
        return result
