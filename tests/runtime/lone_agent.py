"""Run one agent alone, as its own OS process, with limits a test chooses.

    python lone_agent.py FOLDER HANDSHAKE_SECONDS MAX_INBOUND NOFILE

The agent is a replica (proposer, acceptor and learner of a cluster of
one: it decides on its own), its endpoint is FOLDER/run/r0.sock, its log
FOLDER/r0.log. NOFILE (0: unchanged) lowers its descriptor limit, to
exhaust it on purpose. It runs until SIGTERM. The supervisor is not
involved: nothing reads its heartbeats (they are skipped once the pipe is
full), and its inbox stays open, so it does not exit for want of one.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import sys

from paxos_agents.core.settings import Membership, Settings
from paxos_agents.runtime.main import agent_main
from paxos_agents.runtime.spec import AgentSpec
from paxos_agents.runtime.transport import Limits

NAME = "r0"
CLUSTER = "lone"


def main() -> None:
    folder, handshake, max_inbound, nofile = (sys.argv[1], float(sys.argv[2]),
                                              int(sys.argv[3]), int(sys.argv[4]))
    spec = AgentSpec(
        name=NAME, membership=Membership((NAME,), (NAME,), (NAME,)), settings=Settings(),
        tick_seconds=0.01, heartbeat_seconds=0.2,
        state_path=os.path.join(folder, f"{NAME}.db"), log_path=os.path.join(folder, f"{NAME}.log"),
        seed=1, cluster_id=CLUSTER, run_dir=os.path.join(folder, "run"),
        limits=Limits(handshake_seconds=handshake, max_inbound=max_inbound))
    inbox_reader, inbox_writer = multiprocessing.Pipe(duplex=False)
    outbox_reader, outbox_writer = multiprocessing.Pipe(duplex=False)
    if nofile:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    # Both other ends stay open in this process: the inbox never reaches EOF.
    agent_main(spec, inbox_reader, outbox_writer)
    del inbox_writer, outbox_reader


if __name__ == "__main__":
    main()
