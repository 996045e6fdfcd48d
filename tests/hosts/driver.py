"""A client's load with its history, run on a host of its own (not a test module).

    python driver.py MANIFEST OUT --concurrency 8 --stop-file STOP [--timeout 10]

Keeps `concurrency` proposals in flight against the agents where MANIFEST
places them (no supervisor: `paxosctl.endpoints.from_manifest`), each value
unique, until the file STOP appears; then waits for what is in flight and
writes OUT, a JSON list of the operations as `paxosctl.tools.history`
takes them. While it runs, OUT.acks gets one line per decided command,
"DECIDED SLOT INVOKED" (monotonic times), flushed at once: the test reads when decisions came
(CLOCK_MONOTONIC is one clock for every process of the machine, namespaces
included). Exits 0, or 2 with one line if the manifest places no agents.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque
from pathlib import Path

from paxosctl.client.datapath import DataClient
from paxosctl.client.ids import new_request_id
from paxosctl.endpoints import from_manifest
from paxosctl.errors import PaxosctlError
from paxosctl.manifest import load_manifest


def settled(op: dict, future, acks) -> None:
    """Note `op`'s outcome: its decision (time, slot, index) or its error."""
    error = future.exception()
    if error is not None:
        op["error"] = f"{type(error).__name__}: {error}"[:200]
        return
    decision = future.result()
    op.update(acked=time.monotonic(), slot=decision.slot, index=decision.index)
    acks.write(f"{op['acked']:.6f} {decision.slot} {op['invoked']:.6f}\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("manifest")
    parser.add_argument("out")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    manifest = load_manifest(args.manifest)
    endpoints = from_manifest(manifest, args.manifest)
    if endpoints is None:
        print(f"{args.manifest} places no agents over TLS", file=sys.stderr)
        return 2
    stop = Path(args.stop_file)
    ops: list[dict] = []
    inflight: deque = deque()
    with DataClient(endpoints, cluster_file=args.manifest) as client, \
            open(args.out + ".acks", "w", buffering=1) as acks:
        while inflight or not stop.exists():
            while len(inflight) < args.concurrency and not stop.exists():
                rid = new_request_id()
                op = {"request_id": rid, "value": f"v-{rid}", "invoked": time.monotonic(),
                      "acked": None, "slot": None, "index": None, "error": None}
                future = client.propose_async(op["value"].encode(), request_id=rid,
                                              fresh=True, timeout=args.timeout)
                # Noted when decided (on the client's I/O thread, the only
                # writer of OUT.acks), not when this loop collects it.
                future.add_done_callback(lambda f, op=op: settled(op, f, acks))
                ops.append(op)
                inflight.append(future)
            try:
                inflight.popleft().result(args.timeout + 30)
            except PaxosctlError:
                pass
        # A future's result is out before its callbacks ran: wait for the last notes.
        deadline = time.monotonic() + 5
        while any(op["acked"] is None and op["error"] is None for op in ops) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(ops, f)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
