"""A Python client for a running cluster.

    from paxosctl import Client
    with Client.for_manifest("cluster.toml") as client:
        decision = client.propose(b"set x=1")
        print(decision.position)          # "SLOT.INDEX": where it was first decided
        futures = [client.propose_async(f"v{i}") for i in range(100)]  # in flight at once

Two paths. Proposals and reads of the decided log go straight to the
proposers and a learner (`paxosctl.dataclient`); the supervisor is not
involved. Control requests (`status`, `kill`, `restart`, `down`, ...) go
to the supervisor's control socket: one connection carries many requests
at once, each with an id, and a reader thread hands each reply to the
future waiting for it.

What a failure tells (`paxosctl.errors`): `NotRunning` (exit 1) only when
the request surely never left; once it left, no answer is an
`OutcomeUnknown` (exit 124: the connection was lost, no answer in time,
the cluster stopped first), since a proposal may still be decided. Retry
a proposal with the request id the error names: never decided twice.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Mapping

from .control import Fault
from .dataclient import ConnectionLost as DataConnectionLost
from .dataclient import DataClient, Decision, Expired, json_value, retry_hint
from .endpoints import read_endpoints
from .errors import (
    NotRunning,
    OutcomeUnknown,
    PaxosctlError,
    ProposalTimeout,
)
from .manifest import load_manifest
from .layout import paths


#: Seconds a request other than propose waits for its reply.
REQUEST_TIMEOUT = 30.0
#: Seconds `propose` waits past its `timeout` for the supervisor's own answer.
ANSWER_GRACE = 1.0

#: The exit code of each fault a reply may name; any other exits 1.
EXIT_CODES: Mapping[Fault, int] = {
    Fault.BAD_REQUEST: 2,
    Fault.UNKNOWN_OP: 2,
    Fault.TOO_LARGE: 2,
    Fault.REQUEST_ID_CONFLICT: 2,
    Fault.TIMEOUT: 124,  # done or not, nobody knows yet
    Fault.STOPPED: 124,
}


def new_request_id() -> str:
    """A fresh request id: propose with it, and retry with it after an unknown outcome.

    32 hex digits: the time in milliseconds (12), then 80 random bits (as
    UUIDv7 orders them). Ids made later sort later, so the learners'
    on-disk index (a B-tree keyed by request id) grows at its end: a batch
    of new ids touches a few pages, not one random page each.
    """
    return f"{time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF:012x}{os.urandom(10).hex()}"


class RequestFailed(PaxosctlError):
    """The supervisor refused or could not complete a request: `fault` says why
    (None for a fault this client does not know), `exit_code` follows it."""

    def __init__(self, reply: dict[str, Any]) -> None:
        error = reply.get("error")
        super().__init__(str(reply.get("message") or error or "request failed"))
        #: The fault's name as the reply gave it.
        self.error = error
        self.fault = Fault(error) if error in Fault.__members__.values() else None
        self.reply = reply
        self.exit_code = EXIT_CODES.get(self.fault, 1)


ConnectionLost = DataConnectionLost

__all__ = ["Client", "Decision", "Expired", "RequestFailed", "ConnectionLost", "new_request_id",
           "retry_hint", "json_value"]


class Client:
    """One cluster: its supervisor's control socket, and its data path. Thread-safe.

    Connects to the control socket at once (`NotRunning` if nobody
    listens); the data path (`DataClient`) is opened at the first
    proposal or read.
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
        self._pending: dict[int, Future] = {}
        self._lock = threading.Lock()  # _pending and _closed
        self._send_lock = threading.Lock()  # one request line at a time on the socket
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="paxosctl-client", daemon=True)
        self._reader.start()

    @classmethod
    def for_manifest(cls, manifest_path: str | Path) -> "Client":
        """Connect to the cluster that `manifest_path` describes."""
        manifest = load_manifest(manifest_path)
        return cls(paths(manifest.state_dir)["socket"], cluster_file=str(manifest_path))

    # ----------------------------------------------------------- transport

    def request_async(self, op: str, **fields: Any) -> Future:
        """Send one request; the future resolves to the reply dict."""
        future: Future = Future()
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
        """Send one request and wait for its reply; raise `RequestFailed` if not ok.

        Raises `OutcomeUnknown` when no reply comes within `timeout` seconds
        (a supervisor stopped with SIGSTOP, say): a CLI command never hangs.
        """
        try:
            reply = self.request_async(op, **fields).result(timeout)
        except FutureTimeout:
            raise OutcomeUnknown(f"the supervisor for {self._cluster_file} did not answer "
                                 f"{op!r} within {timeout:g}s") from None
        except ConnectionLost:
            raise ConnectionLost(f"the supervisor for {self._cluster_file} closed the "
                                 f"connection before it answered {op!r}") from None
        if not reply.get("ok"):
            raise RequestFailed(reply)
        return reply

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
        """The data path (opened once; `NotRunning` if no proposer or learner answers)."""
        with self._data_lock:
            if self._data is None:
                run_dir = Path(self.socket_path).parent / "run"
                self._data = DataClient(read_endpoints(run_dir, self._cluster_file),
                                        cluster_file=self._cluster_file)
            return self._data

    def close(self) -> None:
        if self._data is not None:
            self._data.close()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------- commands

    def propose_async(self, value: bytes | str, *, request_id: str | None = None,
                      timeout: float = 10.0, issued: int | None = None,
                      fresh: bool = False) -> Future:
        """Propose `value` (bytes; str is sent as UTF-8); the future resolves to a
        `Decision` or raises.

        Without a `request_id` one is made here (`new_request_id`), so an
        `OutcomeUnknown` can name it: retrying with it is safe. With one,
        the learner is first asked whether it was decided already (a retry
        is answered with the first position, nothing is proposed), unless
        `issued`, the stamp its first try reported, is given, or `fresh`
        says the caller made `request_id` for this call and never sent it
        (then it is proposed at once; a retry must not say `fresh`).
        """
        if request_id is None:
            fresh = True
            request_id = new_request_id()
        return self.data().propose_async(value, request_id=request_id, timeout=timeout,
                                         issued=issued, fresh=fresh)

    def propose(self, value: bytes | str, *, request_id: str | None = None,
                timeout: float = 10.0, issued: int | None = None,
                fresh: bool = False) -> Decision:
        """Propose `value` and wait until it is decided: at most `timeout` seconds
        (and `ANSWER_GRACE`), whatever the servers do; then `ProposalTimeout`.
        `request_id`, `issued`, `fresh`: as `propose_async`."""
        if request_id is None:
            request_id, fresh = new_request_id(), True
        return self.wait(self.propose_async(value, request_id=request_id, timeout=timeout,
                                            issued=issued, fresh=fresh), request_id, timeout)

    @staticmethod
    def wait(future: Future, request_id: str, timeout: float) -> Decision:
        """The `Decision` of `propose_async`'s `future`, waiting `timeout` (and
        `ANSWER_GRACE`) seconds at most: `ProposalTimeout` after that."""
        try:
            return future.result(timeout + ANSWER_GRACE)
        except FutureTimeout:
            raise ProposalTimeout(
                f"no answer within {timeout:g}s: request {request_id} may still be decided",
                hint=retry_hint(request_id), request_id=request_id) from None

    def status(self, wide: bool = False) -> dict[str, Any]:
        return self.request("status", wide=wide)

    def decided(self, start: int | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """The decided log from slot `start` (default: the first one the learners
        retain), read from a learner: dicts with slot, index, request_id,
        value (bytes; None for a no-op slot) and noop. Raises
        `RequestFailed` with error "not_retained" when `start` is below what
        is retained."""
        entries: list[dict[str, Any]] = []
        data = self.data()
        while True:
            reply = data.decided_page(start, limit)
            if "error" in reply:
                raise RequestFailed({"error": reply.get("code") or "agent_error",
                                     "message": reply["error"],
                                     "log_start": reply.get("log_start")})
            batch = reply["entries"]
            entries.extend(batch)
            if len(batch) < limit:
                return entries
            start = batch[-1]["slot"] + 1

    def kill(self, agent: str, signal: str = "KILL") -> dict[str, Any]:
        return self.request("kill", agent=agent, signal=signal)

    def restart(self, agent: str) -> dict[str, Any]:
        return self.request("restart", agent=agent)

    def down(self) -> dict[str, Any]:
        return self.request("down")
