"""The seeded, fault-injecting simulator: `python -m paxos_agents.sim --help`."""

from .checks import Checker, Violation
from .cluster import Faults, SimCluster
from .faults import LIVENESS_TICKS, Outcome, run_seed
from .topology import COLLAPSED, RETAINING, SEPARATE, Topology

__all__ = ["Checker", "Violation", "Faults", "SimCluster", "LIVENESS_TICKS", "Outcome",
           "run_seed", "COLLAPSED", "RETAINING", "SEPARATE", "Topology"]
