"""The agent runtime: what runs the pure core as OS processes.

`codec` turns messages into bytes for the queues between agent processes
and the supervisor; `storage` makes a node's durable state durable.
"""
