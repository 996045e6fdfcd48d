"""Proof under faults (issue #5): real clusters killed, crashed, starved of
disk, partitioned and fed garbage, every run checked with
`paxosctl.tools.history.check`.

This folder is a package on purpose. Its `conftest.py` then imports as
`faults.conftest` instead of plain `conftest`, so it never shadows
`tests/conftest.py`. Test modules import the cluster harness from
tests/clusters.py, never from a conftest.
"""
