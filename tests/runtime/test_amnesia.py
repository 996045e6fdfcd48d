"""Incarnations in the agent's own store, and amnesia (runtime/admission.py).

Real agent processes on Unix sockets in a temporary folder, with no
supervisor (bare_cluster.py): the agent's store and its peers decide
alone, as on a host whose whole disk was wiped. The cluster is one
proposer p0, acceptors a0..a2 and a learner l0, started with `bootstrap`
(a new cluster); a3, an acceptor of the membership that never ran, is
started in one test only.
"""

from __future__ import annotations

import signal
import socket
import sqlite3
import ssl
from pathlib import Path

import pytest

from paxos_agents.core.settings import Membership
from paxos_agents.runtime import frames
from paxos_agents.runtime.handshake import hello
from paxosctl import Client

from bare_cluster import CLUSTER, BareCluster
from clusters import wait_until

MEMBERS = Membership(("p0",), ("a0", "a1", "a2"), ("l0",))
FIRST = ("p0", "a0", "a1", "a2", "l0")


@pytest.fixture(params=["unix", "tls"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path):
    folder = Path(f"/tmp/pxam{tmp_path.name[-12:]}")  # short: Unix socket paths are short
    folder.mkdir(exist_ok=True)
    c = BareCluster(folder, MEMBERS, tls=request.param == "tls")
    try:
        for name in FIRST:
            c.start(name, bootstrap=True)
        yield c
    finally:
        c.close()
        for p in sorted(folder.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        folder.rmdir()


def decide(c: BareCluster, value: str) -> int:
    for name in ("p0", "l0"):
        c.report(name)  # up, listening
    client = c.client()
    try:
        return client.propose_async(value, request_id=value, timeout=20).result(25).slot
    finally:
        client.close()


def test_a_new_cluster_bootstraps_and_every_start_is_a_higher_incarnation(cluster):
    """Guards the store's counter: a new cluster starts (bootstrap: its
    members admit each other), and a SIGKILLed agent comes back with the next
    incarnation, in its heartbeat and in its peers' stores; a replay of its
    old incarnation's HELLO (a raw socket) is refused and counted.
    Break tried: `start_incarnation` not counting up (the second start reports
    1 again)."""
    c = cluster
    first = decide(c, "first")
    assert c.report("a1")["incarnation"] == 1
    c.kill("a1")
    c.start("a1")
    c.report("a1", lambda r: r["incarnation"] == 2, "incarnation 2")
    assert decide(c, "second") > first  # (a leader's no-op may take a slot between)
    assert "admitted" not in c.log("a1").split("incarnation 2")[-1]  # it has run: no asking
    # l0 got a1's Accepted for the second command on a1's link: it remembers incarnation 2, durably.
    c.until(lambda: welcomed(c.state("l0"), "a1") == 2, "l0's store to hold a1's incarnation 2")
    # A replay of incarnation 1's HELLO is refused, counted in l0's heartbeat.
    sock = connect_as(c, "a1", "l0")
    try:
        sock.sendall(frames.pack([hello(CLUSTER, "a1", 1, "l0"), b"replayed"]))
        reader, got = frames.FrameReader(), []
        while not got:
            got = reader.feed(sock.recv(4096))
        assert got[0] == frames.REFUSE + b"stale incarnation 1 of a1: this agent welcomed its incarnation 2"
    finally:
        sock.close()
    c.report("l0", lambda r: r["refused"].get("stale_incarnation") == 1, "the refusal counted")


def connect_as(c: BareCluster, sender: str, agent: str) -> socket.socket:
    """A raw connection to `agent` (blocking, 10 s timeout); over TLS with
    `sender`'s own certificate, as a replaying process of it would hold."""
    if c.certs is None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(str(c.folder / "run" / f"{agent}.sock"))
        return sock
    host, port = (c.folder / "run" / f"{agent}.addr").read_text().strip().rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # the agent's name is its URI SAN, not a host name
    ctx.load_verify_locations(c.certs / "ca.crt")
    ctx.load_cert_chain(c.certs / f"{sender}.crt", c.certs / f"{sender}.key")
    raw = socket.create_connection((host, int(port)), timeout=10)
    return ctx.wrap_socket(raw)


def welcomed(path: Path, member: str) -> int | None:
    """The newest incarnation of `member` the store at `path` remembers (read-only)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT incarnation FROM peers WHERE name = ?", (member,)).fetchone()
        return row[0] if row else None
    finally:
        conn.close()


def steady(c: BareCluster, names: tuple[str, ...], measure):
    """`measure()` once it is the same before and after a new heartbeat of each of `names`."""
    def once():
        before = measure()
        for name in names:
            c.next_report(name)
        return (before,) if measure() == before else None
    return c.until(once, "the counts to settle")[0]


def test_a_wiped_acceptor_exits_78_and_never_answers(cluster):
    """Guards amnesia: a2's store wiped (everything else kept), it is started
    again; peers that welcomed it say so, it exits 78 with one line, and it
    never sent a Promise or an Accepted: the proposer has a command in flight
    that only a2 could vote for (a0 and a1 are stopped), and neither p0 nor l0
    receives one more Promise or Accepted.
    Break tried: `admission_for` returning None (a2 starts empty: it votes,
    p0 and l0 count its Accepted, and it does not exit)."""
    c = cluster
    decide(c, "before")
    c.kill("a2")
    c.wipe("a2")
    for name in ("a0", "a1"):
        c.signal(name, signal.SIGSTOP)

    def votes_received():
        return {n: sum(c.reports[n]["received"].get(k, 0) for k in ("Promise", "Accepted"))
                for n in ("p0", "l0")}

    settled = steady(c, ("p0", "l0"), votes_received)  # nothing in flight from a0, a1
    client = c.client()
    try:
        client.propose_async("only-a2-could-vote", request_id="x", timeout=30)
        c.start("a2")
        assert c.exit_code("a2") == frames.EXIT_NEEDS_OPERATOR
        line = c.fatal["a2"]
        assert "a2 starts with an empty store, but" in line and "welcomed its incarnation 1" in line
        assert "paxosctl replace a2" in line and "\n" not in line
        for name in ("p0", "l0"):
            c.next_report(name)
        assert votes_received() == settled
    finally:
        client.close()


def test_a_wiped_proposer_exits_78(cluster):
    """Guards amnesia for a proposer (it could reuse a ballot round): the
    acceptors welcomed it, so its empty store is refused in one line.
    Break tried: `Admission.hear` not refusing on `welcomed` (p0 waits for
    "added" answers instead, and never exits)."""
    c = cluster
    decide(c, "before")
    c.kill("p0")
    c.wipe("p0")
    c.start("p0")
    assert c.exit_code("p0") == frames.EXIT_NEEDS_OPERATOR
    assert "p0 starts with an empty store" in c.fatal["p0"]
    assert c.report("a0")["incarnation"] == 1  # the others run on


def test_a_wiped_learner_moves_past_its_old_incarnation_and_catches_up(cluster):
    """Guards the learner's rule: l0 ran as incarnation 2, its store is wiped
    (a new store counts from 1); it is admitted, moves its incarnation past
    what its peers welcomed (3), so its HELLOs are not stale, and copies the
    decided log.
    Break tried: `Admission.hear` admitting a learner at its own incarnation
    (1: every peer refuses it as stale, it never catches up)."""
    c = cluster
    decide(c, "one")
    c.kill("l0")
    c.start("l0")
    c.report("l0", lambda r: r["incarnation"] == 2, "incarnation 2")
    slot = decide(c, "two")
    c.report("l0", lambda r: r["decided_up_to"] >= slot, "l0 applied the second command")
    c.kill("l0")
    c.wipe("l0")
    c.start("l0")
    c.report("l0", lambda r: r["incarnation"] == 3 and r["decided_up_to"] >= slot,
             "l0 as incarnation 3, caught up")
    third = decide(c, "three")
    c.report("l0", lambda r: r["decided_up_to"] >= third, "l0 applying new slots")


@pytest.mark.parametrize("tls", [False, True], ids=["unix", "tls"])
def test_an_agent_not_admitted_sends_nothing_and_a_late_first_start_is_admitted(tmp_path: Path,
                                                                             tls: bool):
    """Guards "nothing leaves an agent until it is admitted", and the bootstrap
    rule. a3, an acceptor of the membership that never ran, starts without the
    flag after the cluster decided a slot: it was not added by a change, so it
    is not admitted. With a0, a1 and a2 stopped, p0 has a command in flight
    that a3 alone is asked to vote for, yet neither p0 nor l0 receives one more
    Promise or Accepted. Started again with `bootstrap`, a3 is admitted only
    once every member answered that it never welcomed it (a peer has decided
    slots, so the bootstrap majority does not do).
    Breaks tried: the `not_admitted` gates removed on both ends (a3 votes:
    p0's and l0's counts grow); the `bootstrap and decided` refusal removed
    (a3 is admitted by the members that never welcomed it)."""
    members = Membership(("p0",), ("a0", "a1", "a2", "a3"), ("l0",))
    folder = Path(f"/tmp/pxbs{tmp_path.name[-12:]}")
    folder.mkdir(exist_ok=True)
    c = BareCluster(folder, members, tls=tls)
    client = None
    try:
        for name in FIRST:
            c.start(name, bootstrap=True)
        decide(c, "decided")
        for name in ("a0", "a1", "a2"):
            c.signal(name, signal.SIGSTOP)

        def votes_received():
            return {n: sum(c.reports[n]["received"].get(k, 0) for k in ("Promise", "Accepted"))
                    for n in ("p0", "l0")}

        settled = steady(c, ("p0", "l0"), votes_received)
        client = c.client()
        client.propose_async("a3-is-asked", request_id="y", timeout=30)
        c.start("a3")
        # p0's messages reached a3 (dropped while it is not admitted; stepped if it were).
        c.report("a3", lambda r: r["dropped"].get("not_admitted", 0) + sum(r["received"].values()) >= 2,
                 "p0's messages to reach a3")
        for name in ("p0", "l0"):
            c.next_report(name)
        assert votes_received() == settled
        assert "admitted to the cluster" not in c.log("a3")
        c.kill("a3")
        for name in ("a0", "a1", "a2"):
            c.signal(name, signal.SIGCONT)
        # Started again with `bootstrap` (a pod spec keeps the flag): a peer
        # has decided slots, so the cluster is not new, but a3 never ran
        # where anyone heard: once every member says so, it is admitted.
        c.start("a3", bootstrap=True)
        c.report("a3", lambda r: "admitted to the cluster" in c.log("a3"), "a3 admitted")
        assert "decided slots: this cluster is not new" in c.log("a3")
    finally:
        if client is not None:
            client.close()
        c.close()
        for p in sorted(folder.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        folder.rmdir()


def test_members_added_by_scale_are_admitted_over_tls(make_cluster):
    """Guards the rule for members a change added, with the supervisor, over
    TCP + mutual TLS: `scale acceptor=4` starts acceptor-3 with an empty store
    and no bootstrap flag; its peers say it was added, so it is admitted and
    votes: with acceptor-0 stopped, a command is decided only with
    acceptor-3's vote (3 of 4). A learner added by `scale` catches up.
    Break tried: `_peer_facts` answering "added": False (acceptor-3 is never
    admitted, sends nothing, and the command is not decided)."""
    cluster = make_cluster("roles", transport="tls")
    with Client.for_manifest(cluster.manifest) as client:
        client.propose("before", timeout=20)
    for name in ("acceptor-3", "learner-2"):
        cluster.run_ok("certs", "issue", name)
    cluster.run_ok("scale", "acceptor=4", "--timeout", "30")
    cluster.run_ok("scale", "learner=3", "--timeout", "30")
    cluster.run_ok("stop", "acceptor-0")
    with Client.for_manifest(cluster.manifest) as client:
        slot = client.propose("needs-acceptor-3", timeout=30).slot
    assert "admitted to the cluster" in cluster.agent_log("acceptor-3").read_text()
    wait_until(lambda: cluster.learners_caught_up(slot), 30, "learner-2 to catch up")


def test_a_cluster_of_one_starts_without_asking(tmp_path: Path):
    """Guards the one-member case: r0 (every role) has no peer to ask and is
    its own majority: its new store is admitted at once (marked so: it has
    run from now on) and decides.
    Break tried: no special case (r0's store is never marked admitted; its
    own messages never cross the transport, so it decides either way)."""
    folder = Path(f"/tmp/pxone{tmp_path.name[-12:]}")
    folder.mkdir(exist_ok=True)
    c = BareCluster(folder, Membership(("r0",), ("r0",), ("r0",)))
    try:
        c.start("r0")
        c.report("r0")
        client = c.client()
        try:
            assert client.propose_async("alone", request_id="alone", timeout=20).result(25).slot == 0
        finally:
            client.close()
        conn = sqlite3.connect(f"{c.state('r0').resolve().as_uri()}?mode=ro", uri=True)
        try:
            assert conn.execute("SELECT value FROM meta WHERE key = 'admitted'").fetchone() == (1,)
        finally:
            conn.close()
    finally:
        c.close()
        for p in sorted(folder.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        folder.rmdir()
