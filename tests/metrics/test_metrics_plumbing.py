"""Every metric fed by agents' heartbeats moves when its workload happens.

The heartbeat's counters reach the scrape through keys that the agent, the
supervisor and the metrics agree on; a renamed stat would silently leave a
metric at zero. Here real agents (in this process, on real pipes) do the
work that must move each metric; their heartbeats go through the same
`AgentReport.from_json` and `report_totals`/`report_gauges` the supervisor
uses, and the scrape must show it.
"""

from __future__ import annotations

from in_process import Driven

from paxos_agents.core import (
    NOOP,
    Accept, Accepted, Ballot, Chunk, Command, Prepare, Promise, Retry, Stored, Value,
)
from paxosctl.supervisor.metrics import Metrics, Snapshot


def scrape(samples) -> dict[str, float]:
    metrics = Metrics()
    metrics.collector.snapshot = Snapshot(cluster="t", agents=tuple(samples), decided_slot=10)
    values = {}
    for line in metrics.text().splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            values[series] = float(value)
    return values


def test_heartbeat_counters_reach_the_scrape(tmp_path):
    b1, low = Ballot(1, "p1"), Ballot(0, "p1")
    # A proposer that leads, then gets the same Retry twice inside the cooldown.
    p1 = Driven("p1", tmp_path)
    p1.tick(25)  # runs for leader
    ballot = p1.agent.node.proposer.ballot
    p1.step(*(Promise(src=a, dst="p1", ballot=ballot, first_slot=0, votes=()) for a in ("a1", "a2")))
    assert p1.agent.node.is_leader
    p1.agent.node.propose(Command("r", b"v"))
    p1.agent._flush()
    p1.tick(p1.agent.node.proposer.settings.accept_timeout_ticks)  # no Accepted: it times out
    p1.step(Retry(src="l1", dst="p1", slot=5))
    p1.step(Retry(src="l1", dst="p1", slot=5))
    # An acceptor that accepts, refuses a stale Prepare, and compacts.
    a1 = Driven("a1", tmp_path)
    a1.step(Accept(src="p1", dst="a1", ballot=b1, slot=0, value=NOOP))
    a1.step(Prepare(src="p1", dst="a1", ballot=low, first_slot=0))
    a1.step(Stored(src="l1", dst="a1", upto=0), Stored(src="l2", dst="a1", upto=0))
    # A learner that decides by votes and copies a slot from a peer.
    l1 = Driven("l1", tmp_path)
    l1.step(*(Accepted(src=a, dst="l1", ballot=b1, slot=0, value=NOOP) for a in ("a1", "a2")))
    l1.step(Chunk(src="l2", dst="l1", asked=1, first_slot=1, decisions=((1, NOOP),), first_slots=()))
    # ... applies a command and saves its id filter, as at a clean stop.
    value = Value.of([Command("r", b"v")])
    l1.step(*(Accepted(src=a, dst="l1", ballot=b1, slot=2, value=value) for a in ("a1", "a2")))
    l1.agent.node.learner.save_filter()
    l1.agent._flush()
    values = scrape([p1.sample("proposer"), a1.sample("acceptor"), l1.sample("learner")])
    must_move = [
        'paxos_retries_requested_total{agent="p1",role="proposer"}',
        'paxos_retries_performed_total{agent="p1",role="proposer"}',
        'paxos_retries_suppressed_total{agent="p1",role="proposer"}',
        'paxos_prepare_rejections_total{agent="a1",role="acceptor"}',
        'paxos_messages_total{agent="a1",role="acceptor",type="Accept"}',
        'paxos_messages_total{agent="p1",role="proposer",type="Retry"}',
        'paxos_messages_total{agent="a1",role="acceptor",type="Stored"}',
        'paxos_messages_sent_total{agent="p1",role="proposer",type="Accept"}',
        'paxos_messages_sent_total{agent="a1",role="acceptor",type="Accepted"}',
        'paxos_acceptor_persist_duration_seconds_count{agent="a1",role="acceptor"}',
        'paxos_proposer_elections_total{agent="p1",role="proposer"}',
        'paxos_proposer_accept_timeouts_total{agent="p1",role="proposer"}',
        'paxos_acceptor_compaction_slot{agent="a1",role="acceptor"}',
        'paxos_learner_applied_slot{agent="l1",role="learner"}',
        'paxos_learner_installed_slots_total{agent="l1",role="learner"}',
        'paxos_learner_id_filter_saves_total{agent="l1",role="learner"}',
        'paxosctl_agent_state_bytes{agent="a1",role="acceptor"}',
    ]
    missing = [name for name in must_move if values.get(name, 0) <= 0]
    assert not missing, missing


def test_a_learner_counts_the_commands_it_copies_from_a_peer(tmp_path):
    """Decided commands are the largest learner's count: a learner whose log was
    copied from a peer must count what it copied, or the metric undercounts
    once every learner has installed some part of the log."""
    l1 = Driven("l1", tmp_path)
    try:
        batch = Value.of([Command("r1", b"a"), Command("r2", b"b"), Command("r0", b"c")])
        # r0 was first decided in slot 0 (not applied again in slot 1); r3 expired.
        l1.step(Chunk(src="l2", dst="l1", asked=0, first_slot=0,
                      decisions=((0, Value.of([Command("r0", b"c")])), (1, batch),
                                 (2, Value.of([Command("r3", b"d")]))),
                      first_slots=(("r0", 0), ("r1", 1), ("r2", 1))))
        report = l1.report()
        assert report.decided_up_to == 2 and report.stats["installed"] == 3
        assert report.stats["applied_commands"] == 3  # r0, r1, r2
        assert report.stats["expired"] == 1  # r3
    finally:
        l1.close()
