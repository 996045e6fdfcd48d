"""An aged learner's start: the saved id filter against the full read of every key.

Issue 24: a learner's start read its whole request index (736,000 keys in
bench/long_life.py) to build its `IdFilter`. Now it loads the filter it
saved (`Persist.id_filter`, schema 7) and reads only the keys of the slots
after the one it covers. This script builds a learner store of
`--commands` commands in one process, as bench/learner_inprocess.py does (a
learner `Node` on a real `SqliteStorage`, `--per-slot` commands of 16 bytes
a slot, a COMMIT every 4 slots, default `Settings`: a filter saved every
65,536 ids or a quarter of those held), then times the start of a learner
on it (open the file, `load`, build the `Node`: the filter included),
`--starts` times each way, alternated:

- clean-stop: as after an agent's clean stop (`Learner.save_filter`): the
  saved filter covers every slot, no key is read;
- crash: the same file with the last filter saved on the way instead (as
  after a crash: the keys of the slots after it are read; a save is due
  every 65,536 ids or a quarter of those held, so this tail is at most
  that);
- full: the same file with no saved filter (the fallback, which is what
  every start did before).

    .venv/bin/python bench/learner_start.py [--commands 600000] [--per-slot 100] [--starts 5]

Prints the medians, the blob's size and slot, the keys read after it, and
what saving the blob costs (`to_bytes` and its write), per save and per
command applied.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time

from paxos_agents.core import Accepted, Ballot, Membership, Settings
from paxos_agents.core.commands import Command, Value
from paxos_agents.core.node import Node
from paxos_agents.runtime.storage import SqliteStorage

MEMBERS = Membership(proposers=("p1",), acceptors=("a1", "a2", "a3"), learners=("l1",))


def build(path: str, commands: int, per: int) -> tuple[int, float, tuple[int, bytes]]:
    """A learner store of `commands` commands, stopped cleanly; (saves on
    the way, seconds in their `to_bytes`, the last of them)."""
    store = SqliteStorage(path)
    node = Node("l1", MEMBERS, Settings(), store.load(), random.Random(0), store=store)
    ms, prefix = int(time.time() * 1000), random.getrandbits(48)
    saves, packing = 0, 0.0
    blobs: list[tuple[int, bytes]] = []
    learner = node.learner
    real = learner.requests.filter.to_bytes

    def timed(covers: int) -> bytes:
        nonlocal saves, packing
        start = time.perf_counter()
        blob = real(covers)
        packing += time.perf_counter() - start
        saves += 1
        blobs.append((covers, blob))
        return blob

    learner.requests.filter.to_bytes = timed  # type: ignore[method-assign]
    for slot in range(commands // per):
        n = slot * per
        value = Value.of([Command(f"{ms + (n + i) // 40:012x}{prefix:012x}{n + i:08x}",
                                  b"x" * 16, slot) for i in range(per)])
        for src in ("a1", "a2"):
            node.step(Accepted(src=src, dst="l1", ballot=Ballot(1, "p1"), slot=slot, value=value))
        store.write(node.ready().persist)
        if slot % 4 == 3:
            store.commit()
    store.commit()
    learner.requests.filter.to_bytes = real  # type: ignore[method-assign]
    learner.save_filter()  # what the agent does on a clean stop
    store.save(node.ready().persist)
    store.close()
    return saves, packing, blobs[-1]


def start(path: str) -> tuple[float, str, int]:
    """Seconds to open `path` and build a learner on it; how its filter was made."""
    begin = time.perf_counter()
    store = SqliteStorage(path)
    node = Node("l1", MEMBERS, Settings(), store.load(), random.Random(0), store=store)
    seconds = time.perf_counter() - begin
    how, count = node.learner.once.filter_start, node.learner.requests.filter.count
    store.close()
    return seconds, how, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=600_000)
    parser.add_argument("--per-slot", type=int, default=100)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="learner-start-")
    try:
        saved = os.path.join(folder, "saved.db")
        begin = time.perf_counter()
        saves, packing, last = build(saved, args.commands, args.per_slot)
        print(f"built {args.commands} commands ({args.per_slot} a slot) in"
              f" {time.perf_counter() - begin:.1f} s; {saves} filter saves,"
              f" to_bytes {packing / max(1, saves) * 1e3:.1f} ms each,"
              f" {packing / args.commands * 1e6:.3f} µs per command")
        conn = sqlite3.connect(saved)
        slot, size = conn.execute("SELECT slot, length(data) FROM id_filter").fetchone()
        conn.close()
        print(f"clean-stop: the saved filter covers slot {slot} (all), {size / 2**20:.2f} MiB;"
              f" crash: the last save on the way covers slot {last[0]}"
              f" ({(slot - last[0]) * args.per_slot} commands after it)")
        paths = {"clean-stop": saved}
        for name, sql, params in (("crash", "UPDATE id_filter SET slot = ?, data = ?", last),
                                  ("full", "DELETE FROM id_filter", ())):
            paths[name] = os.path.join(folder, f"{name}.db")
            shutil.copyfile(saved, paths[name])
            conn = sqlite3.connect(paths[name])
            conn.execute(sql, params)
            conn.commit()
            conn.close()
        times: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(args.starts):
            for name, path in paths.items():
                seconds, how, count = start(path)
                assert (how == "saved") == (name != "full"), how
                times[name].append(seconds)
        medians = {name: statistics.median(t) for name, t in times.items()}
        print(f"learner start, median of {args.starts} ({count} ids; load"
              f" {os.getloadavg()[0]:.1f}): " + ", ".join(
                  f"{name} {m:.3f} s ({m / medians['full']:.2f} of full)"
                  for name, m in medians.items()))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
