"""A cluster of real agent processes with no supervisor, for the tests of
incarnations and amnesia (test_amnesia.py).

Each agent is `agent_main` in its own forked process, on Unix sockets
under FOLDER/run (or, with `tls=True`, TCP + mutual TLS on 127.0.0.1,
certificates of a CA made for the cluster in FOLDER/certs), its store
FOLDER/<name>.db, its log FOLDER/<name>.log.
The test holds both pipes: it reads every heartbeat (the latest report per
agent) and FATAL line, and keeps the inbox open so the agent does not exit
for want of a supervisor. Unlike the supervisor, it passes `has_run=False`
always: the agent's own store and its peers decide, as on a host whose
disk (registry included) was wiped.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from clusters import wait_until

from paxos_agents.core.settings import Membership, Settings
from paxos_agents.runtime import frames
from paxos_agents.runtime.main import agent_main
from paxos_agents.runtime.identity import Identity
from paxos_agents.runtime.spec import AgentSpec, TlsSpec
from paxosctl.certs import write_atomic
from paxosctl.client.datapath import DataClient
from paxosctl.endpoints import Endpoints, TlsEndpoints
from paxosctl.issuing import issue_leaf, make_ca

CLUSTER = "bare"


class BareCluster:
    def __init__(self, folder: Path, membership: Membership, tls: bool = False) -> None:
        self.folder = folder
        self.membership = membership
        self.certs = folder / "certs" if tls else None
        if self.certs is not None:
            self._make_certs(self.certs)
        self.reports: dict[str, dict[str, Any]] = {}
        self.fatal: dict[str, str] = {}
        self._procs: dict[str, Any] = {}
        self._inboxes: dict[str, Any] = {}
        self._ctx = multiprocessing.get_context("fork")

    def _make_certs(self, certs: Path) -> None:
        """A CA of this cluster, a certificate per member and a client's."""
        now = datetime.now(timezone.utc)
        ca = make_ca(CLUSTER, now=now)
        (certs / "client").mkdir(parents=True)
        (certs / "ca.crt").write_bytes(ca[0])
        m = self.membership
        for name, kind, where in [*((n, "agent", certs) for n in {*m.proposers, *m.acceptors, *m.learners}),
                                  ("client", "client", certs / "client")]:
            cert, key = issue_leaf(*ca, Identity(CLUSTER, kind, name), now=now)
            write_atomic(where / f"{name}.key", key, 0o600)
            write_atomic(where / f"{name}.crt", cert, 0o644)

    def state(self, name: str) -> Path:
        return self.folder / f"{name}.db"

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def start(self, name: str, *, bootstrap: bool = False) -> None:
        spec = AgentSpec(name=name, membership=self.membership, settings=Settings(),
                         tick_seconds=0.01, heartbeat_seconds=0.1,
                         state_path=str(self.state(name)), log_path=str(self.folder / f"{name}.log"),
                         seed=hash(name) & 0xFFFF, cluster_id=CLUSTER, member_id=name,
                         run_dir=str(self.folder / "run"), bootstrap=bootstrap, tls=self._tls(name))
        inbox_r, inbox_w = self._ctx.Pipe(duplex=False)
        outbox_r, outbox_w = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(target=agent_main, args=(spec, inbox_r, outbox_w), daemon=True)
        proc.start()
        inbox_r.close()
        outbox_w.close()
        self.reports.pop(name, None)
        self.fatal.pop(name, None)
        self._procs[name] = proc
        self._inboxes[name] = inbox_w
        threading.Thread(target=self._read, args=(name, outbox_r), daemon=True).start()

    def _tls(self, name: str) -> TlsSpec | None:
        if self.certs is None:
            return None
        return TlsSpec(listen="127.0.0.1:0", cert=str(self.certs / f"{name}.crt"),
                       key=str(self.certs / f"{name}.key"), ca=str(self.certs / "ca.crt"))

    def _read(self, name: str, outbox) -> None:
        reader = frames.FrameReader()
        while True:
            try:
                data = os.read(outbox.fileno(), 1 << 16)
            except OSError:
                return
            if not data:
                return
            for frame in reader.feed(data):
                if frame[:1] == frames.HEARTBEAT:
                    self.reports[name] = json.loads(frame[1:])
                elif frame[:1] == frames.FATAL:
                    self.fatal[name] = frame[1:].decode()

    def until(self, predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
        return wait_until(predicate, timeout, what, interval=0.02)

    def report(self, name: str, predicate: Callable[[dict], Any] = lambda r: True,
               what: str = "a report", timeout: float = 20.0) -> dict:
        try:
            return self.until(lambda: (r := self.reports.get(name)) is not None
                              and predicate(r) and r, f"{name}: {what}", timeout)
        except AssertionError as e:
            raise AssertionError(f"{e}; its last report: {self.reports.get(name)}") from None

    def next_report(self, name: str) -> dict:
        """A heartbeat sent after this call (not one already read)."""
        seen = self.reports.get(name)
        return self.report(name, lambda r: r is not seen, "a new heartbeat")

    def signal(self, name: str, signum: int) -> None:
        os.kill(self._procs[name].pid, signum)

    def kill(self, name: str) -> int | None:
        proc = self._procs[name]
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        self._inboxes.pop(name).close()
        return proc.exitcode

    def exit_code(self, name: str, timeout: float = 20.0) -> int | None:
        proc = self._procs[name]
        proc.join(timeout)
        return proc.exitcode

    def wipe(self, name: str) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.state(name)}{suffix}").unlink(missing_ok=True)

    def client(self) -> DataClient:
        m = self.membership
        return DataClient(Endpoints(run_dir=self.folder / "run", cluster=CLUSTER, cluster_id=CLUSTER,
                                    proposers=m.proposers, learners=m.learners, retry_seconds=0.5,
                                    max_value_bytes=1 << 20, retain_slots=1000,
                                    tls=None if self.certs is None else
                                    TlsEndpoints(self.certs, (), 2000)))

    def close(self) -> None:
        for name, proc in self._procs.items():
            if proc.is_alive():
                try:
                    os.kill(proc.pid, signal.SIGCONT)
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.join(10)
        for inbox in self._inboxes.values():
            inbox.close()
