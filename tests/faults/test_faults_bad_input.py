"""Bad input never takes the cluster down.

The control socket (JSON lines, `paxosctl.supervisor.control`) gets malformed JSON,
non-objects, requests with no "op", truncated and oversized lines, unknown
ops, fields of the wrong type, clients that hang up mid-request and a
hundred connections opened and dropped. After each, the supervisor is the
same live process and answers `status` within 2 s; each bad request that
was complete gets `ok: false` with a message naming what is wrong.

Manifests: hypothesis writes random documents (wrong types, unknown keys,
huge numbers, odd unicode) as TOML; `load_manifest` raises nothing but a
one-line `ManifestError`, and `paxosctl validate` exits 0 or 2 with a
one-line `error:`, never a traceback.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import string
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paxos_agents.core.commands import Command
from paxos_agents.runtime import clientwire as wire
from paxos_agents.runtime import frames
from paxos_agents.runtime.transport import CLIENT, hello
from paxosctl import Client
from paxosctl.endpoints import read_endpoints
from paxosctl.supervisor.control import MAX_REQUEST_BYTES
from paxosctl.errors import ManifestError
from paxosctl.manifest import load_manifest

from .harness import (
    ClusterFactory,
    FaultCluster,
    alive,
    describe,
    fault_tmpdir,
    paxosctl,
    wait_until,
)

#: How long the supervisor may take to answer `status` after abuse.
PROMPT = 2.0


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def fault_live(module_clusters: ClusterFactory) -> Iterator[tuple[FaultCluster, psutil.Process]]:
    """The module's cluster and its supervisor process, started again if an
    earlier test killed it (so one failure does not cascade). Each test then
    checks, with `assert_serving`, that this very process still serves."""
    factory = module_clusters
    cluster = factory.clusters[-1] if factory.clusters else None
    if cluster is None or cluster.supervisor() is None:
        cluster = factory("roles", name="bad", paxos={"max_value_bytes": 4096})
    supervisor = cluster.supervisor()
    assert supervisor is not None
    yield cluster, supervisor


def assert_serving(cluster: FaultCluster, supervisor: psutil.Process) -> None:
    """The same supervisor process is alive and answers `status` within PROMPT seconds."""
    assert alive(supervisor), f"the supervisor (pid {supervisor.pid}) died"
    started = time.monotonic()
    with Client.for_manifest(cluster.manifest) as client:
        status = client.request("status", timeout=PROMPT)
    assert time.monotonic() - started < PROMPT
    assert status["cluster"] == cluster.name
    assert alive(supervisor), f"the supervisor (pid {supervisor.pid}) died"


def connect(cluster: FaultCluster, timeout: float = 5.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(cluster.state_dir / "control.sock"))
    return sock


def read_reply(sock: socket.socket) -> dict[str, Any] | None:
    """The next reply line, or None if the connection closed first."""
    buffer = b""
    while b"\n" not in buffer:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return None
        if not chunk:
            return None
        buffer += chunk
    return json.loads(buffer.split(b"\n", 1)[0])


def exchange(cluster: FaultCluster, line: bytes) -> dict[str, Any] | None:
    with connect(cluster) as sock:
        sock.sendall(line)
        return read_reply(sock)


def assert_refused(reply: dict[str, Any] | None, *, error: str = "bad_request",
                   naming: str | None = None, request_id: Any = None) -> None:
    assert reply is not None, "no reply: the connection closed"
    assert reply.get("ok") is False, reply
    assert reply.get("error") == error, reply
    message = reply.get("message")
    assert isinstance(message, str) and message.strip(), reply
    assert "\n" not in message, reply
    assert "Traceback" not in message, reply
    if naming is not None:
        assert naming in message, f"the message does not name {naming!r}: {message!r}"
    if request_id is not None:
        assert reply.get("id") == request_id, reply


# ------------------------------------------------------- malformed requests


@pytest.mark.parametrize("line", [
    b'{"id": 1, "op": "status",\n',
    b"{op: status}\n",
    b'{"id": 1, "op": "status"}}\n',
    b"\xff\xfe\x00garbage\n",
    b"NaN-ish nonsense\n",
    b'{"id": 1, "op": "stat\n',
], ids=["unclosed", "unquoted", "trailing", "not-utf8", "words", "cut-string"])
def test_malformed_json_gets_an_error_reply(fault_live, line: bytes) -> None:
    cluster, supervisor = fault_live
    assert_refused(exchange(cluster, line), naming="JSON")
    assert_serving(cluster, supervisor)


@pytest.mark.parametrize("line", [b"[1, 2]\n", b'"status"\n', b"42\n", b"null\n", b"true\n",
                                  b'[{"op": "status"}]\n'])
def test_a_request_that_is_not_an_object_is_refused(fault_live, line: bytes) -> None:
    cluster, supervisor = fault_live
    assert_refused(exchange(cluster, line), naming="object")
    assert_serving(cluster, supervisor)


@pytest.mark.parametrize("request_", [{"id": 7}, {"id": 7, "op": 5}, {"id": 7, "op": None},
                                      {"id": 7, "op": ["status"]}])
def test_a_request_without_an_op_string_is_refused(fault_live, request_: dict) -> None:
    cluster, supervisor = fault_live
    reply = exchange(cluster, json.dumps(request_).encode() + b"\n")
    assert_refused(reply, naming="op", request_id=7)
    assert_serving(cluster, supervisor)


@pytest.mark.parametrize("op", ["frobnicate", "", "_op_status", "__init__", "STATUS", "status "])
def test_an_unknown_op_is_refused_by_name(fault_live, op: str) -> None:
    cluster, supervisor = fault_live
    reply = exchange(cluster, json.dumps({"id": 9, "op": op}).encode() + b"\n")
    assert_refused(reply, error="unknown_op", naming=repr(op), request_id=9)
    assert "status" in reply["message"], "the message lists the known ops"
    assert_serving(cluster, supervisor)


#: (request, the word its error message must contain).
WRONG_FIELDS = [
    ({"op": "kill", "agent": "nobody"}, "nobody"),
    ({"op": "kill"}, "agent"),
    ({"op": "kill", "agent": ["acceptor-0"]}, "agent"),
    ({"op": "kill", "agent": "acceptor-0", "signal": "BOGUS"}, "BOGUS"),
    ({"op": "restart", "agent": "nobody"}, "nobody"),
    ({"op": "chaos", "drop": "x"}, "drop"),
    ({"op": "chaos", "drop": 2}, "drop"),
    ({"op": "chaos", "duplicate": -0.5}, "duplicate"),
    ({"op": "chaos", "delay": "5ms"}, "delay"),
    ({"op": "chaos", "partition": "acceptor-0"}, "partition"),
    ({"op": "chaos", "partition": ["nobody"]}, "nobody"),
]


@pytest.mark.parametrize("request_,naming", WRONG_FIELDS,
                         ids=[f"{r['op']}-{naming}-{i}" for i, (r, naming) in enumerate(WRONG_FIELDS)])
def test_wrong_field_types_are_refused_by_name(fault_live, request_: dict, naming: str) -> None:
    cluster, supervisor = fault_live
    line = json.dumps({"id": 11, **request_}).encode() + b"\n"  # inf is written as Infinity
    assert_refused(exchange(cluster, line), naming=naming, request_id=11)
    assert_serving(cluster, supervisor)
    # A refused request changed nothing: no chaos in force, nobody killed.
    status = cluster.status()
    assert status["chaos"] == {}, status["chaos"]
    assert all(a["restarts"] == 0 and a["state"] == "running" for a in status["agents"]), status


@pytest.mark.parametrize("line", [
    b'{"id": 12, "op": "status", "x": ' + b"7" * 5000 + b"}\n",
    b'{"id": 12, "op": "status", "wide": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
    b"[" * 100_000 + b"]" * 100_000 + b"\n",
], ids=["5000-digit-number", "deep-field", "deep-array"])
def test_json_too_big_to_parse_is_refused(fault_live, line: bytes) -> None:
    """Valid JSON that Python's parser gives up on (an integer past its
    4300-digit limit, nesting past the recursion limit) is bad input like
    any other: an error reply, and the supervisor goes on."""
    cluster, supervisor = fault_live
    reply = exchange(cluster, line)
    assert_serving(cluster, supervisor)
    assert reply is not None and reply.get("ok") is False, reply
    assert reply.get("error") == "bad_request", reply


# ---------------------------------------------------- connections misbehaving


def test_truncated_request_then_hang_up(fault_live) -> None:
    cluster, supervisor = fault_live
    for partial in (b'{"id": 1, "op": "sta', b'{"id": 1, "op": "chaos", "drop": 0.5',
                    b"[" * 5000):
        with connect(cluster) as sock:
            sock.sendall(partial)  # no newline, then gone
        assert_serving(cluster, supervisor)
    # Half-closed: the server sees the end of the request stream but may still answer.
    with connect(cluster) as sock:
        sock.sendall(b'{"id": 2, "op": "sta')
        sock.shutdown(socket.SHUT_WR)
        reply = read_reply(sock)
        assert reply is None or reply.get("ok") is False, reply
    assert_serving(cluster, supervisor)
    assert not any(e["value"] == "trunc" for e in cluster.decided() if not e["noop"])


def test_oversized_line_is_refused_not_fatal(fault_live) -> None:
    """A request line over 32 MiB, sent in 1 MiB chunks: an error reply
    naming the limit, or a closed connection; never served, never fatal."""
    cluster, supervisor = fault_live
    chunk = b"a" * (1 << 20)
    total = MAX_REQUEST_BYTES + (2 << 20)
    with connect(cluster, timeout=30) as sock:
        sent = 0
        try:
            sock.sendall(b'{"id": 3, "op": "status", "pad": "')
            while sent < total:
                sock.sendall(chunk)
                sent += len(chunk)
            sock.sendall(b'"}\n')
        except (BrokenPipeError, ConnectionResetError):
            pass  # it hung up on us: allowed
        reply = read_reply(sock)
    assert reply is None or (reply.get("ok") is False and str(MAX_REQUEST_BYTES) in reply["message"]), (
        f"a {sent}-byte request was answered: {str(reply)[:200]}")
    assert_serving(cluster, supervisor)
    assert supervisor.memory_info().rss < 1 << 30, "the supervisor kept the oversized line"


def test_clients_hanging_up_mid_request(fault_live) -> None:
    """Proposals and queries on the data path whose clients hang up before
    the answer, and control requests nobody reads: every agent goes on, and
    a proposal sent whole is decided at most once."""
    cluster, supervisor = fault_live
    endpoints = read_endpoints(cluster.state_dir / "run", str(cluster.manifest))
    leader = cluster.status()["leader"]
    learner = endpoints.learners[0]
    rids = [f"hangup-{i}-{os.getpid()}" for i in range(5)]
    for rid in rids:
        with data_connection(endpoints, leader) as sock:
            sock.sendall(frames.pack([wire.PROPOSE + wire.encode_commands(
                [Command(rid, rid.encode(), -1)])]))
        with data_connection(endpoints, learner) as sock:
            sock.sendall(frames.pack([wire.SUBSCRIBE, wire.WATCH + wire.encode_ids([rid]),
                                      wire.QUERY + b'{"op": "decided", "from": 0, "id": 1}']))
        # closed before any answer
    with connect(cluster) as sock:
        sock.sendall(b'{"id": 4, "op": "status"}\n' * 50)  # many replies nobody reads
    assert_serving(cluster, supervisor)
    # Each whole proposal was decided once: proposing it again gets the same position.
    with Client.for_manifest(cluster.manifest) as client:
        positions = {rid: client.propose(rid, request_id=rid, timeout=10).position for rid in rids}
    log = [e for e in cluster.decided() if not e["noop"]]
    for rid in rids:
        found = [e for e in log if e["request_id"] == rid]
        assert [e["position"] for e in found] == [positions[rid]], found
    assert_serving(cluster, supervisor)


def data_connection(endpoints, agent: str) -> socket.socket:
    """A client connection to `agent`'s endpoint, greeted (HELLO sent, WELCOME read)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(endpoints.socket(agent))
    sock.sendall(frames.pack([hello(endpoints.cluster_id, CLIENT, 0, agent)]))
    reader = frames.FrameReader()
    got: list[bytes] = []
    while not got:
        data = sock.recv(65536)
        assert data, f"{agent} closed the connection during the handshake"
        got = reader.feed(data)
    assert got[0][:1] == frames.WELCOME, got[0][:80]
    return sock


#: Frames a client may send a proposer or learner that are not well formed.
BAD_FRAMES = [
    wire.PROPOSE,  # no commands
    wire.PROPOSE + b"\xff" * 3,
    wire.PROPOSE + b"\x05\x00\x00\x00",  # five commands, no arrays
    wire.PROPOSE + (1).to_bytes(4, "little") + b"\x02\x00\x01\x00\x00\x00" + b"\x00" * 8 + b"\xff\xfe" + b"x",
    wire.WATCH + b"\x05\x00ab",  # a request id cut short
    wire.QUERY + b"not json",
    wire.QUERY + b'{"op": "decided", "from": -1}',
    wire.QUERY + b'{"op": "decided", "from": 1e999}',
    wire.QUERY + b'{"op": "decided", "from": 99999999999999999999999999}',
    wire.QUERY + b'{"op": "decided", "limit": 0}',
    wire.QUERY + b'{"op": "frobnicate"}',
    wire.QUERY + b"[" * 5000,
    b"Z-unknown kind",
]


@pytest.mark.parametrize("role", ["proposer", "learner"])
def test_malformed_client_frames_are_refused_and_the_agent_goes_on(fault_live, role) -> None:
    """Every malformed frame gets an error reply (a REPLY frame with "error")
    or nothing; the agent keeps serving, and is not restarted."""
    cluster, supervisor = fault_live
    endpoints = read_endpoints(cluster.state_dir / "run", str(cluster.manifest))
    agent = (endpoints.proposers if role == "proposer" else endpoints.learners)[0]
    before = cluster.agent(agent)
    with data_connection(endpoints, agent) as sock:
        sock.sendall(frames.pack(BAD_FRAMES))
        reader = frames.FrameReader()
        replies: list[bytes] = []
        deadline = time.monotonic() + 10
        while len(replies) < len(BAD_FRAMES) and time.monotonic() < deadline:
            data = sock.recv(1 << 16)
            if not data:
                break
            replies += [f for f in reader.feed(data) if f[:1] == wire.REPLY]
    assert replies and all(b'"error"' in r for r in replies), replies[:3]
    # Still serving, same process.
    with Client.for_manifest(cluster.manifest) as client:
        client.propose(f"after-bad-frames-{role}", timeout=10)
    after = cluster.agent(agent)
    assert (after["pid"], after["restarts"]) == (before["pid"], before["restarts"])
    assert alive(psutil.Process(before["pid"])), f"{agent} died of a malformed frame"
    assert_serving(cluster, supervisor)


def test_a_wrong_handshake_on_the_data_path_is_refused(fault_live) -> None:
    cluster, supervisor = fault_live
    endpoints = read_endpoints(cluster.state_dir / "run", str(cluster.manifest))
    agent = endpoints.learners[0]
    for first in (b"garbage", hello("another-cluster", CLIENT, 0, agent),
                  hello(endpoints.cluster_id, "mallory", 0, agent),
                  hello(endpoints.cluster_id, CLIENT, 0, "someone-else")):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(endpoints.socket(agent))
            sock.sendall(frames.pack([first, wire.WATCH + wire.encode_ids(["x"])]))
            reader = frames.FrameReader()
            got: list[bytes] = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                got += reader.feed(data)
        assert [f[:1] for f in got] == [frames.REFUSE], got
    assert_serving(cluster, supervisor)



def test_a_hundred_connections_opened_and_dropped(fault_live) -> None:
    cluster, supervisor = fault_live
    assert_serving(cluster, supervisor)
    baseline = supervisor.num_fds()
    socks = []
    for i in range(100):
        sock = connect(cluster)
        if i % 3 == 1:
            sock.sendall(b'{"id": 1, "op": "stat')  # half a request
        elif i % 3 == 2:
            sock.sendall(b'{"id": 1, "op": "status"}\n')  # a request whose reply nobody reads
        socks.append(sock)
    assert_serving(cluster, supervisor)
    for sock in socks:
        sock.close()
    assert_serving(cluster, supervisor)
    # Every dropped connection is closed on the supervisor's side too.
    wait_until(lambda: supervisor.num_fds() <= baseline + 2, 10,
               f"the supervisor to close the dropped connections (had {baseline} fds)")


# ------------------------------------------------- text that is not Unicode


def _supervisor_log(cluster: FaultCluster) -> Path:
    return cluster.state_dir / "logs" / "supervisor.log"


@pytest.mark.parametrize(("line", "naming"), [
    (b'{"id": 21, "op": "propose", "value": "a\\ud800b", "request_id": "lone-surrogate"}',
     '"value"'),
    (b'{"id": 21, "op": "propose", "value": "caf\xe9", "request_id": "latin-1"}', '"value"'),
    (b'{"id": 21, "op": "propose", "value": "v", "request_id": "r\\udfff"}', '"request_id"'),
    (b'{"id": 21, "op": "kill", "agent": "\\udcff"}', '"agent"'),
    (b'{"id": 21, "op": "chaos", "partition": ["\xff\xfe"]}', '"partition"[0]'),
], ids=["surrogate-value", "byte-value", "surrogate-request-id", "surrogate-agent", "byte-list"])
def test_text_that_is_not_unicode_is_refused_by_name(fault_live, line: bytes, naming: str) -> None:
    """Once an `internal` error and a traceback in the supervisor's log."""
    cluster, supervisor = fault_live
    log_before = _supervisor_log(cluster).stat().st_size
    assert_refused(exchange(cluster, line + b"\n"), naming=naming, request_id=21)
    assert_serving(cluster, supervisor)
    with open(_supervisor_log(cluster), "rb") as log:
        log.seek(log_before)
        written = log.read().decode(errors="replace")
    assert "Traceback" not in written and "failed" not in written, written
    assert not [e for e in cluster.decided() if e["request_id"] in ("lone-surrogate", "latin-1")]


def test_a_request_with_an_error_field_reaches_the_supervisor(fault_live) -> None:
    """Once told from a reply by `"error" in dict`: it went back to its client
    as if it were the reply, and never reached the supervisor."""
    cluster, supervisor = fault_live
    reply = exchange(cluster, b'{"id": 22, "op": "status", "error": "x", "ok": false}\n')
    assert reply is not None and reply["ok"] is True and reply["id"] == 22, reply
    assert reply["cluster"] == cluster.name and "agents" in reply
    reply = exchange(cluster, b'{"id": 23, "op": "chaos", "error": "boom", "message": "no"}\n')
    assert reply is not None and reply["ok"] is True and reply["id"] == 23, reply
    assert_serving(cluster, supervisor)


# ------------------------------------------------------ no client can stall it


@pytest.mark.parametrize("wide", [False, True], ids=["status", "status-wide"])
def test_a_client_pipelining_10000_requests_does_not_stall_another(fault_live, wide: bool) -> None:
    """One write of 10,000 `status` requests (270-430 KB): meanwhile another
    client's `ping` is answered within a second. `status -o wide` costs the
    loop about half a millisecond each (process statistics of every agent):
    served all at once, they held a ping for seconds. The greedy client gets
    its replies in order (all of them, for the cheap ones)."""
    cluster, supervisor = fault_live
    count = 10_000
    wanted = count if not wide else 200
    field = b', "wide": true' if wide else b""
    batch = b"".join(b'{"id": %d, "op": "status"%s}\n' % (i, field) for i in range(count))
    greedy = connect(cluster, timeout=120)
    polite = connect(cluster, timeout=10)
    ids: list[int] = []
    first = threading.Event()
    failures: list[BaseException] = []

    def read() -> None:
        buffer = b""
        try:
            while len(ids) < wanted:
                chunk = greedy.recv(1 << 20)
                if not chunk:
                    return
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                ids.extend(json.loads(line)["id"] for line in lines)
                first.set()
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(e)
            first.set()

    def write() -> None:
        try:
            greedy.sendall(batch)
        except OSError:
            pass  # closed by the test before the supervisor read it all

    reader = threading.Thread(target=read, daemon=True)
    writer = threading.Thread(target=write, daemon=True)
    reader.start()
    writer.start()
    try:
        assert first.wait(60), "no reply to the greedy client"
        # The supervisor is working through the batch now.
        started = time.monotonic()
        polite.sendall(b'{"id": "ping", "op": "ping"}\n')
        reply = read_reply(polite)
        elapsed = time.monotonic() - started
        assert reply is not None and reply["ok"] and reply["id"] == "ping", reply
        assert elapsed < 1.0, f"a ping waited {elapsed:.2f}s behind another client's requests"
        reader.join(120)
        assert not failures, failures
        assert ids[:wanted] == list(range(wanted)), f"{len(ids)} replies"
    finally:
        greedy.close()  # the rest of a wide batch is dropped with the connection
        polite.close()
    writer.join(10)
    assert_serving(cluster, supervisor)


def test_the_python_client_can_pipeline_past_the_backpressure(fault_live) -> None:
    """`Client` keeps sending while its reader thread takes the replies: the
    supervisor stops reading a client whose replies pile up, so a client
    that held its lock while blocked in a send would never read them."""
    cluster, supervisor = fault_live
    futures: list[Any] = []

    def send() -> None:
        futures.extend(client.request_async("status") for _ in range(10_000))

    with Client.for_manifest(cluster.manifest) as client:
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        sender.join(60)
        assert not sender.is_alive(), f"the client is stuck sending after {len(futures)} requests"
        replies = [f.result(60) for f in futures]
    assert all(r["ok"] and r["cluster"] == cluster.name for r in replies)
    assert_serving(cluster, supervisor)


def test_the_listen_backlog_holds_many_clients_at_once(fault_live) -> None:
    """500 clients connect while the supervisor's loop is not accepting
    (SIGSTOP, like a loop busy for a moment): the kernel queues them all,
    and each is served once it runs again."""
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    if somaxconn < 512:
        pytest.skip(f"net.core.somaxconn is {somaxconn}: the kernel caps every backlog")
    cluster, supervisor = fault_live
    path = str(cluster.state_dir / "control.sock")
    socks: list[socket.socket] = []
    supervisor.suspend()
    try:
        for _ in range(500):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            socks.append(sock)
            sock.setblocking(False)
            try:
                sock.connect(path)
            except BlockingIOError:
                pytest.fail(f"the listen backlog was full after {len(socks) - 1} connections")
    finally:
        supervisor.resume()
    try:
        for i, sock in enumerate(socks):
            sock.settimeout(10)
            sock.sendall(b'{"id": %d, "op": "ping"}\n' % i)
        for i, sock in enumerate(socks):
            reply = read_reply(sock)
            assert reply is not None and reply["ok"] and reply["id"] == i, reply
    finally:
        for sock in socks:
            sock.close()
    assert_serving(cluster, supervisor)


# ---------------------------------------------------------------- manifests

_KEYS = {
    "cluster": ["name", "state_dir"],
    "health": ["heartbeat_interval", "heartbeat_timeout", "start_timeout"],
    "restart": ["policy", "backoff_initial", "backoff_max", "stable_after", "max_restarts"],
    "paxos": ["tick", "heartbeat", "election_timeout", "accept_timeout", "retry_cooldown",
              "gap_timeout", "window", "batch", "max_value_bytes"],
    "metrics": ["listen", "enabled"],
    "chaos": ["drop", "duplicate", "delay", "partition", "seed"],
}

_ODD_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
_SCALARS = st.one_of(
    _ODD_TEXT,
    st.sampled_from(["200ms", "0s", "1us", "25h", "1e9s", "-1s", "nan", "∞", "１０ms", "acceptor-0",
                     "127.0.0.1:0", "[::1]:99999", "always", "replica", "..", "/", "~nobody/x",
                     "a" * 300, "x\u202ey", "\u0000"]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 3, 64, 65, 2**63 - 1, 2**63, -(2**63), 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_ODD_TEXT, inner, max_size=3)), max_leaves=8)


@st.composite
def manifests(draw) -> dict[str, Any]:
    """Documents close to a manifest: known sections and keys mostly, with
    random values, and now and then unknown sections or keys."""
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc["cluster"] = {"name": draw(st.sampled_from(["demo", "x", "Demo", "-x", "", "é"]))}
    groups = draw(st.dictionaries(st.sampled_from(["acceptor", "proposer", "learner", "r", "Bad", "a b"]),
                                  st.dictionaries(st.sampled_from(["role", "replicas", "extra"]),
                                                  st.one_of(st.sampled_from(
                                                      ["acceptor", "proposer", "learner", "replica"]),
                                                      _SCALARS), max_size=3),
                                  max_size=3))
    if groups or draw(st.booleans()):
        doc["agents"] = groups
    for section, keys in _KEYS.items():
        if draw(st.integers(0, 2)) == 0:
            continue
        table = doc.setdefault(section, {})
        for key in draw(st.lists(st.sampled_from(keys), max_size=4, unique=True)):
            table[key] = draw(_VALUES)
    if draw(st.integers(0, 4)) == 0:
        doc[draw(_ODD_TEXT)] = draw(_VALUES)
    if draw(st.integers(0, 4)) == 0:
        doc.setdefault("paxos", {})[draw(_ODD_TEXT)] = draw(_VALUES)
    return doc


_BARE = set(string.ascii_letters + string.digits + "_-")


def _key(key: str) -> str:
    return key if key and set(key) <= _BARE else _string(key)


def _string(text: str) -> str:
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"


def toml_text(doc: dict[str, Any]) -> str:
    lines = []
    for key, value in doc.items():
        if not isinstance(value, dict):
            lines.append(f"{_key(key)} = {_value(value)}")
    for section, body in doc.items():
        if not isinstance(body, dict):
            continue
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict)}
        lines.append(f"[{_key(section)}]")
        lines += [f"{_key(k)} = {_value(v)}" for k, v in scalars.items()]
        for k, v in body.items():
            if isinstance(v, dict):
                lines.append(f"[{_key(section)}.{_key(k)}]")
                lines += [f"{_key(kk)} = {_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def fault_manifest_dir() -> Iterator[Path]:
    folder = fault_tmpdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@settings(max_examples=250, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(doc=manifests())
def test_random_manifests_load_or_fail_in_one_line(fault_manifest_dir: Path, doc: dict) -> None:
    path = fault_manifest_dir / "m.toml"
    path.write_text(toml_text(doc), encoding="utf-8")
    try:
        manifest = load_manifest(path)
    except ManifestError as e:
        message = str(e)
        assert message and message.splitlines() == [message], repr(message)
        assert message.startswith((str(path), "m.toml")), message
    else:
        assert manifest.agents and manifest.proposers and manifest.acceptors and manifest.learners


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(doc=manifests(), garbage=st.one_of(st.none(), st.binary(max_size=64)))
def test_validate_exits_0_or_2_with_one_line(fault_manifest_dir: Path, doc: dict,
                                             garbage: bytes | None) -> None:
    path = fault_manifest_dir / "v.toml"
    data = toml_text(doc).encode()
    if garbage is not None:
        data = garbage + data  # invalid UTF-8 or TOML, as often as not
    path.write_bytes(data)
    result = paxosctl("validate", str(path), cwd=fault_manifest_dir, timeout=30)
    assert result.returncode in (0, 2), describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    lines = result.stderr.splitlines()
    if result.returncode == 2:
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1 and lines[0].startswith("error: "), describe(result)
        assert all(line.startswith(("error: ", "  hint: ")) for line in lines), describe(result)
        assert result.stdout == "", describe(result)
    else:
        assert "valid" in result.stdout, describe(result)
        assert all(line.startswith("warning: ") for line in lines), describe(result)
