"""Reading the decided log: its entries, and one cursor that pages through it.

A learner answers a `decided` query (paxos_agents.runtime.clients) with a
page of whole slots from a start slot: each command at the position where
its request id was first decided, a no-op slot as one entry. `LogCursor`
holds everything about walking those pages (where the next page starts,
how many entries are still wanted, when the walk is over, what to wait
for while following), so the threaded client, the asyncio client and
`paxosctl decided` share one walk (`read_log`, and `read_log_async` for
asyncio), a few lines around the cursor:

    cursor = LogCursor(start, limit=limit, follow=follow)
    while not cursor.done:
        if cursor.wait_for is not None:
            wait until the learner streamed slot cursor.wait_for
        yield from cursor.take(page(*cursor.query()))

Following needs no second path: the learner's SLOT stream (which the data
client subscribes to anyway) only says "slot N is applied now" (slots it
installed from a peer included), and the next page is asked for then. So
a followed entry is exactly what a later `decided` shows, and entries
that arrive while a page is in flight are picked up by the next page
(several slots per query under load). The cursor holds a position, not a
connection: when the data client moves to another learner (the one
followed was cut off, closed, or cut this client off), the walk goes on
from the same slot there, nothing twice and nothing missed.

Pages travel in the binary format (clientwire PAGE/PAGED): whole slots'
value bytes as the learner stores them, decoded here (`page_entries`);
the learner does no work per entry. While one page is handed out, the next
is already asked for, so the learner's read overlaps the caller's work.
"""

from __future__ import annotations

import base64
import binascii
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator, Mapping

from paxos_agents.core.commands import BatchError, Value
from paxos_agents.runtime.clientwire import Page, PAGE_NOT_RETAINED

from ..errors import ConnectionLost, OutcomeUnknown, RequestFailed

if TYPE_CHECKING:
    from .datapath import DataClient

__all__ = ["DecidedCommand", "LogCursor", "PAGE_SIZE", "page_entries", "read_log",
           "read_log_pages", "read_log_async"]

#: Entries asked for per page (the learner's limit is clientwire.MAX_PAGE_ENTRIES;
#: it also ends a page at about clientwire.PAGE_BYTES of values).
PAGE_SIZE = 20_000
#: Seconds a learner may take to answer one page.
PAGE_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class DecidedCommand:
    """One entry of the decided log: a command at the position where its
    request id was first decided, or a no-op slot.

    `slot` and `index` (the command's place in the slot's batch) make the
    position; a no-op slot has index 0 and `request_id` and `value` None.
    """

    slot: int
    index: int
    request_id: str | None
    value: bytes | None

    @property
    def position(self) -> str:
        """The position as text: "SLOT.INDEX"."""
        return f"{self.slot}.{self.index}"

    @property
    def noop(self) -> bool:
        """True for a slot decided with no command (a hole the leader filled)."""
        return self.request_id is None

    @property
    def config(self) -> tuple[int, tuple[str, ...]] | None:
        """(epoch, acceptors) if this is a configuration change the cluster
        decided (`paxosctl scale`, `replace`: a reserved request id), else None."""
        from paxos_agents.core.commands import Command
        from paxos_agents.core.configs import is_config_request, parse_config

        if self.request_id is None or self.value is None or not is_config_request(self.request_id):
            return None
        return parse_config(Command(self.request_id, self.value))

    def to_dict(self) -> dict[str, Any]:
        """As a dict: slot, index, request_id, value (bytes), noop, position,
        and for a configuration change `config` ({"epoch", "acceptors"})
        (`paxosctl decided -o json` shows this, with the value as text)."""
        out: dict[str, Any] = {"slot": self.slot, "index": self.index, "request_id": self.request_id,
               "value": self.value, "noop": self.noop, "position": self.position}
        config = self.config
        if config is not None:
            out["config"] = {"epoch": config[0], "acceptors": list(config[1])}
        return out

    @classmethod
    def from_wire(cls, entry: Mapping[str, Any]) -> DecidedCommand:
        """Parse one entry of a learner's page (its value is base64 on the wire)."""
        raw = entry.get("value")
        try:
            value = base64.b64decode(raw, validate=True) if isinstance(raw, str) else None
        except binascii.Error:
            raise RequestFailed({"error": "agent_error",
                                 "message": f"a learner sent a malformed value at slot "
                                            f"{entry.get('slot')}"}) from None
        rid = entry.get("request_id")
        return cls(int(entry["slot"]), int(entry["index"]),
                   rid if isinstance(rid, str) and not entry.get("noop") else None,
                   value if isinstance(rid, str) and not entry.get("noop") else None)


class LogCursor:
    """Where a walk through the decided log stands (see the module doc).

    `start`: the first slot (None: the first one the learner retains).
    `limit`: entries to yield at most (None: no limit). `follow`: once the
    retained log is read, keep waiting for new decisions instead of
    stopping. Not thread-safe: one walk, one owner.
    """

    def __init__(self, start: int | None = None, *, limit: int | None = None,
                 follow: bool = False, page_size: int = PAGE_SIZE) -> None:
        if start is not None and start < 0:
            raise ValueError(f"start must be a slot >= 0, not {start}")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        self.next_start = start
        self.remaining = limit
        self.follow = follow
        self.page_size = page_size
        #: While following and caught up: the slot the learner must stream
        #: before the next page can hold anything new.
        self.wait_for: int | None = None
        #: Nothing more to yield.
        self.done = limit == 0

    def query(self) -> tuple[int | None, int]:
        """(start, limit) of the next page to ask for."""
        size = self.page_size
        if self.remaining is not None:
            size = max(1, min(size, self.remaining))
        return self.next_start, size

    def take(self, reply: Page | Mapping[str, Any]) -> list[DecidedCommand]:
        """The entries of a page asked for with `query()` (a binary `Page`,
        or a JSON reply), trimmed to the limit; advances the cursor. Raises
        `RequestFailed` for an error reply: `fault` NOT_RETAINED (exit 1)
        when the start slot is below the log the learner retains (its first
        slot is `reply["log_start"]`).
        """
        if isinstance(reply, Page):
            if reply.status == PAGE_NOT_RETAINED:
                reply = {"error": f"slot {self.next_start} is no longer retained; the log "
                                  f"starts at slot {reply.log_start}",
                         "code": "not_retained", "log_start": reply.log_start}
            else:
                raw: list[Any] = page_entries(reply)
                # A slot can give no entry (each command first decided earlier):
                # the next page starts after the page's last slot all the same.
                last = reply.slots[-1].slot if reply.slots else None
                reply = {"decided_up_to": reply.decided_up_to, "log_start": reply.log_start}
        else:
            raw = reply.get("entries") or []
            last = None
        if "error" in reply:
            raise RequestFailed({"error": reply.get("code") or "agent_error",
                                 "message": reply["error"], "log_start": reply.get("log_start")})
        asked = self.query()[1]
        entries = [e if isinstance(e, DecidedCommand) else DecidedCommand.from_wire(e)
                   for e in raw]
        self.wait_for = None
        if last is None and entries:
            last = entries[-1].slot
        if last is not None:
            # Pages hold whole slots, so the next one starts after the last slot.
            self.next_start = last + 1
        elif self.next_start is None and isinstance(reply.get("log_start"), int):
            self.next_start = reply["log_start"]
        if self.remaining is not None:
            entries = entries[:self.remaining]
            self.remaining -= len(entries)
            if self.remaining == 0:
                self.done = True
        known = reply.get("decided_up_to")
        # Caught up with the learner: a page short of what was asked for that
        # reaches its applied slot (a page also ends early at its bytes bound).
        caught_up = len(raw) < asked and not (
            last is not None and isinstance(known, int) and last < known)
        if caught_up and not self.done:
            if not self.follow:
                self.done = True
            else:
                after = self.next_start or 0
                if last is None:
                    # Nothing new at this learner: wait past what it has
                    # (a learner just failed over to may be behind the slots
                    # streamed before; asking again at once would spin).
                    if isinstance(known, int):
                        after = max(after, known + 1)
                self.wait_for = after
        return entries


def page_entries(page: Page) -> list[DecidedCommand]:
    """The entries of a binary page: each slot's commands but those the
    learner marked skipped (first decided elsewhere), a no-op slot as one
    entry. `RequestFailed` if a slot's value is not a well-formed batch."""
    out: list[DecidedCommand] = []
    append = out.append
    for slot, skipped, data in page.slots:
        if not data:
            append(DecidedCommand(slot, 0, None, None))
            continue
        value = Value.from_bytes(data)
        try:
            ids = value.request_ids()
        except BatchError:
            raise RequestFailed({"error": "agent_error",
                                 "message": f"a learner sent a malformed value at slot {slot}"}
                                ) from None
        payload = value.payload
        skip = frozenset(skipped)
        for index, rid in enumerate(ids):
            if index not in skip:
                append(DecidedCommand(slot, index, rid, payload(index)))
    return out


def read_log_pages(data: DataClient, start: int | None = None, *, limit: int | None = None,
                   follow: bool = False,
                   page_size: int = PAGE_SIZE) -> Iterator[list[DecidedCommand]]:
    """`read_log` a page at a time: each non-empty list of entries as it
    arrives (for writers that print a page in one write)."""
    cursor = LogCursor(start, limit=limit, follow=follow, page_size=page_size)
    ahead: tuple[tuple[int | None, int], Future[Any]] | None = None
    while not cursor.done:
        if cursor.wait_for is not None:
            data.streamed(cursor.wait_for).result()
        query = cursor.query()
        reply = _page(data, *query, ahead[1] if ahead is not None and ahead[0] == query else None)
        ahead = None
        entries = cursor.take(reply)
        if not cursor.done and cursor.wait_for is None:
            # Ask for the next page now: the learner reads it while this one is used.
            ahead = (cursor.query(), data.read_page(*cursor.query()))
        if entries:
            yield entries


def read_log(data: DataClient, start: int | None = None, *, limit: int | None = None,
             follow: bool = False, page_size: int = PAGE_SIZE) -> Iterator[DecidedCommand]:
    """The decided log from `start`, read through `data` a page at a time
    (see `paxosctl.Client.iter_decided` for the contract)."""
    for entries in read_log_pages(data, start, limit=limit, follow=follow, page_size=page_size):
        yield from entries


def _page(data: DataClient, start: int | None, limit: int,
          asked: Future[Any] | None = None) -> Any:
    """One page from the learner (`asked`: its request, if already sent);
    asked again (of the next learner the data client connects to) when the
    connection to one is lost meanwhile."""
    deadline = time.monotonic() + PAGE_TIMEOUT
    while True:
        try:
            future = asked if asked is not None else data.read_page(start, limit)
            asked = None
            return future.result(max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            raise OutcomeUnknown(f"no learner answered within {PAGE_TIMEOUT:g}s") from None
        except ConnectionLost:
            if time.monotonic() >= deadline:
                raise


async def read_log_async(data: DataClient, start: int | None = None, *,
                         limit: int | None = None, follow: bool = False,
                         page_size: int = PAGE_SIZE) -> AsyncIterator[DecidedCommand]:
    """`read_log` for asyncio: the same cursor, awaiting instead of blocking."""
    import asyncio  # here: the CLI and the threaded client never pay for it

    loop = asyncio.get_running_loop()
    cursor = LogCursor(start, limit=limit, follow=follow, page_size=page_size)
    while not cursor.done:
        if cursor.wait_for is not None:
            await asyncio.wrap_future(data.streamed(cursor.wait_for))
        deadline = loop.time() + PAGE_TIMEOUT
        while True:
            try:
                reply = await asyncio.wait_for(asyncio.wrap_future(
                    data.read_page(*cursor.query())), max(0.0, deadline - loop.time()))
                break
            except TimeoutError:
                raise OutcomeUnknown(f"no learner answered within {PAGE_TIMEOUT:g}s") from None
            except ConnectionLost:
                if loop.time() >= deadline:
                    raise
        for entry in cursor.take(reply):
            yield entry
