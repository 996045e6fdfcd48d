"""Ask agents who they are, with no supervisor: `ask(endpoints, names)`.

Every agent answers a client's HELLO with a WELCOME naming itself, its
incarnation, its roles, the leader it knows of (a proposer) and the slot
it applied up to (a learner): paxos_agents.runtime.transport. That is
enough for `paxosctl status` from a host where no supervisor runs the
cluster (agents run by `paxosctl agent NAME` on their own hosts): each
agent is dialled at once, over the same `Dialler` the data path uses
(so over TLS the agent must prove its name, and this client presents
its client certificate), and each gets one deadline. An agent that does
not answer in time, refuses, or fails its identity check is reported so,
with the reason in one line; nothing is retried.
"""

from __future__ import annotations

import json
import selectors
import time
from dataclasses import dataclass, field
from typing import Any

from paxos_agents.runtime import frames
from paxos_agents.runtime.handshake import CLIENT, hello

from ..endpoints import Endpoints
from .dialling import Dialler

#: Seconds an agent has to answer, all of them dialled at once.
ASK_SECONDS = 3.0


@dataclass(slots=True)
class Answer:
    """What agent `name` said (`welcome`), or why it said nothing (`error`)."""

    name: str
    welcome: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def answered(self) -> bool:
        return not self.error


def ask(endpoints: Endpoints, names: tuple[str, ...], timeout: float = ASK_SECONDS) -> list[Answer]:
    """One `Answer` per name of `names`, in that order, within `timeout` seconds."""
    dialler = Dialler(endpoints)
    answers = {name: Answer(name) for name in names}
    selector = selectors.DefaultSelector()
    open_conns = {}
    for name in names:
        conn = dialler.dial(name, lookup_now=True)
        if conn is None:
            answers[name].error = "not listening (refused, or its address does not resolve)"
            continue
        conn.queue(hello(endpoints.cluster_id, CLIENT, 0, name))
        selector.register(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, name)
        open_conns[name] = conn
    deadline = time.monotonic() + timeout
    try:
        while open_conns:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, mask in selector.select(left):
                name = key.data
                conn = open_conns[name]
                done = _step(conn, answers[name], mask)
                if done:
                    selector.unregister(conn.sock)
                    conn.close()
                    del open_conns[name]
                elif not conn.has_output and mask & selectors.EVENT_WRITE:
                    selector.modify(conn.sock, selectors.EVENT_READ, name)
    finally:
        for name, conn in open_conns.items():
            answers[name].error = f"no answer within {timeout:g} s"
            conn.close()
        selector.close()
    return [answers[name] for name in names]


def _step(conn, answer: Answer, mask: int) -> bool:
    """Drive one connection; True when its answer (or failure) is known."""
    try:
        if mask & selectors.EVENT_WRITE or conn.has_output:
            conn.write()
        got = conn.read() if mask & selectors.EVENT_READ else []
    except OSError:
        got = None
    if got is None:
        failure = getattr(conn, "failure", None)
        answer.error = failure[1] if failure else "closed the connection without a word"
        return True
    for frame in got:
        kind, body = frame[:1], frame[1:]
        if kind == frames.WELCOME:
            try:
                info = json.loads(body)
            except ValueError:
                info = None
            if not isinstance(info, dict):
                answer.error = "answered with a WELCOME that is not a JSON object"
            else:
                answer.welcome = info
            return True
        answer.error = "refused: " + body.decode("utf-8", "replace")[:200]
        return True
    return False
