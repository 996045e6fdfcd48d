"""One wing for changing who runs: `scale`, `replace`, and the agents `apply`
adds or removes.

- `plan`: current configuration + asked change -> a plan or a refusal
  (pure; the only place that decides whether the acceptors change and
  whether a change is allowed);
- `change`: the change as a state machine, `Transition.step(view, now) ->
  actions`, with no process;
- `driver`: one change at a time through an `Engine`, resumed after a
  killed supervisor from `topology`;
- `topology`: topology.json alone (a cache of what the cluster records);
- `names`: names for new agents; `record`: the configurations the agents
  reported, parsed once;
- `remote`: the engine for agents no supervisor runs (`RemoteEngine`: its
  view polled from the agents, the record announced over the operator
  channel), with `launchers` (Kubernetes objects, systemd units) starting
  and stopping their processes; the CLI hands it the client calls.

The engine of today, the supervisor's fleet, is outside the wing:
`paxosctl.supervisor.engine` (the wing is driven by the supervisor and
never reaches up to it, so another engine can drive the same change).

May import: the shared top modules of `paxosctl` (manifest, faults,
errors, layout) and `paxos_agents.core`; never the supervisor, the client
library, the tools or the CLI. This package's __init__ imports nothing:
the supervisor's fleet imports `record`.
"""
