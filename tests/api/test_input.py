"""Bad input to the Python client is refused at the call, and never hurts the client.

Issue 20 (11): a request id over 65,535 bytes, or with a lone surrogate,
killed the data path's I/O thread (every later call raised NotRunning);
ids "" and "\\0..." waited out the whole timeout. Each bad argument now
raises `UsageError` (exit 2, one line naming the argument) before
anything is sent, and the same client object then proposes as ever.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from clusters import Cluster, wait_until
from paxosctl import AsyncClient
from paxosctl.client import datapath as dataclient
from paxosctl.errors import UsageError

#: The api cluster's paxos.max_value_bytes (the manifest's default).
LIMIT = 65536

#: (what is wrong, propose's keyword arguments, a word the one-line error names)
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("id-bytes", {"request_id": b"r1"}, "request_id"),
    ("id-int", {"request_id": 7}, "request_id"),
    ("id-empty", {"request_id": ""}, "non-empty"),
    ("id-nul", {"request_id": "\0mine"}, "NUL"),
    ("id-config-prefix", {"request_id": "\0config:1:00:0"}, "NUL"),
    ("id-lone-surrogate", {"request_id": "r\ud800"}, "UTF-8"),
    ("id-1025-bytes", {"request_id": "r" * 1025}, "1024"),
    ("id-1026-bytes-of-utf8", {"request_id": "\u00e9" * 513}, "1024"),
    ("id-65536-bytes", {"request_id": "r" * 65536}, "1024"),
    ("value-int", {"value": 5}, "bytes or str"),
    ("value-none", {"value": None}, "bytes or str"),
    ("value-list", {"value": [b"a"]}, "bytes or str"),
    ("value-lone-surrogate", {"value": "v\udcff"}, "UTF-8"),
    ("value-over-limit", {"value": b"x" * (LIMIT + 1)}, "max_value_bytes"),
    ("issued-2**63", {"request_id": "r-issued", "issued": 2**63}, "issued"),
    ("issued--2", {"request_id": "r-issued", "issued": -2}, "issued"),
    ("issued-float", {"request_id": "r-issued", "issued": 1.0}, "issued"),
    ("issued-bool", {"request_id": "r-issued", "issued": True}, "issued"),
    ("issued-str", {"request_id": "r-issued", "issued": "3"}, "issued"),
    ("timeout-nan", {"timeout": float("nan")}, "timeout"),
    ("timeout-zero", {"timeout": 0}, "timeout"),
    ("timeout-inf", {"timeout": float("inf")}, "timeout"),
]


def test_bad_input_is_a_usage_error_at_the_call_and_the_client_goes_on(
        api_cluster: Cluster) -> None:
    """One client object for every case: after each refusal a good proposal
    on it is decided (a dead I/O thread would raise NotRunning)."""
    api_cluster.wait_healthy()
    with api_cluster.client() as client:
        client.propose(b"warm up")  # the data path is open: refusals are not NotRunning
        for what, bad, names in BAD:
            kwargs = {"value": b"v", "timeout": 10, **bad}
            started = time.monotonic()
            with pytest.raises(UsageError) as caught:
                client.propose(**kwargs)
            took = time.monotonic() - started
            message = str(caught.value)
            assert caught.value.exit_code == 2, what
            assert names in message and "\n" not in message, (what, message)
            assert took < 1, f"{what}: refused after {took:.1f}s (it waited for an answer)"
            # The asynchronous call refuses at the call too, not in its future.
            with pytest.raises(UsageError):
                client.propose_async(**kwargs)
            good = client.propose(f"after {what}", timeout=20)
            assert good.value == f"after {what}".encode(), what
        # The edges that are allowed: an id of exactly 1024 bytes, stamp -1.
        assert client.propose(b"edge", request_id="r" * 1024, fresh=True).request_id == "r" * 1024
        assert client.propose(b"stamped", request_id="r-stamped", issued=-1).value == b"stamped"
        assert client.propose(b"x" * LIMIT, timeout=20).value == b"x" * LIMIT


def test_a_command_that_cannot_be_encoded_fails_alone(api_cluster: Cluster,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """If a bad id ever got past `check_proposal`, only its own future fails:
    the commands queued with it are proposed and the I/O thread lives."""
    api_cluster.wait_healthy()
    with api_cluster.client() as client:
        data = client.data()
        monkeypatch.setattr(dataclient, "check_proposal",
                            lambda value, *_: value if isinstance(value, bytes) else value.encode())
        # Queued together (one wake-up): one PROPOSE batch, whose encoding fails.
        futures = [data.propose_async(b"ok %d" % i, request_id=f"batch-ok-{i}", timeout=20,
                                      fresh=True) for i in range(3)]
        bad = data.propose_async(b"bad", request_id="bad\ud800", timeout=20, fresh=True)
        huge = data.propose_async(b"huge", request_id="h" * 70_000, timeout=20, fresh=True)
        for refused in (bad, huge):
            with pytest.raises(UsageError) as caught:
                refused.result(5)
            assert "cannot be sent" in str(caught.value)
        assert [f.result(20).value for f in futures] == [b"ok 0", b"ok 1", b"ok 2"]
        assert client.propose(b"still alive", timeout=20).value == b"still alive"


def test_the_async_client_refuses_at_the_call(api_cluster: Cluster) -> None:
    """AsyncClient: the same rules; propose_many sends nothing if one value is bad."""
    api_cluster.wait_healthy()

    async def main() -> None:
        async with AsyncClient.for_manifest(api_cluster.manifest) as client:
            with pytest.raises(UsageError):
                await client.propose(b"v", request_id="\0x")
            with pytest.raises(UsageError):
                await client.propose(b"v", request_id="r-async-issued", issued=2**63)
            start = (await client.propose(b"async before")).slot
            with pytest.raises(UsageError):
                await client.propose_many([b"async many 0", 7, b"async many 2"])
            end = (await client.propose(b"async after")).slot
            values = [e.value for e in await client.decided(start) if e.slot <= end]
            assert b"async many 0" not in values and b"async after" in values

    asyncio.run(asyncio.wait_for(main(), 60))


def test_five_of_the_largest_values_at_once_restart_no_agent(make_cluster) -> None:
    """Issue 20 (7): five concurrent 15 MiB proposals got both proposers and an
    acceptor health-killed. Now the largest value the manifest allows, five
    at once: each decided, each alone in its slot (two would exceed the
    slot budget), and every agent still the process it was."""
    from paxosctl.manifest import MAX_VALUE_BYTES

    cluster = make_cluster("roles", name="large", paxos={"max_value_bytes": MAX_VALUE_BYTES})
    with cluster.client() as client:
        before = {a.name: a.pid for a in client.status().agents}
        values = [bytes([i]) * MAX_VALUE_BYTES for i in range(5)]
        futures = [client.propose_async(v, timeout=60) for v in values]
        decisions = [f.result(90) for f in futures]
        assert [d.value for d in decisions] == values
        assert len({d.slot for d in decisions}) == 5, [d.position for d in decisions]
        # A stall would show as a heartbeat older than heartbeat_timeout (3 s), then a
        # kill: once every agent has reported since, none can be killed for this.
        wait_until(lambda: all(a.last_heartbeat_s is not None and a.last_heartbeat_s < 0.5
                               for a in client.status(wide=True).agents), 20,
                   "every agent to heartbeat")
        after = client.status()
        assert {a.name: a.pid for a in after.agents} == before
        assert all(a.restarts == 0 for a in after.agents), after.agents
