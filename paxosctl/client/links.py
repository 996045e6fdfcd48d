"""The data path's connections: one per proposer, one to the learner followed.

`Links` opens, watches, writes and closes the client's connections to the
agents (`paxosctl.client.dataloop` decides when, and what a lost one
means for the requests in flight). Each connection starts with a HELLO
(and a learner's with SUBSCRIBE) and is watched by the selector the I/O
thread waits on; a wake-up pipe (`paxosctl.client.handoff`) is watched
there too, with no endpoint (`key.data` None).

Nothing here blocks: Unix sockets connect or fail at once, and a TLS
connection connects and shakes hands in the loop (`paxosctl.client.dialling`),
whose failures (an impostor, a certificate the agent refused) are counted
in `refusals` and logged once per agent and reason. Used by one thread at
a time: the constructor's, then the I/O thread's.
"""

from __future__ import annotations

import logging
import selectors
import threading
from collections import Counter

from paxos_agents.runtime import clientwire as wire
from paxos_agents.runtime.transport import CLIENT, hello

from ..endpoints import Endpoints
from .dialling import Dialler
from .following import Endpoint, Learners

#: A certificate refused on a connection to an agent is one line here (the
#: CLI has no handler: Python's last resort prints it on stderr).
log = logging.getLogger("paxosctl.client")

#: Seconds between reconnect attempts to an endpoint that is down.
RECONNECT_SECONDS = 0.1


class Links:
    """Every agent this client may talk to (`proposers`, `learners`), and
    the connection to each that is up (`Endpoint.conn`)."""

    def __init__(self, endpoints: Endpoints, learners: Learners, wake_fd: int) -> None:
        """`learners`: the learners' order and the stall rule (`following`);
        `wake_fd`: the pipe that wakes the I/O thread, watched with the sockets."""
        self.endpoints = endpoints
        #: Opens the connections: Unix sockets or TCP + TLS (paxosctl.client.dialling).
        self._dialler = Dialler(endpoints)
        #: TLS connections that failed their handshake or identity check,
        #: by `identity.REASONS` counter name, and the last one's line.
        self.refusals: Counter[str] = Counter()
        self.last_refusal = ""
        self._warned: set[tuple[str, str]] = set()
        #: The I/O thread, once it runs (`started`): a host name is looked up
        #: in its loop there, at once before (`dialling`).
        self._ident: int | None = None
        self.selector = selectors.DefaultSelector()
        self.selector.register(wake_fd, selectors.EVENT_READ, None)
        self.proposers = [Endpoint(n) for n in endpoints.proposers]
        self.learners = learners
        #: Every agent this client may talk to (the learners' order aside).
        self.all = self.proposers + list(learners)

    def started(self) -> None:
        """The calling thread is the I/O thread from now on."""
        self._ident = threading.get_ident()

    # ------------------------------------------------------------- opening

    def connect(self, endpoint: Endpoint, now: float) -> None:
        """Open a connection to `endpoint` and send its HELLO, without waiting:
        the WELCOME comes through the I/O loop. An agent that is stopped
        (SIGSTOP) takes the connection and answers nothing, and what is
        sent to it waits for its deadline like any unanswered command."""
        endpoint.retry_at = now + RECONNECT_SECONDS
        conn = self._dialler.dial(endpoint.name, lookup_now=threading.get_ident() != self._ident)
        if conn is None:
            return
        conn.peer = endpoint.name
        conn.queue(hello(self.endpoints.cluster_id, CLIENT, 0, endpoint.name))
        if endpoint in self.learners:
            conn.queue(wire.SUBSCRIBE)
            self.learners.learned(now)  # a new learner gets a whole stall period
        endpoint.conn = conn
        endpoint.info = {}
        endpoint.connected_at = now
        self.selector.register(conn.sock, selectors.EVENT_READ, endpoint)

    def connect_learner(self, now: float) -> None:
        """Connect to one learner (the first that takes it): answers come from it."""
        for endpoint in self.learners.to_try(now):
            self.connect(endpoint, now)
            if endpoint.conn is not None:
                return

    def redial(self, now: float) -> bool:
        """With every connection lost: dial every agent again (over TLS only
        those whose retry time came: a TCP connect fails later, not here, or
        a dead cluster would be redialled in a loop, once per failed
        connect). False when none took it and no host name is still being
        looked up: the cluster is gone."""
        secure = self._dialler.secure
        for endpoint in self.all:
            if not secure or now >= endpoint.retry_at:
                self.connect(endpoint, now)
        # A host name still looked up (TLS) is no answer yet: the deadlines say, not this.
        return self.any_up() or self._dialler.pending()

    def any_up(self) -> bool:
        return any(e.conn for e in self.all)

    def target(self, leader: str | None) -> Endpoint | None:
        """The proposer to send to: `leader` if we are connected to it, else
        one that answered, else any we are connected to."""
        up = [p for p in self.proposers if p.conn is not None]
        for p in up:
            if p.name == leader:
                return p
        greeted = [p for p in up if p.conn.greeted]
        return (greeted or up or [None])[0]

    # -------------------------------------------------- writing, closing

    def write(self, endpoint: Endpoint) -> bool:
        """Write what `endpoint`'s connection holds, watching writability only
        while it waits to write. False: the write failed (the refusal, if
        TLS said why, is noted); the caller drops the connection."""
        conn = endpoint.conn
        try:
            done = conn.write()
        except OSError:
            self.note_refusal(endpoint)
            return False
        if done == conn.watching_write:
            events = selectors.EVENT_READ | (0 if done else selectors.EVENT_WRITE)
            try:
                self.selector.modify(conn.sock, events, endpoint)
                conn.watching_write = not done
            except (KeyError, ValueError):
                pass
        return True

    def drop(self, endpoint: Endpoint) -> bool:
        """Close `endpoint`'s connection; False if it had none."""
        conn = endpoint.conn
        if conn is None:
            return False
        try:
            self.selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.close()
        endpoint.conn = None
        return True

    def note_refusal(self, endpoint: Endpoint) -> None:
        """Count and keep the one line of a TLS handshake or identity check
        that failed on `endpoint`'s connection (an impostor, a certificate
        the agent refused); nothing if it failed otherwise."""
        conn = endpoint.conn
        failure = conn.failure if conn is not None else None
        if failure is None:
            return
        from paxos_agents.runtime.identity import REASONS

        reason, line = failure
        self.refusals[REASONS[reason][0]] += 1
        self.last_refusal = f"{endpoint.name}: {line}"
        if (endpoint.name, reason) not in self._warned:  # once per agent and reason, not per retry
            self._warned.add((endpoint.name, reason))
            log.warning("refused the TLS connection to %s", self.last_refusal)

    def close(self) -> None:
        """Close every connection and the selector."""
        for endpoint in self.all:
            self.drop(endpoint)
        self.selector.close()
