"""`paxosctl agent NAME`: one agent of a manifest as a program of its own.

No supervisor and no pipes: the agent runs in the foreground (a
container's or a systemd unit's main process), logs one line per record
to stdout, ends gracefully on SIGTERM or SIGINT, and answers HTTP probes
on a port of its own.

- `program`: from the manifest to a running agent (the spec, the state
  dir's folders, endpoints.json, logging, signals, exit codes);
- `health`: /healthz, /readyz and /metrics, read from the last heartbeat
  the agent published (paxos_agents.runtime.control.Board);
- `cluster_view`: the per-agent series from which Prometheus computes
  what the supervisor exports cluster-wide (leader, acceptors up, quorum).

May import: the shared top modules, `paxosctl.supervisor` (its metric
families and pid file, not its loop) and `paxos_agents.runtime`.
"""
