"""A learner's core and SQLite store in one process: CPU and RSS per command.

Issue 24: where a learner's microseconds go without the transport, the
supervisor and the other roles in the way. A learner `Node` on a real
`SqliteStorage` file is given a majority of Accepted votes for each slot
(`--per-slot` commands of 16 bytes, ids of the client's layout), takes its
`Ready` and persists it as the agent does: one COMMIT per `--commit-every`
slots (1: a COMMIT per loop turn of one slot, as before group commit) where
the store has `write`/`commit`, else `save` per slot. Run it with each
checkout's interpreter to compare two commits:

    /work/wt-c77/.venv/bin/python bench/learner_inprocess.py --commands 600000
    .venv/bin/python bench/learner_inprocess.py --commands 600000 [--commit-every 1]

Prints CPU µs per command (user + system, this process) and the peak RSS.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import tempfile
import time

from paxos_agents.core import Accepted, Ballot, Membership, Settings
from paxos_agents.core.commands import Command, Value
from paxos_agents.core.node import Node
from paxos_agents.runtime.storage import SqliteStorage

MEMBERS = Membership(proposers=("p1",), acceptors=("a1", "a2", "a3"), learners=("l1",))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=600_000)
    parser.add_argument("--per-slot", type=int, default=100)
    parser.add_argument("--commit-every", type=int, default=4,
                        help="slots per COMMIT where the store can put it off (default 4)")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="learner-inprocess-")
    try:
        store = SqliteStorage(os.path.join(folder, "l1.db"))
        node = Node("l1", MEMBERS, Settings(), store.load(), random.Random(0), store=store)
        group = hasattr(store, "write")
        ms, prefix, per = int(time.time() * 1000), random.getrandbits(48), args.per_slot
        cpu = time.process_time()
        for slot in range(args.commands // per):
            n = slot * per
            value = Value.of([Command(f"{ms + (n + i) // 40:012x}{prefix:012x}{n + i:08x}",
                                      b"x" * 16, slot) for i in range(per)])
            for src in ("a1", "a2"):
                node.step(Accepted(src=src, dst="l1", ballot=Ballot(1, "p1"), slot=slot,
                                   value=value))
            ready = node.ready()
            if group:
                store.write(ready.persist)
                if slot % args.commit_every == args.commit_every - 1:
                    store.commit()
            else:
                store.save(ready.persist)
        if group:
            store.commit()
        cpu = time.process_time() - cpu
        store.close()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        mode = f"write + a COMMIT every {args.commit_every} slots" if group else "save per slot"
        print(f"{args.commands} commands, {per} a slot, {mode}: {cpu / args.commands * 1e6:.2f} µs"
              f" CPU per command, peak RSS {rss:.1f} MiB (load {os.getloadavg()[0]:.1f})")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
