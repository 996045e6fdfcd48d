"""paxosctl: run a Multi-Paxos cluster on one machine, one OS process per agent."""

__version__ = "0.1.0"
