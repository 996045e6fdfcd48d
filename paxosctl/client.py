"""A Python client for a running cluster, over its control socket.

    from paxosctl import Client
    with Client.for_manifest("cluster.toml") as client:
        decision = client.propose("set x=1")
        print(decision.slot)
        futures = [client.propose_async(f"v{i}") for i in range(100)]  # in flight at once

One connection carries many requests at once: each has an id, and a
reader thread hands each reply to the future waiting for it.

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
import uuid
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .control import Fault
from .errors import (
    NotRunning,
    OutcomeUnknown,
    PaxosctlError,
    ProposalTimeout,
    RequestIdConflict,
    UsageError,
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
    """A fresh request id: propose with it, and retry with it after an unknown outcome."""
    return uuid.uuid4().hex


def retry_hint(request_id: str) -> str:
    """How to find out, or to retry without deciding the value twice."""
    return (f"retry safely with the same request id: paxosctl propose --request-id "
            f"{request_id} VALUE (the same value; never decided twice), or look for "
            f"{request_id} in: paxosctl decided")


@dataclass(frozen=True, slots=True)
class Decision:
    """A decided proposal: the slot where its request id was first decided."""

    slot: int
    value: str
    request_id: str
    seconds: float


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


class ConnectionLost(OutcomeUnknown):
    """The connection closed before the answer came: the request may have been done."""


class Client:
    """A connection to one cluster's supervisor. Thread-safe."""

    def __init__(self, socket_path: str | Path, *, cluster_file: str | None = None) -> None:
        self.socket_path = str(socket_path)
        self._cluster_file = cluster_file or self.socket_path
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

    def close(self) -> None:
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

    def propose_async(self, value: str, *, request_id: str | None = None,
                      timeout: float = 10.0) -> Future:
        """Propose `value`; the future resolves to a `Decision` or raises.

        Without a `request_id` one is made here (`new_request_id`), so an
        `OutcomeUnknown` can name it: retrying with it is safe.
        """
        if request_id is None:
            request_id = new_request_id()
        raw = self.request_async("propose", value=value, request_id=request_id, timeout=timeout)
        result: Future = Future()

        def done(f: Future) -> None:
            try:
                reply = f.result()
            except ConnectionLost:
                result.set_exception(ConnectionLost(
                    f"the supervisor closed the connection before it answered: request "
                    f"{request_id} may still be decided", hint=retry_hint(request_id),
                    request_id=request_id))
                return
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                result.set_exception(e)
                return
            if reply.get("ok"):
                result.set_result(Decision(reply["slot"], reply["value"], reply["request_id"],
                                           reply.get("seconds", 0.0)))
            else:
                result.set_exception(_proposal_failed(reply, request_id))

        raw.add_done_callback(done)
        return result

    def propose(self, value: str, *, request_id: str | None = None,
                timeout: float = 10.0) -> Decision:
        """Propose `value` and wait until it is decided: at most `timeout` seconds
        (and `ANSWER_GRACE`), whatever the supervisor does; then `ProposalTimeout`."""
        if request_id is None:
            request_id = new_request_id()
        return self.wait(self.propose_async(value, request_id=request_id, timeout=timeout),
                         request_id, timeout)

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
        retain): dicts with slot, value, request_id, noop. Raises `RequestFailed`
        with error "not_retained" when `start` is below what is retained."""
        entries: list[dict[str, Any]] = []
        while True:
            fields: dict[str, Any] = {"limit": limit}
            if start is not None:
                fields["from"] = start
            reply = self.request("decided", **fields)
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


def _proposal_failed(reply: dict[str, Any], request_id: str) -> PaxosctlError:
    """The error for a refused proposal: its fault decides the type (and the exit code)."""
    message = str(reply.get("message") or reply.get("error"))
    match reply.get("error"):
        case Fault.TIMEOUT:
            return ProposalTimeout(message, hint=retry_hint(request_id), request_id=request_id)
        case Fault.STOPPED:
            return OutcomeUnknown(message, hint=retry_hint(request_id), request_id=request_id)
        case Fault.REQUEST_ID_CONFLICT:
            slot = reply.get("slot")
            return RequestIdConflict(
                message, request_id=request_id, slot=slot if type(slot) is int else None,
                hint=f"see it with: paxosctl decided --from {slot}" if type(slot) is int else None)
        case Fault.TOO_LARGE | Fault.BAD_REQUEST:
            return UsageError(message)
        case _:
            return RequestFailed(reply)
