"""The supervisor: the process that runs a cluster's agents on this machine.

Its rooms, top to bottom (tests/test_layers.py holds the order): `daemon`
(the detached process behind `up -d`), `supervisor` (the `Supervisor`:
serves the control socket, drives the loop), `ops` (one function per
control request), `snapshot`, `engine` (the membership wing's engine on
this machine), `rollout` and `reconcile` (`apply`), `fleet` (the running
agents), `agents`, `metrics`, `restart`, `loop`; beside them `control`
(the socket server), `events`, `pending`, `chaos`, and the state dir's
stewards: `ownership` (who may use it), `pidfile`, `members`,
`footprint`, `purge`.

May import: `paxosctl.membership` (the wing that decides and drives a
change) and the shared top modules of `paxosctl`; never the client
library, the tools or the CLI. The CLI imports a few of its modules
(ownership, pidfile, reconcile, purge) to act on a state dir before any
supervisor runs: this file imports nothing, so that stays cheap.
"""
