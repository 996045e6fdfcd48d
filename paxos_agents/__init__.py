"""Paxos agents: the protocol core (pure) and the agent runtime (processes)."""
