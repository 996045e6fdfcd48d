"""Tools that load and check a running cluster: `bench` (throughput and
latency, `paxosctl bench`), `soak` (a long run under faults, `paxosctl
soak`) and `history` (`check`: a client history against the decided log).

May import: the client library (`paxosctl.client`), the supervisor's
`pidfile` (to find the processes whose CPU time a benchmark reports) and
the shared top modules of `paxosctl`; never the CLI.
"""
