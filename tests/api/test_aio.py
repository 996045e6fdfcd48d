"""The asyncio client on a live cluster: propose, many at once, status,
the decided log, following it with `async for`, cancelling, `async with`."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import pytest

from paxosctl.layout import paths

from clusters import Cluster, ClusterFactory
from paxosctl import (AsyncClient, ClusterStatus, Decision, DownResult, NotRunning,
                      RequestFailed)
from paxosctl.supervisor.control import Fault


def run(body: Callable[[AsyncClient], Awaitable[Any]], cluster: Cluster, timeout: float = 60) -> Any:
    """Run `body(client)` in a fresh event loop, bounded by `timeout`."""
    async def main() -> Any:
        async with AsyncClient.for_manifest(cluster.manifest) as client:
            return await asyncio.wait_for(body(client), timeout)
    return asyncio.run(main())


def test_propose_and_many_at_once(api_cluster: Cluster) -> None:
    async def body(client: AsyncClient) -> None:
        one = await client.propose(b"async one")
        assert isinstance(one, Decision) and one.value == b"async one"
        results = await client.propose_many([f"many {i}" for i in range(50)])
        many = [p.result() for p in results]
        assert [d.value for d in many] == [f"many {i}".encode() for i in range(50)]
        assert [d.request_id for d in many] == [p.request_id for p in results]
        assert len({d.position for d in many}) == 50
        # Futures queued before any await are in flight together: gather them.
        futures = [client.propose_nowait(f"gathered {i}") for i in range(20)]
        gathered = await asyncio.gather(*futures)
        log = {e.request_id: e for e in await client.decided(one.slot)}
        for d in [one, *many, *gathered]:
            assert (log[d.request_id].slot, log[d.request_id].value) == (d.slot, d.value)
    run(body, api_cluster)


def test_status_and_errors(api_cluster: Cluster) -> None:
    async def body(client: AsyncClient) -> None:
        status = await client.status()
        assert isinstance(status, ClusterStatus)
        assert {a.name for a in status.agents} == set(api_cluster.agent_names)
        with pytest.raises(RequestFailed) as caught:
            await client.restart("no-such-agent")
        assert caught.value.fault is Fault.BAD_REQUEST and caught.value.exit_code == 2
        assert (await client.request("ping"))["cluster"] == "api"
    api_cluster.wait_healthy()
    run(body, api_cluster)


def test_follow_with_async_for(api_cluster: Cluster) -> None:
    async def body(client: AsyncClient) -> None:
        first = await client.propose("async before")
        follow = client.follow(first.slot)
        assert (await asyncio.wait_for(anext(follow), 20)).request_id == first.request_id
        later = [await client.propose(f"async followed {i}") for i in range(3)]
        seen = [await asyncio.wait_for(anext(follow), 20) for _ in later]
        assert [(e.slot, e.index) for e in seen] == [(d.slot, d.index) for d in later]
        await follow.aclose()
        # A limit ends it.
        start = later[-1].slot + 1

        async def one_more() -> list:
            return [e async for e in client.iter_decided(start, follow=True, limit=1)]
        task = asyncio.ensure_future(one_more())
        decision = await client.propose("async limited")
        [entry] = await asyncio.wait_for(task, 20)
        assert start <= entry.slot <= decision.slot
    run(body, api_cluster)


def test_cancelling_a_waiting_task_does_not_cancel_the_proposal(api_cluster: Cluster) -> None:
    """The task stops waiting; the proposal, already sent, is still decided,
    and the client goes on working."""
    async def body(client: AsyncClient) -> None:
        future = client.propose_nowait("cancelled waiter")
        waiter = asyncio.ensure_future(asyncio.shield(future))
        waiter.cancel()
        task = asyncio.ensure_future(client.propose("cancelled task", request_id="cancel-me",
                                                    fresh=True))
        await asyncio.sleep(0)  # let it send
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        after = await client.propose("after the cancel")
        decided = {e.request_id for e in await client.decided()}
        assert "cancel-me" in decided and after.request_id in decided
        assert (await future).value == b"cancelled waiter"
    run(body, api_cluster)


def test_down_and_what_follows(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster("replicas", name="aio-down")

    async def body(client: AsyncClient) -> None:
        assert await client.down() == DownResult(stopped=True)
        # Answered after the supervisor stopped listening: nobody can connect now.
        assert not paths(cluster.state_dir)["socket"].exists()
        with pytest.raises(NotRunning):
            await client.status()
    run(body, cluster)
    with pytest.raises(NotRunning):
        AsyncClient.for_manifest(cluster.manifest)
