"""A Python client for a running cluster, over its control socket.

    from paxosctl import Client
    with Client.for_manifest("cluster.toml") as client:
        decision = client.propose("set x=1")
        print(decision.slot)
        futures = [client.propose_async(f"v{i}") for i in range(100)]  # in flight at once

One connection carries many requests at once: each has an id, and a
reader thread hands each reply to the future waiting for it.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import NotRunning, PaxosctlError, ProposalTimeout, UsageError
from .manifest import load_manifest
from .layout import paths


#: Seconds a request other than propose waits for its reply.
REQUEST_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Decision:
    """A decided proposal: the slot where its request id was first decided."""

    slot: int
    value: str
    request_id: str
    seconds: float


class RequestFailed(PaxosctlError):
    """The supervisor refused or could not complete a request."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(reply.get("message") or reply.get("error", "request failed"))
        self.error = reply.get("error")
        self.reply = reply


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
        self._lock = threading.Lock()
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
            try:
                self._sock.sendall(data)
            except OSError:
                del self._pending[request_id]
                raise NotRunning(f"the cluster for {self._cluster_file} went away") from None
        return future

    def request(self, op: str, timeout: float | None = REQUEST_TIMEOUT,
                **fields: Any) -> dict[str, Any]:
        """Send one request and wait for its reply; raise `RequestFailed` if not ok.

        Raises `NotRunning` when no reply comes within `timeout` seconds (a
        supervisor stopped with SIGSTOP, say): a CLI command never hangs.
        """
        try:
            reply = self.request_async(op, **fields).result(timeout)
        except FutureTimeout:
            raise NotRunning(f"the supervisor for {self._cluster_file} did not answer "
                             f"{op!r} within {timeout:.0f}s") from None
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
                future.set_exception(NotRunning("the supervisor closed the connection"))

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
        """Propose `value`; the future resolves to a `Decision` or raises."""
        fields: dict[str, Any] = {"value": value, "timeout": timeout}
        if request_id is not None:
            fields["request_id"] = request_id
        raw = self.request_async("propose", **fields)
        result: Future = Future()

        def done(f: Future) -> None:
            try:
                reply = f.result()
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                result.set_exception(e)
                return
            if reply.get("ok"):
                result.set_result(Decision(reply["slot"], reply["value"], reply["request_id"],
                                           reply.get("seconds", 0.0)))
            elif reply.get("error") == "timeout":
                result.set_exception(ProposalTimeout(
                    reply.get("message", "timed out"),
                    hint="find out with: paxosctl decided"))
            elif reply.get("error") == "too_large":
                result.set_exception(UsageError(reply["message"]))
            else:
                result.set_exception(RequestFailed(reply))

        raw.add_done_callback(done)
        return result

    def propose(self, value: str, *, request_id: str | None = None,
                timeout: float = 10.0) -> Decision:
        """Propose `value` and wait until it is decided (or `ProposalTimeout`)."""
        try:
            return self.propose_async(value, request_id=request_id,
                                      timeout=timeout).result(timeout + 30)
        except FutureTimeout:
            raise NotRunning(f"the supervisor for {self._cluster_file} did not answer "
                             f"within {timeout + 30:.0f}s") from None

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
