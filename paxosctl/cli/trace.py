"""`paxosctl trace SLOT`: the life of one slot as a sequence diagram.

Reads every agent's protocol records over the data path
(paxosctl.observe.records: the INFO "protocol" op, so a cluster spread
over hosts is read the same way; no supervisor or state-dir file beyond
the endpoints) and draws them with paxos_agents.trace (causal order by
link; clocks only label). `-o json` prints `SlotLife.to_json()` (its shape:
paxos_agents/trace/__init__.py).

- `--request-id ID`: the slot where that request was first decided,
  found in the decided log (the learners' request index, read as
  `paxosctl decided` reads it) from the lowest slot any ring still
  records: a slot older than that could not be drawn anyway.
- `--follow`: each slot decided from now on, drawn once its first
  learner's decision is a second old (the other learners' and the late
  messages have come in by then); Ctrl-C ends it with exit 0.

Exit codes: 2 for a bad argument (a slot that is not a number, SLOT
and --request-id both or neither); 1 when there is nothing to draw (no
ring holds the slot, the request id is not in the log the rings cover);
3 when no agent answers.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import deque
from typing import Annotated, Any, Iterable, Optional

import typer

from ..errors import NotHealthy, PaxosctlError, UsageError
from .common import FileOption, TextOutput, echo, echo_err, output_format

OUTPUTS = ("text", "json")


def trace(
    slot: Annotated[Optional[str], typer.Argument(
        help="The slot to draw.", show_default=False)] = None,
    file: FileOption = None,
    output: TextOutput = "text",
    request_id: Annotated[Optional[str], typer.Option(
        "--request-id", help="Draw the slot where this request id was decided.")] = None,
    follow: Annotated[bool, typer.Option(
        "--follow", help="Draw each slot decided from now on, until Ctrl-C.")] = False,
) -> None:
    """The life of one slot as a sequence diagram, from the agents' protocol
    records: one column per agent, arrows in causal order with the ballot,
    Promises with the vote they carried, a learner's decision as `*`;
    dropped, lost and resent messages and records gone from a ring marked."""
    from paxosctl.observe import records as observe

    if output not in OUTPUTS:
        output_format(output, OUTPUTS)  # raises the usual one-line error
    wanted = _slot_number(slot) if slot is not None else None
    chosen = [o for o, v in (("SLOT", slot), ("--request-id", request_id),
                             ("--follow", follow or None)) if v is not None]
    if len(chosen) != 1:
        raise UsageError(f"give one of SLOT, --request-id ID or --follow, not "
                         f"{' and '.join(chosen) if chosen else 'none'}")
    endpoints = observe.endpoints_of(file)
    if follow:
        _follow(observe, endpoints, output)
        return
    got = observe.collect(endpoints)
    answered = {n: p for n, p in got.items() if not p.error}
    if not answered:
        raise NotHealthy("no agent answered: " + "; ".join(f"{n}: {p.error}" for n, p in got.items()))
    for name, part in got.items():
        if part.error:
            echo_err(f"note: {name} did not answer ({part.error}); drawn without its records")
    records = [r for p in answered.values() for r in p.records]
    if request_id is not None:
        wanted = _slot_of_request(endpoints, file, request_id, records)
    life = _life(records, answered, wanted)
    if life is None:
        raise TraceNotFound(f"slot {wanted} is in no agent's protocol records "
                        f"({_held(records)}); records of older slots left the rings")
    _print(life, output, got)


class TraceNotFound(PaxosctlError):
    """Nothing to draw: no ring holds the slot, or the request id is not in
    the slots they cover."""

    exit_code = 1


def _slot_number(text: str) -> int:
    if not text.isdigit() or len(text) > 18:
        raise UsageError(f"SLOT: expected a slot number (0, 1, 2...), got {ascii(text)[:40]}")
    return int(text)


def _held(records: Iterable[dict[str, Any]]) -> str:
    """Which slots the rings hold own records of, for an error message."""
    slots = [r["slots"][0] for r in records
             if r["kind"] in ("accept", "accepted", "decide", "decided") and r.get("slots")]
    return f"they hold slots {min(slots)} to {max(slots)}" if slots else "they hold no slot"


def _life(records, parts, slot):
    from paxos_agents.trace import Ring, slot_life

    rings = {n: Ring(p.incarnation or 0, first=p.first or 1, missed=p.missed)
             for n, p in parts.items() if p is not None}
    return slot_life(records, slot, rings)


def _print(life, output: str, parts) -> None:
    from paxos_agents.trace.render import render, role_rank

    if output == "json":
        echo(json.dumps(life.to_json()))
        return
    width = shutil.get_terminal_size((80, 24)).columns
    # Every agent read gets a column, so the diagrams of --follow line up.
    echo("\n".join(render(life, width, order=sorted(parts, key=role_rank))))


def _slot_of_request(endpoints, file, request_id: str, records) -> int:
    """Where `request_id` was first decided, read from the decided log from
    the lowest slot the rings record (see the module doc)."""
    from paxosctl.client.datapath import DataClient
    from paxosctl.client.decidedlog import read_log_pages

    slots = [r["slots"][0] for r in records if r["kind"] == "decided" and r.get("slots")]
    if not slots:
        raise TraceNotFound(f"request id {request_id!r}: the rings hold no decided slot to look in")
    data = DataClient(endpoints, cluster_file=None if file is None else str(file))
    try:
        for start in (min(slots), None):  # None: from the first slot the learners retain
            try:
                for page in read_log_pages(data, start, limit=max(slots) - min(slots) + 1):
                    for entry in page:
                        if entry.request_id == request_id:
                            return entry.slot
                break
            except PaxosctlError:
                if start is None:
                    raise
    finally:
        data.close()
    raise TraceNotFound(f"request id {request_id!r} is not decided in slots {min(slots)} to "
                    f"{max(slots)}, the slots the agents' records hold")


#: How long after the first learner's decision a followed slot is drawn.
SETTLE_SECONDS = 1.0
#: Records kept while following (the rings' default size, for seven agents).
FOLLOW_KEEP = 50_000


def _follow(observe, endpoints, output: str) -> None:
    """Draw each newly decided slot (see the module doc); Ctrl-C: exit 0."""
    kept: deque[dict[str, Any]] = deque(maxlen=FOLLOW_KEEP)
    pending: dict[int, float] = {}
    drawn: set[int] = set()
    parts = {name: None for name in observe.agent_names(endpoints)}
    try:
        for record in observe.follow(endpoints, interval=0.3):
            kept.append(record)
            if record["kind"] == "decided" and record["slots"][0] not in drawn:
                pending.setdefault(record["slots"][0], time.monotonic())
            now = time.monotonic()
            for slot in sorted(s for s, t in pending.items() if now - t >= SETTLE_SECONDS):
                del pending[slot]
                drawn.add(slot)
                life = _life(list(kept), parts, slot)
                if life is not None:
                    _print(life, output, parts)
                    if output == "text":
                        echo("")
    except KeyboardInterrupt:
        raise typer.Exit(0) from None  # Ctrl-C is how a follow ends: not a failure
