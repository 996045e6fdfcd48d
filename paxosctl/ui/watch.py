"""What the page shows, polled from the cluster, as events for the page.

`Hub` holds the latest picture and the subscribers (one per open page):

    "state"    {"cluster", "source", "leader", "chaos", "supervised",
                "actions", "agents": [{"name", "roles", "state", "answered",
                "incarnation", "ballot", "leader", "applied", "pid", "restarts",
                "error"}]}        sent when anything in it changes
    "decided"  [{"slot", "index", "position", "request_id", "text", "noop"}]
                                  the entries applied since the last one sent
    "note"     {"at", "text"}     a leader change, a kill, a restart, an agent silent
    "messages" [record, ...]      the protocol records the agents made since
                                  the last poll (paxosctl.observe.records; the
                                  fields the page draws): each message's send
                                  record (heartbeats and stored notices left
                                  out: `BACKGROUND`) and each learner's
                                  decision, at most `MAX_BATCH`
    "traffic"  {"links": [[sender, receiver, n], ...], "records": n}
                                  instead, when more were made: counts per link

`Watch.run` polls every `interval` seconds, as the commands that work
without a supervisor do: each agent's WELCOME over the transport
(`client.probe.survey`: roles, incarnation, ballot, leader, applied), the
decided log from a learner (`client.decidedlog`, as `paxosctl decided`),
the protocol records (`observe.records.follow`, in a thread of its own),
and, only where a supervisor runs the cluster on this host, its `status`
(the state it keeps: running, backoff, stopped..., pids, restarts, chaos).
A new subscriber gets the current state and the last `KEEP_DECIDED`
entries first, then every event as it is published.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import deque
from typing import Any

#: Decided entries a page that opens now is shown first (it shows the log's tail).
KEEP_DECIDED = 60

#: Entries read from the learner in one poll at most: a busy cluster's page
#: shows the newest entries, not a backlog it can never catch up with.
READ_DECIDED = 200

#: Events queued for one page before it counts as gone (a tab in the
#: background long enough): its stream is closed, and a reload starts over.
QUEUE_EVENTS = 2000

#: Characters of a value the page is sent.
SHOWN_CHARS = 80

#: Records sent to the page in one poll at most; above it, counts per link
#: (a page cannot draw hundreds of arrows a second that a person could follow).
MAX_BATCH = 400

#: Kinds not drawn: the agents' background chatter (liveness, a learner's
#: progress), ~90 a second on an idle 7-agent cluster, which would bury the
#: few messages of a slot being decided.
BACKGROUND = frozenset({"heartbeat", "stored"})

#: The fields of a record the page draws.
DRAWN = ("agent", "dir", "kind", "peer", "ballot", "slots", "dropped")

#: Seconds between two reads of the records (observe.records.follow's interval).
RECORDS_INTERVAL = 0.2


class Hub:
    """The latest picture and the pages subscribed to what changes. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[queue.Queue[tuple[str, Any] | None]] = []
        self.state: dict[str, Any] = {}
        self.decided: deque[dict[str, Any]] = deque(maxlen=KEEP_DECIDED)
        self.notes: deque[dict[str, Any]] = deque(maxlen=KEEP_DECIDED)

    def subscribe(self) -> queue.Queue[tuple[str, Any] | None]:
        """A queue of (event, data) for one page, starting with the current
        picture; None in it means the stream is over."""
        q: queue.Queue[tuple[str, Any] | None] = queue.Queue(QUEUE_EVENTS)
        with self._lock:
            if self.state:
                q.put(("state", self.state))
            if self.decided:
                q.put(("decided", list(self.decided)))
            for note in self.notes:
                q.put(("note", note))
            self._subscribers.append(q)
        return q

    def unsubscribe(self, q: queue.Queue[tuple[str, Any] | None]) -> None:
        with self._lock:
            if q in self._subscribers:
                self._subscribers.remove(q)

    def publish(self, event: str, data: Any) -> None:
        """Send (event, data) to every page; remember state, decided and notes."""
        with self._lock:
            if event == "state":
                self.state = data
            elif event == "decided":
                self.decided.extend(data)
            elif event == "note":
                self.notes.append(data)
            for q in list(self._subscribers):
                try:
                    q.put_nowait((event, data))
                except queue.Full:  # a page that stopped reading: end its stream
                    self._subscribers.remove(q)
                    _close(q)

    def close(self) -> None:
        """End every page's stream (the server is stopping)."""
        with self._lock:
            for q in self._subscribers:
                _close(q)
            self._subscribers.clear()


def _close(q: queue.Queue[tuple[str, Any] | None]) -> None:
    try:
        q.put_nowait(None)
    except queue.Full:
        q.get_nowait()
        q.put_nowait(None)


class Watch:
    """Polls the cluster of `manifest` (loaded from `file`) into `hub`."""

    def __init__(self, manifest, file: str, hub: Hub, *, interval: float = 0.25,
                 actions: bool = False) -> None:
        self.manifest = manifest
        self.file = file
        self.hub = hub
        self.interval = interval
        self.actions = actions
        self.names = tuple(a.name for a in manifest.agents)
        self.stopping = threading.Event()
        self._data = None  # a DataClient, while the cluster answers
        self._data_key: object = None
        self._next_slot: int | None = None
        self._control = None  # a control Client, while a supervisor runs here
        self._last_state: dict[str, Any] = {}
        self._failure = ""  # the last poll's failure, noted once
        self._records: list[dict[str, Any]] = []  # made since the last poll (follower thread)
        self._records_lock = threading.Lock()

    # ------------------------------------------------------------ the loop

    def run(self) -> None:
        """Poll until `stop()`; never raises (a poll that fails is retried)."""
        follower = threading.Thread(target=self._follow_records, name="paxosctl-ui-records",
                                    daemon=True)
        follower.start()
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                self.poll()
            except Exception as e:  # noqa: BLE001 - the page says so; the next poll retries
                why = f"could not read the cluster: {e}"
                if why != self._failure:  # once per cause, not four times a second
                    self._note(why)
                self._failure = why
                self._drop_clients()
            else:
                self._failure = ""
            self.stopping.wait(max(0.0, self.interval - (time.monotonic() - started)))
        self._drop_clients()

    def stop(self) -> None:
        self.stopping.set()

    def poll(self) -> None:
        """One look at the cluster: publish what changed."""
        endpoints = self._endpoints()
        status = self._supervisor_status()
        answers = self._survey(endpoints) if endpoints is not None else []
        state = self._state(answers, status, endpoints is not None)
        self._diff(self._last_state, state)
        if state != self._last_state:
            self._last_state = state
            self.hub.publish("state", state)
        if endpoints is not None:
            self._read_decided(endpoints, state)
        self._publish_records()

    # ------------------------------------------------------------ sources

    def _endpoints(self):
        """Where the data path is (as `paxosctl decided` finds it), or None
        when no cluster runs for the manifest."""
        from ..endpoints import from_manifest, read_endpoints
        from ..errors import NotRunning
        from ..layout import paths

        try:
            return read_endpoints(paths(self.manifest.state_dir)["run"], self.file)
        except NotRunning:
            return from_manifest(self.manifest, self.file)

    def _supervisor_status(self) -> dict[str, Any] | None:
        """The supervisor's status, if one runs this cluster on this host."""
        from ..client.sync import Client
        from ..layout import paths
        from ..supervisor.pidfile import running_supervisor

        if running_supervisor(self.manifest.state_dir) is None:
            self._close_control()
            return None
        try:
            if self._control is None:
                self._control = Client(paths(self.manifest.state_dir)["socket"],
                                       cluster_file=self.file)
            return self._control.request("status", timeout=2)
        except Exception:  # noqa: BLE001 - stopping or restarting: ask again next poll
            self._close_control()
            return None

    def _survey(self, endpoints) -> list:
        from ..client.probe import survey

        return survey(endpoints, self.names)

    # ------------------------------------------------------------ the picture

    def _state(self, answers: list, status: dict[str, Any] | None, running: bool) -> dict[str, Any]:
        """The "state" event: one row per agent, the manifest's first, then members learned."""
        rows: dict[str, dict[str, Any]] = {}
        for answer in answers:
            w = answer.welcome
            ballot = w.get("ballot")
            rows[answer.name] = {
                "name": answer.name, "roles": w.get("roles") or [],
                "answered": answer.answered, "error": answer.error or None,
                "state": "running" if answer.answered else "silent",
                "incarnation": w.get("incarnation"),
                "ballot": (f"{ballot[0]}.{ballot[1]}"  # round 0: none chosen yet
                           if isinstance(ballot, list) and len(ballot) == 2 and ballot[0]
                           else None),
                "claims": w.get("leader"), "applied": w.get("applied"),
                "pid": None, "restarts": None}
        roles = {a.name: sorted(a.roles) for a in self.manifest.agents}
        for name in self.names:
            rows.setdefault(name, {"name": name, "roles": [], "answered": False,
                                   "error": "no cluster running" if not running else None,
                                   "state": "down", "incarnation": None, "ballot": None,
                                   "claims": None, "applied": None, "pid": None,
                                   "restarts": None})
        for row in rows.values():
            row["roles"] = row["roles"] or roles.get(row["name"], [])
        if status is not None:
            for a in status.get("agents", []):
                row = rows.get(a["name"])
                if row is not None:
                    # The supervisor's word on the process (backoff, stopped...).
                    row.update(state=a["state"], pid=a.get("pid"), restarts=a.get("restarts"))
        leader = self._leader(rows.values(), status)
        for row in rows.values():
            row["leader"] = row["name"] == leader
        return {"cluster": self.manifest.name, "leader": leader, "running": running,
                "supervised": status is not None,
                "chaos": status.get("chaos", {}) if status is not None else None,
                "actions": self.actions and status is not None,
                "agents": list(rows.values())}

    @staticmethod
    def _leader(rows, status: dict[str, Any] | None) -> str | None:
        """The leader: the proposer that answered saying it leads (the highest
        ballot if two still do, one of them not knowing yet), else the
        supervisor's word."""
        leading = [r for r in rows if r["answered"] and r["claims"] == r["name"]]
        if leading:
            def rank(r):
                b = r["ballot"] or "0."
                head, _, tail = b.partition(".")
                return (int(head) if head.isdigit() else 0, tail)
            return max(leading, key=rank)["name"]
        return status.get("leader") if status is not None else None

    def _diff(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Notes for what a person watching should not miss."""
        if not old:
            return
        if old.get("leader") != new.get("leader"):
            self._note(f"leader: {old.get('leader') or 'none'} -> {new.get('leader') or 'none'}")
        before = {a["name"]: a for a in old["agents"]}
        for a in new["agents"]:
            b = before.get(a["name"])
            if b is None:
                self._note(f"{a['name']} joined")
            elif b["state"] != a["state"]:
                self._note(f"{a['name']}: {b['state']} -> {a['state']}")
            elif (a["incarnation"] is not None and b["incarnation"] is not None
                  and a["incarnation"] != b["incarnation"]):
                self._note(f"{a['name']} restarted (incarnation {a['incarnation']})")
        before, chaos = old.get("chaos"), new.get("chaos")
        if before is not None and chaos is not None and before != chaos:  # None: no supervisor
            self._note("chaos: " + (", ".join(f"{k}={_shown(v)}" for k, v in chaos.items())
                                    or "off"))

    def _note(self, text: str) -> None:
        self.hub.publish("note", {"at": time.time(), "text": text})

    # ------------------------------------------------------------ the records

    def _follow_records(self) -> None:
        """The follower thread: every record the agents make, into `_records`
        (read again from scratch when the cluster went away and came back)."""
        from ..observe.records import follow

        while not self.stopping.is_set():
            try:
                endpoints = self._endpoints()
                if endpoints is not None:
                    for record in follow(endpoints, interval=RECORDS_INTERVAL,
                                         stop=self.stopping.is_set):
                        with self._records_lock:
                            self._records.append(record)
            except Exception:  # noqa: BLE001 - the cluster is going or coming: start over
                pass
            self.stopping.wait(1.0)

    def _publish_records(self) -> None:
        """The records made since the last poll, as "messages" or "traffic"."""
        with self._records_lock:
            made, self._records = self._records, []
        # A message once (its send; a dropped one too), and a learner's decision.
        made = [r for r in made if r.get("kind") not in BACKGROUND
                and (r.get("dir") == "send" or r.get("kind") == "decided")]
        if not made:
            return
        if len(made) <= MAX_BATCH:
            self.hub.publish("messages", [{k: r.get(k) for k in DRAWN} for r in made])
            return
        links: dict[tuple[str, str], int] = {}
        for r in made:
            if r.get("dir") == "send" and r.get("peer"):
                key = (r["agent"], r["peer"])
                links[key] = links.get(key, 0) + 1
        self.hub.publish("traffic", {"links": [[a, b, n] for (a, b), n in links.items()],
                                     "records": len(made)})

    # ------------------------------------------------------------ the log

    def _read_decided(self, endpoints, state: dict[str, Any]) -> None:
        """Publish the entries applied since the last poll (the log's tail at first)."""
        from ..client.datapath import DataClient
        from ..client.decidedlog import read_log
        from ..errors import RequestFailed

        applied = [a["applied"] for a in state["agents"]
                   if a["answered"] and type(a["applied"]) is int]
        if not applied:
            return
        top = max(applied)
        if self._next_slot is None:
            self._next_slot = max(0, top - KEEP_DECIDED + 1)
        if top < self._next_slot:
            return
        key = (endpoints.run_dir, endpoints.cluster_id)
        if self._data is None or self._data_key != key:
            self._close_data()
            self._data, self._data_key = DataClient(endpoints, cluster_file=self.file), key
        start = max(self._next_slot, top - READ_DECIDED + 1)
        try:
            entries = list(read_log(self._data, start, limit=READ_DECIDED))
        except RequestFailed:
            # Below the slots the learner retains ([log] retain): go on from
            # its newest; any other failure is the poll's (retried).
            self._next_slot = top
            return
        if entries:
            self._next_slot = entries[-1].slot + 1
            self.hub.publish("decided", [_entry(e) for e in entries])

    # ------------------------------------------------------------ clean up

    def _close_data(self) -> None:
        if self._data is not None:
            self._data.close()
            self._data = None

    def _close_control(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None

    def _drop_clients(self) -> None:
        self._close_data()
        self._close_control()


def _entry(e) -> dict[str, Any]:
    """A decided entry as the page shows it (the value as text, cut short)."""
    config = e.config
    if e.noop:
        text = "(no-op)"
    elif config is not None:
        text = f"(configuration epoch {config[0]}: acceptors {', '.join(config[1])})"
    else:
        text = e.value.decode("utf-8", "replace")
        text = text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 1] + "…"
    return {"slot": e.slot, "index": e.index, "position": e.position,
            "request_id": None if e.noop or config is not None else e.request_id,
            "text": text, "noop": e.noop}


def dumps(data: Any) -> str:
    """JSON for a server-sent event's data line (no newline inside)."""
    return json.dumps(data, separators=(",", ":"))


def _shown(value: Any) -> str:
    """A chaos setting as the page notes it: a list as `a,b`, as `paxosctl chaos` takes it."""
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
