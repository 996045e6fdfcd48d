"""`paxosctl top`, the live terminal view, in three parts:

- `model`: pure: an agent's sample at one instant, the table's rows from
  two samples (rates are deltas of the counters agents report), sorting;
- `source`: where the samples come from: the supervisor's `status` plus
  each agent's own view (an INFO `describe`), or the agents alone when no
  supervisor runs the cluster here (as `paxosctl status` and `describe` do);
- `screen`: the curses screen and its keys. Only this module imports
  `curses`, and only `paxosctl top` imports it: `status` stays cold-fast.

May import the shared top modules and `client` (the data path's dialler,
`survey`); nothing here imports `paxosctl.cli`.
"""
