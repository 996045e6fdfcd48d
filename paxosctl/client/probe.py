"""Ask agents who they are, with no supervisor: `survey(endpoints, names)`.

Every agent answers a client's HELLO with a WELCOME naming itself, its
incarnation, its roles, the members it knows of, its ballot, the leader
it knows of (a proposer), and the slots known decided and applied (a
learner): paxos_agents.runtime.agent `_welcome`. That is enough for
`paxosctl status` from a host where no supervisor runs the cluster
(agents run by `paxosctl agent NAME` on their own hosts). Given a
`request`, each agent is also asked one read-only question after its
WELCOME (an INFO frame: paxos_agents.runtime.queries; `describe`,
`events`, `logs`), and its REPLY is the answer's `reply`.

`survey` is how every command without a supervisor learns the cluster:
it dials the names it is given (the manifest's), and any member an
answering agent names that it has not dialled yet, in the same pass, so
that agents added since the manifest was written (`scale`) are asked
too. Each agent is dialled at once, over the same `Dialler` the data path
uses (so over TLS the agent must prove its name, and this client
presents its client certificate), and all share one deadline. An agent
that does not answer in time, refuses, or fails its identity check is
reported so, with the reason in one line; nothing is retried.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from paxos_agents.runtime import clientwire as wire
from paxos_agents.runtime import frames
from paxos_agents.runtime.handshake import CLIENT, hello

from ..endpoints import Endpoints
from .dialling import Dialler

#: Seconds the agents have to answer, all of them dialled at once. Below
#: the 2 s `paxosctl status` promises with a host unreachable (README,
#: "On several hosts"), with room for the command's own start (a cold
#: start, certificates read, under load: up to about 1 s).
ASK_SECONDS = 1.0


@dataclass(slots=True)
class Answer:
    """What agent `name` said (`welcome`, and `reply` to a request), or why
    it said nothing (`error`). `learned`: not given, named by a member."""

    name: str
    welcome: dict[str, Any] = field(default_factory=dict)
    reply: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    learned: bool = False

    @property
    def answered(self) -> bool:
        return not self.error


def survey(endpoints: Endpoints, names: tuple[str, ...], request: dict[str, Any] | None = None,
           timeout: float = ASK_SECONDS, *, learn: bool = True) -> list[Answer]:
    """One `Answer` per agent: each of `names`, in that order, then (with
    `learn`) each member the answering agents named that `names` lacks, in
    the order learned; all within `timeout` seconds."""
    dialler = Dialler(endpoints)
    answers: dict[str, Answer] = {}
    selector = selectors.DefaultSelector()
    open_conns: dict[str, Any] = {}

    def dial(name: str, learned: bool) -> None:
        answers[name] = Answer(name, learned=learned)
        conn = dialler.dial(name, lookup_now=True)
        if conn is None:
            answers[name].error = "not listening (refused, or its address does not resolve)"
            return
        conn.queue(hello(endpoints.cluster_id, CLIENT, 0, name))
        selector.register(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, name)
        open_conns[name] = conn

    for name in dict.fromkeys(names):
        dial(name, False)
    deadline = time.monotonic() + timeout
    try:
        while open_conns:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, mask in selector.select(left):
                name = key.data
                conn = open_conns[name]
                answer = answers[name]
                done = _step(conn, answer, mask, request)
                for member in answer.welcome.get("members") or () if learn else ():
                    if isinstance(member, str) and member not in answers:
                        dial(member, True)
                if done:
                    selector.unregister(conn.sock)
                    conn.close()
                    del open_conns[name]
                else:
                    want = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.has_output else 0)
                    selector.modify(conn.sock, want, name)
    finally:
        for name, conn in open_conns.items():
            answers[name].error = (f"no answer within {timeout:g} s" if not answers[name].welcome
                                   else f"welcomed, but no reply within {timeout:g} s")
            conn.close()
        selector.close()
    return list(answers.values())


def _step(conn, answer: Answer, mask: int, request: dict[str, Any] | None) -> bool:
    """Drive one connection; True when its answer (or failure) is known."""
    refused = _socket_error(conn)  # read first: the connection's own read clears it
    if refused:
        answer.error = refused
        return True
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
        if not answer.welcome:
            if kind != frames.WELCOME:
                answer.error = "refused: " + body.decode("utf-8", "replace")[:200]
                return True
            info = _json_object(body)
            if info is None:
                answer.error = "answered with a WELCOME that is not a JSON object"
                return True
            answer.welcome = info
            if request is None:
                return True
            conn.queue(wire.INFO + json.dumps(request).encode())
            conn.write()
            continue
        if kind != wire.REPLY:
            continue  # a proposer's LEADER hint: not the answer
        reply = _json_object(body)
        if reply is None:
            answer.error = "answered with a REPLY that is not a JSON object"
        elif "error" in reply:
            answer.error = f"refused the question ({reply.get('code', '?')}): {reply['error']}"[:300]
        else:
            answer.reply = reply
        return True
    return False


def _socket_error(conn) -> str:
    """Why the connection failed, as the kernel says (a connect to a host
    that is down: "No route to host"); "" if it holds no error."""
    try:
        code = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    except OSError:
        return ""
    return f"cannot connect: {os.strerror(code)}" if code else ""


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        info = json.loads(body)
    except ValueError:
        return None
    return info if isinstance(info, dict) else None
