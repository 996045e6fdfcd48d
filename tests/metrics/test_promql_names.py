"""The PromQL name extraction that the dashboard and alert checks rely on."""

from __future__ import annotations

import pytest
from promql import metric_names, template_metric_names


@pytest.mark.parametrize(("expr", "names"), [
    ("paxos_has_leader == 0", {"paxos_has_leader"}),
    ('up{job="paxosctl"} == 0', {"up"}),
    ('rate(paxos_decided_commands_total{instance=~"$instance"}[$__rate_interval])',
     {"paxos_decided_commands_total"}),
    ("histogram_quantile(0.99, sum by (instance, agent, role, le) "
     "(rate(paxos_acceptor_persist_duration_seconds_bucket[5m]))) > 0.1",
     {"paxos_acceptor_persist_duration_seconds_bucket"}),
    ('sum by (instance) (paxosctl_agent_up{role=~"acceptor|replica"}) '
     "< on (instance) (paxos_acceptor_quorum + 1)",
     {"paxosctl_agent_up", "paxos_acceptor_quorum"}),
    ("max by (agent) (a_slots) > 0 and on (agent) (max by (agent) (rate(b_total[5m])) == 0)",
     {"a_slots", "b_total"}),
    ("time() - paxos_leader_change_timestamp_seconds offset 5m > 1e9",
     {"paxos_leader_change_timestamp_seconds"}),
    ('sum without (le, "x") (x_bucket) / ignoring(role) group_left(agent) y',
     {"x_bucket", "y"}),
    ('label_replace(z, "dst", "$1", "src", "(sum|rate)")', {"z"}),
    ("max_over_time(q[5m:30s])", {"q"}),
], ids=["bare", "matcher", "grafana-variables", "histogram", "vector-matching", "and-on",
        "offset-number", "without-group-left", "strings-with-words", "subquery"])
def test_metric_names(expr, names):
    assert metric_names(expr) == names


def test_template_variable_queries():
    assert template_metric_names("label_values(paxosctl_build_info, instance)") == {
        "paxosctl_build_info"}
    assert template_metric_names('label_values(x{job="a"}, agent)') == {"x"}
    assert template_metric_names("query_result(count(w))") == {"w"}
