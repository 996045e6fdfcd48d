"""Reading what a running cluster's agents record, for the tools that show
Paxos at work (`paxosctl trace`, `top`, `ui`): `records` gets the agents'
protocol records over the data path (paxos_agents.runtime.protocolrecords
holds the format)."""
