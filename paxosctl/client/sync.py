"""A Python client for a running cluster.

    from paxosctl import Client
    with Client.for_manifest("cluster.toml") as client:
        decision = client.propose(b"set x=1")
        print(decision.position)          # "SLOT.INDEX": where it was first decided
        futures = [client.propose_async(f"v{i}") for i in range(100)]  # in flight at once
        for p in client.propose_many(f"w{i}" for i in range(1000)):  # one future for all
            print(p.request_id, p.decision or p.error)

Two paths. Proposals and reads of the decided log go straight to the
proposers and a learner (`paxosctl.client.datapath`); the supervisor is not
involved. Control requests (`status`, `kill`, `restart`, `down`, ...) go
to the supervisor's control socket: one connection carries many requests
at once, each with an id, and a reader thread hands each reply to the
future waiting for it.

Results are typed and frozen: `Decision` (a proposal), `ClusterStatus`
and `AgentStatus` (`status`), `KillResult`, `RestartResult`, `DownResult`
(`paxosctl.client.results`), `DecidedCommand` (`decided`, `iter_decided`:
`paxosctl.client.decidedlog`). `request(op, **fields)` is the low-level call: the
supervisor's reply as a dict, for ops without a typed method.
`paxosctl.client.aio.AsyncClient` is the same client for asyncio.

What a failure tells (`paxosctl.errors`): `NotRunning` (exit 1) only when
the request surely never left; once it left, no answer is an
`OutcomeUnknown` (exit 124: the connection was lost, no answer in time,
the cluster stopped first), since a proposal may still be decided. Retry
a proposal with the request id the error names: never decided twice.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from .decidedlog import PAGE_SIZE, DecidedCommand, read_log
from ..endpoints import read_endpoints
from .ids import new_request_id

if TYPE_CHECKING:  # imported on first use (data()): `paxosctl status` needs none of it
    from .batch import BatchFuture
    from .datapath import DataClient
from ..errors import (EXIT_CODES, ConnectionLost, Expired, NotRunning, OutcomeUnknown,
                     ProposalTimeout, RequestFailed)
from ..layout import paths
from ..manifest import load_manifest
from .results import (AgentChange, ClusterStatus, MembershipChange, Decision, DownResult, KillResult, RestartResult, json_value,
                      Proposed, retry_hint)


#: Seconds a request other than propose waits for its reply.
REQUEST_TIMEOUT = 30.0
#: Seconds `propose` waits past its `timeout` for the supervisor's own answer.
ANSWER_GRACE = 1.0

__all__ = ["Client", "Decision", "Proposed", "DecidedCommand", "ClusterStatus", "KillResult",
           "RestartResult", "DownResult", "AgentChange", "Expired", "RequestFailed", "ConnectionLost",
           "EXIT_CODES", "new_request_id", "retry_hint", "json_value"]


def checked_reply(op: str, reply: dict[str, Any]) -> dict[str, Any]:
    """`reply` if it says ok; else `RequestFailed` (exit 2 bad input, 124
    outcome unknown, else 1). Shared by `Client` and `AsyncClient`."""
    if not reply.get("ok"):
        raise RequestFailed(reply)
    return reply


class Client:
    """One cluster: its supervisor's control socket, and its data path. Thread-safe.

    Connects to the control socket at once (`NotRunning`, exit 1, if nobody
    listens); the data path (`DataClient`) is opened at the first
    proposal or read. Use it as a context manager, or call `close`.
    """

    def __init__(self, socket_path: str | Path, *, cluster_file: str | None = None) -> None:
        self.socket_path = str(socket_path)
        self._cluster_file = cluster_file or self.socket_path
        self._data: DataClient | None = None
        self._data_lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(self.socket_path)
        except OSError:
            self._sock.close()
            raise NotRunning(
                f"no cluster running for {self._cluster_file}",
                hint=f"start it with: paxosctl up {self._cluster_file}",
            ) from None
        self._ids = itertools.count(1)
        self._pending: dict[int, Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()  # _pending and _closed
        self._send_lock = threading.Lock()  # one request line at a time on the socket
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="paxosctl-client", daemon=True)
        self._reader.start()

    @classmethod
    def for_manifest(cls, manifest_path: str | Path) -> Client:
        """Connect to the cluster that `manifest_path` describes.

        Raises `ManifestError` (exit 2) for a manifest that does not load,
        `NotRunning` (exit 1) when its cluster does not run.
        """
        manifest = load_manifest(manifest_path)
        return cls(paths(manifest.state_dir)["socket"], cluster_file=str(manifest_path))

    @property
    def cluster_file(self) -> str:
        """The manifest (or socket) this client names in its messages."""
        return self._cluster_file

    # ----------------------------------------------------------- transport

    def request_async(self, op: str, **fields: Any) -> Future[dict[str, Any]]:
        """Send one control request now; the future resolves to the reply
        dict, error replies included (`ok` false: see `checked_reply`), or
        raises `ConnectionLost` if the connection closes first.

        Raises `NotRunning` (exit 1) if it could not be sent.
        """
        future: Future[dict[str, Any]] = Future()
        future.set_running_or_notify_cancel()  # see paxosctl.client.reads.running_future
        with self._lock:
            if self._closed:
                raise NotRunning(f"the connection to {self._cluster_file} is closed")
            request_id = next(self._ids)
            self._pending[request_id] = future
        data = json.dumps({"id": request_id, "op": op, **fields}).encode() + b"\n"
        # Not under `_lock`: sendall blocks while the supervisor does not read
        # us (it waits until we read our replies), and the reader thread
        # needs `_lock` to hand them out.
        with self._send_lock:
            try:
                self._sock.sendall(data)
            except OSError:
                # Its newline never left: the supervisor drops the part it got.
                with self._lock:
                    self._pending.pop(request_id, None)
                raise NotRunning(f"the cluster for {self._cluster_file} went away") from None
        return future

    def request(self, op: str, timeout: float | None = REQUEST_TIMEOUT,
                **fields: Any) -> dict[str, Any]:
        """Send one control request (`op` and its `fields`, as
        `paxosctl.supervisor.ops` reads them) and return the supervisor's reply dict.

        The low-level call behind the typed methods, for any op. Raises
        `RequestFailed` for an error reply (its `exit_code` follows the
        fault: 2, 124 or 1), `OutcomeUnknown` (exit 124) when no reply comes
        within `timeout` seconds (a supervisor stopped with SIGSTOP, say: a
        CLI command never hangs), `ConnectionLost` (124) when the
        connection closes first, `NotRunning` (1) if it could not be sent.
        """
        try:
            reply = self.request_async(op, **fields).result(timeout)
        except FutureTimeout:
            raise OutcomeUnknown(f"the supervisor for {self._cluster_file} did not answer "
                                 f"{op!r} within {timeout:g}s") from None
        except ConnectionLost:
            raise ConnectionLost(f"the supervisor for {self._cluster_file} closed the "
                                 f"connection before it answered {op!r}") from None
        return checked_reply(op, reply)

    def _read(self) -> None:
        reader = self._sock.makefile("rb")
        try:
            for line in reader:
                reply = json.loads(line)
                with self._lock:
                    future = self._pending.pop(reply.get("id"), None)
                if future is not None:
                    future.set_result(reply)
        except (OSError, ValueError):
            pass
        finally:
            with self._lock:
                self._closed = True
                pending, self._pending = self._pending, {}
            for future in pending.values():
                future.set_exception(ConnectionLost("the supervisor closed the connection "
                                                    "before it answered"))

    def data(self) -> DataClient:
        """The data path, opened at the first call: `NotRunning` (exit 1) if
        no proposer or no learner answers."""
        with self._data_lock:
            if self._data is None:
                from .datapath import DataClient

                run_dir = Path(self.socket_path).parent / "run"
                self._data = DataClient(read_endpoints(run_dir, self._cluster_file),
                                        cluster_file=self._cluster_file)
            return self._data

    def close(self) -> None:
        """Close both paths. What is still in flight fails: a proposal with
        `ConnectionLost` (it may still be decided), a request likewise."""
        if self._data is not None:
            self._data.close()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ proposals

    def propose_async(self, value: bytes | str, *, request_id: str | None = None,
                      timeout: float = 10.0, issued: int | None = None,
                      fresh: bool = False) -> Future[Decision]:
        """Propose `value` (bytes; str is sent as UTF-8) without waiting; the
        future resolves to a `Decision`, or raises what `propose` raises.

        Without a `request_id` a fresh one is made (the data path's maker,
        `paxosctl.client.ids`: its layout is `new_request_id`'s), so an
        `OutcomeUnknown` can name it: retrying with it is safe. With one,
        the learner is first asked whether it was decided already (a retry
        is answered with the first position, nothing is proposed), unless
        `issued`, the stamp its first try reported, is given, or `fresh`
        says the caller made `request_id` for this call and never sent it
        (then it is proposed at once; a retry must not say `fresh`).
        Raises `UsageError` (exit 2) at once, nothing sent, for a bad
        argument (README "Python API": a value not bytes or str, or over
        the cluster's max_value_bytes; a request id not a non-empty str of
        at most 1024 bytes of UTF-8, or starting with NUL; `issued` not an
        int from -1 to 2**63 - 1; `timeout` not a finite number > 0), and
        `NotRunning` (exit 1) if the data path is closed.
        """
        data = self._data
        if data is None:
            from .checks import check_proposal, check_timeout

            # Before the data path opens: bad input is a usage error even
            # when no cluster runs. Once open, the data path checks it (with
            # the cluster's size limit), once per command.
            check_proposal(value, request_id if request_id is not None else "new", issued)
            check_timeout(timeout)
            data = self.data()
        # Without a request id the data path makes a fresh one (its own
        # maker: no id to check, proposed at once).
        return data.propose_async(value, request_id=request_id, timeout=timeout,
                                  issued=issued, fresh=fresh)

    def propose(self, value: bytes | str, *, request_id: str | None = None,
                timeout: float = 10.0, issued: int | None = None,
                fresh: bool = False) -> Decision:
        """Propose `value` and wait until it is decided: the `Decision` (where
        its request id was first decided). `request_id`, `issued`, `fresh`:
        as `propose_async`.

        Raises `ProposalTimeout` (exit 124; it may still be decided: retry
        with its `request_id`) after `timeout` seconds (and `ANSWER_GRACE`)
        whatever the servers do; `ConnectionLost` (124) if the cluster went
        away after it was sent; `NotRunning` (1) if it was never sent;
        `RequestIdConflict` (2) if the request id was decided with another
        value; `UsageError` (2) for a bad argument (as `propose_async`)
        or a value over the size limit; `Expired`
        (1) for a retry older than the log learners keep.
        """
        if request_id is None:
            request_id, fresh = new_request_id(), True
        return self.wait(self.propose_async(value, request_id=request_id, timeout=timeout,
                                            issued=issued, fresh=fresh), request_id, timeout)

    def propose_many_async(self, values: Iterable[bytes | str], *,
                           timeout: float = 10.0) -> BatchFuture:
        """Propose every value of `values` without waiting, each under a fresh
        request id; one future resolves to one `Proposed` per value, in
        order. See `propose_many` for the contract; raises as it does."""
        values = list(values)
        data = self._data
        if data is None:
            from .checks import check_timeout, check_value

            # As propose_async: bad input is a usage error even with no cluster.
            for value in values:
                check_value(value)
            check_timeout(timeout)
            data = self.data()
        return data.propose_many_async(values, timeout=timeout)

    def propose_many(self, values: Iterable[bytes | str], *,
                     timeout: float = 10.0) -> list[Proposed]:
        """Propose many values at once and wait: one `Proposed` per value, in
        order, each with its request id and either its `decision` or the
        typed `error` `propose` would raise for it.

        One future for the call, one fresh request id per value (made
        together), and the commands go out in as few PROPOSE frames as the
        frame limit allows (a batch larger than a frame is split). The batch
        is neither atomic nor ordered in the log: each value is decided on
        its own, in whatever slots and order the leader puts them, and some
        may be decided while others fail. After `timeout` seconds only the
        values still unanswered fail, with `ProposalTimeout` (exit 124: it
        may still be decided): retry each by id, `propose(p.value,
        request_id=p.request_id)`, never decided twice.

        Raises only before anything is sent: `UsageError` (exit 2) if any
        value is bad (`propose_async`'s rules: none is sent then),
        `NotRunning` (exit 1) if the data path is closed or cannot open.
        """
        batch = self.propose_many_async(values, timeout=timeout)
        try:
            return batch.result(timeout + ANSWER_GRACE)
        except FutureTimeout:
            # The I/O thread settles every value at its deadline; this is the
            # net under it (a client too starved to run it in time).
            return batch.so_far()

    @staticmethod
    def wait(future: Future[Decision], request_id: str, timeout: float) -> Decision:
        """The `Decision` of `propose_async`'s `future`, waiting `timeout` (and
        `ANSWER_GRACE`) seconds at most: `ProposalTimeout` (exit 124) after
        that; the future's own error if it failed."""
        try:
            return future.result(timeout + ANSWER_GRACE)
        except FutureTimeout:
            raise ProposalTimeout(
                f"no answer within {timeout:g}s: request {request_id} may still be decided",
                hint=retry_hint(request_id), request_id=request_id) from None

    # ------------------------------------------------------- the decided log

    def decided(self, start: int | None = None, limit: int | None = None) -> list[DecidedCommand]:
        """The decided log from slot `start` (default: the first slot the
        learners retain), read from a learner, at most `limit` entries
        (default: all): `DecidedCommand`s in position order.

        Raises `RequestFailed` with `fault` NOT_RETAINED (exit 1) when
        `start` is below what is retained (`e.reply["log_start"]` says
        where it starts), `OutcomeUnknown` (124) when the learner does not
        answer in time, `NotRunning` (1) when no learner runs.
        """
        return list(self.iter_decided(start, limit=limit))

    def iter_decided(self, start: int | None = None, *, limit: int | None = None,
                     follow: bool = False, page_size: int = PAGE_SIZE,
                     ) -> Iterator[DecidedCommand]:
        """Iterate over the decided log from slot `start`, a page at a time.

        Without `follow` it ends at the end of what the learner has
        applied; with it, it then blocks and yields each new decision as
        the learner applies it, without end (stop iterating, or `close`
        the client, to end it). `limit` ends it after that many entries.
        Raises as `decided` does, and `NotRunning` (exit 1) while following
        when the cluster goes away or the client is closed.
        """
        return read_log(self.data(), start, limit=limit, follow=follow, page_size=page_size)

    # ------------------------------------------------------- control plane

    def status(self, wide: bool = False) -> ClusterStatus:
        """The cluster's status, as `paxosctl status` shows it; `wide` adds
        each agent's CPU, memory and heartbeat age. Raises as `request`."""
        return ClusterStatus.from_wire(self.request("status", wide=wide))

    def kill(self, agent: str, signal: str = "KILL") -> KillResult:
        """Send `signal` (a name: KILL, TERM, STOP, CONT...) to `agent`; the
        supervisor restarts it per its policy (an operator's KILL or TERM is
        never counted as a failure). Raises `RequestFailed`: fault
        BAD_REQUEST (exit 2) for an unknown agent or signal, NOT_RUNNING
        (exit 1) when the agent does not run; else as `request`."""
        return KillResult.from_wire(self.request("kill", agent=agent, signal=signal))

    def restart(self, agent: str) -> RestartResult:
        """Restart `agent` now, also one the supervisor gave up on (fatal).
        Raises `RequestFailed` BAD_REQUEST (exit 2) for an unknown agent;
        else as `request`."""
        return RestartResult.from_wire(self.request("restart", agent=agent))

    def stop(self, agent: str) -> AgentChange:
        """Stop `agent` and keep it stopped, whatever the restart policy,
        until `start` (SIGTERM, SIGKILL after 5 s; this returns once asked,
        not once it ended: see `status`). `changed` is False if it already
        was. Raises `RequestFailed` BAD_REQUEST (exit 2) for an unknown
        agent; else as `request`."""
        return AgentChange.from_wire(self.request("stop", agent=agent))

    def start(self, agent: str) -> AgentChange:
        """Start `agent` if it is stopped (by `stop` or its restart policy) or
        fatal; `changed` is False if it was running. Raises as `stop`."""
        return AgentChange.from_wire(self.request("start", agent=agent))

    def scale(self, group: str, replicas: int, wait: float = 60) -> MembershipChange:
        """Resize agent group `group` (e.g. "acceptor") to `replicas`; returns
        once the new configuration is in force, or at once with `wait=0`.
        Raises `RequestFailed`: BAD_REQUEST (exit 2) for an unknown group, a
        role left without agents or a majority of acceptors removed at once;
        UNAVAILABLE (exit 1) while another change is in progress; TIMEOUT
        (124) after `wait` seconds (the change goes on)."""
        return MembershipChange.from_wire(self.request(
            "scale", timeout=wait + 10, group=group, replicas=replicas, wait=wait))

    def replace(self, agent: str, force: bool = False, wait: float = 60) -> MembershipChange:
        """Replace `agent` by a new member under its group's next unused name
        (its name is retired for good); a running agent only with `force`.
        Returns and raises as `scale`."""
        return MembershipChange.from_wire(self.request(
            "replace", timeout=wait + 10, agent=agent, force=force, wait=wait))

    def down(self) -> DownResult:
        """Stop the cluster; returns once every agent has stopped. Raises as
        `request`: `ConnectionLost` (124) if the supervisor closed the
        connection before it answered (it was stopping, or died). Once it
        answered, later requests raise `NotRunning` (1): the supervisor is
        gone, whether or not its connection's end has been read yet."""
        result = DownResult.from_wire(self.request("down"))
        self.stopped_cluster()
        return result

    def stopped_cluster(self) -> None:
        """The supervisor answered `down`: no later request can reach it."""
        with self._lock:
            self._closed = True
