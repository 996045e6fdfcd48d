"""One wing for changing who runs: `scale`, `replace`, and the agents `apply`
adds or removes.

- `plan`: current configuration + asked change -> a plan or a refusal
  (pure; the only place that decides whether the acceptors change and
  whether a change is allowed);
- `change`: the change as a state machine, `Transition.step(view, now) ->
  actions`, with no process;
- `driver`: one change at a time through an `Engine`, resumed after a
  killed supervisor from `topology`;
- `local`: the engine of today, the supervisor's `Fleet`;
- `topology`: topology.json alone (a cache of what the cluster records);
- `names`: names for new agents; `record`: the configurations the agents
  reported, parsed once.

This package's __init__ imports nothing: the fleet imports `record`, and
`local` imports the fleet.
"""
