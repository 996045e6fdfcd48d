"""Time the schema 5 -> 6 migration (the learner's request index re-keyed) on a big store.

Issue 24: the migration must finish within the start timeout (the
examples' `start_timeout = "10s"`) on a learner store of 600,000 commands.
This script has the previous release write a schema-5 learner store (its
own `SqliteStorage.save`, run by that checkout's interpreter), then opens
a copy with this checkout's code, which migrates it, and reports the
seconds, the progress lines and a check that every request id is found
at its first slot afterwards.

    python bench/migrate_index.py --base /work/wt-c77 [--commands 600000] [--per-slot 100]

`--base` is a checkout of the previous release (schema 5) with its venv
in `.venv` (or give its interpreter with `--base-python`). A second run
reuses the store it built (kept beside the temp dir with --keep).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Run by the previous release: a learner store of `commands` commands,
#: `per_slot` a slot, ids of the client's layout (milliseconds first; a
#: slot's ids share a few milliseconds, as a loaded leader batches them),
#: saved 64 slots a transaction as its agent would under load.
BUILD = r"""
import os, sys
from paxos_agents.core.commands import Command, Value
from paxos_agents.core.ready import Persist
from paxos_agents.runtime.storage import SqliteStorage, SCHEMA_VERSION
assert SCHEMA_VERSION == 5, f"--base must be schema 5, it is {SCHEMA_VERSION}"
path, commands, per_slot = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ms, prefix = 0x0193_0000_0000, int.from_bytes(os.urandom(6), "big")
payload = b"x" * 16
store = SqliteStorage(path)
slot = n = 0
while n < commands:
    decisions, requests = [], []
    for _ in range(64):
        if n >= commands:
            break
        ids = [f"{ms + (n + i) // 40:012x}{prefix:012x}{(n + i) & 0xFFFFFFFF:08x}"
               for i in range(min(per_slot, commands - n))]
        decisions.append((slot, Value.of([Command(r, payload, slot - 1) for r in ids])))
        requests.extend((r, slot) for r in ids)
        n += len(ids)
        slot += 1
    store.save(Persist(decisions=tuple(decisions), applied=slot - 1, requests=tuple(requests)))
store.close()
print(slot)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, help="a checkout of the previous release (schema 5)")
    parser.add_argument("--base-python", help="its interpreter (default: BASE/.venv/bin/python)")
    parser.add_argument("--commands", type=int, default=600_000)
    parser.add_argument("--per-slot", type=int, default=100)
    parser.add_argument("--store", type=Path, help="a schema-5 store built before (skips the build)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    if args.store is None and args.base is None and args.base_python is None:
        parser.error("give --base (or --base-python), or --store")
    work = Path(tempfile.mkdtemp(prefix="migrate-index-"))
    try:
        v5 = args.store
        if v5 is None:
            v5 = work / "v5.db"
            python = args.base_python or str(args.base / ".venv" / "bin" / "python")
            started = time.monotonic()
            done = subprocess.run([python, "-c", BUILD, str(v5), str(args.commands),
                                   str(args.per_slot)], cwd=args.base or None,
                                  capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            print(f"built a schema-5 store: {args.commands} commands in {done.stdout.strip()}"
                  f" slots, {v5.stat().st_size / 2**20:.1f} MiB,"
                  f" {time.monotonic() - started:.1f} s")
        copy = work / "v6.db"
        shutil.copyfile(v5, copy)
        for suffix in ("-wal", "-shm"):
            if Path(f"{v5}{suffix}").exists():
                shutil.copyfile(f"{v5}{suffix}", f"{copy}{suffix}")
        import sqlite3
        with sqlite3.connect(copy) as conn:
            sample = conn.execute("SELECT request_id, slot FROM requests"
                                  " ORDER BY random() LIMIT 2000").fetchall()
        logging.basicConfig(level=logging.INFO, format="  %(relativeCreated)7.0f ms  %(message)s")
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from paxos_agents.runtime.storage import SqliteStorage
        cpu, started = time.process_time(), time.monotonic()
        store = SqliteStorage(copy)
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu
        try:
            found = store.first_slots([r for r, _ in sample])
            assert found == dict(sample), "an id is not found at its first slot"
            print(f"migrated to schema 6 in {seconds:.2f} s wall, {cpu:.2f} s CPU;"
                  f" {len(sample)} sampled ids all found at their first slot;"
                  f" file {copy.stat().st_size / 2**20:.1f} MiB; load {os.getloadavg()[0]:.1f}")
        finally:
            store.close()
        return 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
