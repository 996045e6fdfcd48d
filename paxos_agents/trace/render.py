"""Draw a `SlotLife` as a text sequence diagram. Pure: returns lines.

One column per agent (a vertical lifeline `|`), one row per step in causal
order, the step's label on the right of the lifelines:

      p0    p1    a0    a1    a2    l0    l1
    1 |-----------+---->|     |     |     |   Accept 1.p0 s3 9f3a01c2
    2 |     |     |<----|     |     |     |   Accepted 1.p0 s3 9f3a01c2

A Promise shows the vote it carried for the slot: `[s3 1.p0 9f3a01c2]`
(slot, ballot, value digest), or `[s3 no vote]`.

`>`/`<` is the arrowhead at the receiver; `x` instead of it: the message
never arrived (dropped by chaos, lost, or not in the receiver's ring; the
label says which); `?` at the sender's end: the receipt is there but its
send left the sender's ring; `*` on a column: that learner decided the
slot. Names that do not fit their column are shortened (`proposer-0` ->
`p0`, in ballots too) and a legend line gives the full names. The columns shrink to fit
`width` (80 fits seven agents) and grow on wider terminals, up to the
full names.
"""

from __future__ import annotations

import re
from typing import Iterable

from .model import SlotLife, Step

#: Characters left of the lifelines: the step number.
NUMBER = 4
#: The label area the columns leave at least (when they can).
MIN_LABEL = 30
#: Column order by role when the caller gives none.
ROLE_ORDER = ("proposer", "replica", "acceptor", "learner")


def role_rank(name: str) -> tuple[int, str]:
    for i, role in enumerate(ROLE_ORDER):
        if name.startswith(role):
            return i, name
    return len(ROLE_ORDER), name


def columns(life: SlotLife, order: Iterable[str] = ()) -> list[str]:
    """The agents to draw, left to right: `order` first, then the others by role."""
    cols = list(dict.fromkeys(order))
    return cols + sorted((a for a in life.agents if a not in cols), key=role_rank)


def short_names(names: list[str], room: int) -> dict[str, str]:
    """Each name, or when one does not fit in `room` characters, each shortened
    to its first letter and its trailing digits (`acceptor-2` -> `a2`), made unique."""
    if all(len(n) <= room for n in names):
        return {n: n for n in names}
    out: dict[str, str] = {}
    for n in names:
        digits = re.search(r"(\d+)$", n)
        short = (n[0] + (digits.group(1) if digits else "")) if n else "?"
        if short in out.values():
            short = f"{short}{sum(1 for v in out.values() if v.startswith(short))}"
        out[n] = short[:max(room, 1)]
    return out


def short_ballot(ballot: str | None, names: dict[str, str]) -> str | None:
    """`3.proposer-1` as `3.p1` when the columns show `proposer-1` as `p1`."""
    if not ballot:
        return ballot
    round_, _, node = ballot.partition(".")
    return f"{round_}.{names.get(node, node)}"


def label(step: Step, slot: int, names: dict[str, str] | None = None) -> str:
    """The text of one step: kind, ballot, slot and value, and what went wrong;
    ballots name their proposer as the columns do (`names`)."""
    names = names or {}
    kind, ballot = step.kind, short_ballot(step.ballot, names)
    value = step.field("value") or "?"  # named by no record left (trace.model: Values)
    first, last = step.slots or (slot, slot)  # a kind below always carries its slots
    if kind == "prepare":
        text = f"Prepare {ballot} s>={first}"
    elif kind == "promise":
        votes = step.field("votes") or []
        vote = next((v for v in votes if v[0] == slot), None)
        if vote is not None:
            text = f"Promise {ballot} [s{vote[0]} {short_ballot(vote[1], names)} {vote[2]}]"
        else:
            text = f"Promise {ballot} [s{slot} no vote]"
    elif kind == "nack":
        text = f"Nack {ballot} promised {short_ballot(step.field('promised'), names)}"
    elif kind in ("accept", "accepted"):
        text = f"{kind.capitalize()} {ballot} s{first} {value}"
    elif kind == "decide":
        text = f"Decide s{first} {value}"
    elif kind == "retry":
        text = f"Retry s{first}"
    elif kind == "chunk":
        text = f"Chunk s{first}-{last}"
    elif kind == "decided":
        text = f"DECIDED s{first} {value}"
    else:
        text = kind
    if step.src == step.dst:
        text += " (self)"
    if step.resend:
        text += " (resend)"
    if step.duplicates:
        text += f" ({step.duplicates + 1}x)"
    if step.status == "dropped":
        text += f" DROPPED ({step.field('dropped')})"
    elif step.status == "lost":
        text += " LOST"
    elif step.status == "not-seen":
        text += " (receipt not in ring)"
    elif step.status == "send-missing":
        text += " (send not in ring)"
    return text


def render(life: SlotLife, width: int = 80, order: Iterable[str] = ()) -> list[str]:
    """The diagram of `life` as lines of at most `width` characters (when the
    agents fit at all: three characters a column)."""
    cols = columns(life, order)
    n = max(len(cols), 1)
    longest = max((len(c) for c in cols), default=1)
    col = max(3, min(longest + 2, (width - NUMBER - MIN_LABEL) // n))
    names = short_names(cols, col - 1)
    x = {a: NUMBER + col * i + col // 2 for i, a in enumerate(cols)}
    body = NUMBER + col * n
    room = max(width - body - 2, 8)

    def blank() -> list[str]:
        line = [" "] * body
        for pos in x.values():
            line[pos] = "|"
        return line

    decided = life.decided
    if decided:
        values = sorted({v or "?" for v in decided.values()})  # "?": no record names it
        who = ", ".join(names.get(a, a) for a in cols if a in decided)
        title = f"slot {life.slot}: decided {' / '.join(values)} by {who}"
    else:
        title = f"slot {life.slot}: no learner's decision in these records"
    out = [title[:width]]
    if any(names[a] != a for a in cols):
        legend, entry = [], "  "
        for a in cols:
            item = f"{names[a]}={a} "
            if len(entry) + len(item) > width:
                legend.append(entry.rstrip())
                entry = "  "
            entry += item
        out += legend + [entry.rstrip()]
    head = [" "] * body
    for a in cols:
        name = names[a]
        start = max(0, x[a] - (len(name) - 1) // 2)
        head[start:start + len(name)] = name
    out.append("".join(head).rstrip())
    for i, step in enumerate(life.steps, 1):
        line = blank()
        line[:NUMBER] = f"{i:>{NUMBER - 1}} "
        src, dst = x.get(step.src), x.get(step.dst) if step.dst else None
        if step.kind == "decided" and src is not None:
            line[src] = "*"
        elif src is not None and dst is not None and src != dst:
            lo, hi = sorted((src, dst))
            for pos in range(lo + 1, hi):
                line[pos] = "-"
            arrived = step.status in ("delivered", "send-missing")
            if dst > src:
                line[dst - 1] = ">" if arrived else "x"
            else:
                line[dst + 1] = "<" if arrived else "x"
            if step.status == "send-missing":
                line[src + (1 if dst > src else -1)] = "?"
        elif src is not None and src == dst:
            line[src + 1] = "<" if step.status == "delivered" else "x"
        text = label(step, life.slot, names)
        if len(text) > room:
            text = text[:room - 1] + "~"
        out.append(("".join(line) + "  " + text).rstrip()[:width])
    for gap in life.gaps:
        out.append(f"! {gap.agent}: {gap.reason} (it keeps records from seq {gap.first})"[:width])
    return out
