"""A learner's exactly-once rule: each request id is applied once.

The learner (learner.py) finds out which value each slot decided and hands
the slots here in order. For each command of a slot this says whether it
is applied (its request id is new), answered with the slot where its id
was first decided (a client retry, a re-proposal after a leader change),
or refused as expired; it keeps the request index (requests.py) and hands
the index's id filter out to be saved.

Expiry is the retention rule of learner.py's module docstring: a command
stamped `issued` is judged by the index at slot t only if `issued + 1 >=
t - R` (R = `retain_slots`), else refused. The stamp is the client's word,
so it decides only expiry: whether an id was applied before is always
asked of the index, never judged from the stamp (plants.py's
`trust-stamp` shows why).

A slot copied from a peer (state transfer, `install`) takes the peer's
outcomes as they are: judged again here, where the index may reach less
far back, they could differ, and the logs would diverge.

Planted bugs (plants.py) subclass this class and override one hook:
`applied_before` or `expired_at`.
"""

from __future__ import annotations

from .commands import Command, Value
from .outbox import Outbox
from .ready import EXPIRED, LogEntry, Record
from .requests import RequestIndex, start_filter
from .settings import Settings
from .store import DurableLog


class ExactlyOnce:
    """The outcome of each decided command, and the request index behind it."""

    def __init__(self, settings: Settings, record: Record, store: DurableLog, out: Outbox) -> None:
        self.settings = settings
        self._out = out
        #: How the filter was made at start: "saved", or why it was read in full.
        id_filter, self.filter_start = start_filter(store, record.applied, record.log_start)
        #: request id -> first slot: a filter of every retained id's key, the
        #: ids not yet durable in memory, the rest in the store (read where
        #: the filter says "maybe").
        self.requests = RequestIndex(store, id_filter=id_filter)
        #: Commands refused as expired, and commands applied (or installed),
        #: by this incarnation.
        self.expired = 0
        self.applied_commands = 0
        #: Id filters handed out to be saved by this incarnation.
        self.filters_saved = 0

    # ------------------------------------------------------------- outcomes

    def apply(self, slot: int, value: Value) -> list[int]:
        """The outcome of each command of `slot` (decided `value`), in order:
        `slot` (applied now), the slot where its request id was first
        decided, or EXPIRED; the index rows of the new ids go in the outbox."""
        out = self._out
        rids = value.request_ids()  # no Command objects on the usual path
        issued = value.lowest_issued()
        # Never from the stamp: only expiry depends on it (requests.py).
        firsts = self.applied_before(rids, issued)
        if not firsts and len(set(rids)) == len(rids) and not self.expired_at(issued, slot):
            # The common case: every command is new here.
            keys = self.requests.add_all(rids, slot)
            out.requests.extend(zip(rids, [slot] * len(rids)))
            out.request_keys.append((slot, keys, None))  # at positions 0, 1, ...
            self.applied_commands += len(rids)
            return [slot] * len(rids)
        return self._classify(slot, value.commands, firsts)

    def applied_before(self, request_ids: list[str], issued: int) -> dict[str, int]:
        """The first slots of those of `request_ids` applied before: the
        index's word alone. `issued` (the commands' lowest stamp) is the
        client's word and is not used here (see requests.py)."""
        return self.requests.lookup(request_ids)

    def expired_at(self, issued: int, slot: int) -> bool:
        """Whether a command stamped `issued` is too old to judge at `slot`:
        its request id might have been decided below the index's window
        (the module docstring). The same answer on every learner."""
        retain = self.settings.retain_slots
        return bool(retain) and issued + 1 < slot - retain

    def _classify(self, slot: int, commands: tuple[Command, ...],
                  firsts: dict[str, int]) -> list[int]:
        """Apply `slot`'s commands one by one: for each, where its request id
        was first decided (`slot`: applied now), or EXPIRED (refused)."""
        out = self._out
        outcome: list[int] = []
        keys: list[int] = []
        positions: list[int] = []
        for pos, command in enumerate(commands):
            rid = command.request_id
            first = firsts.get(rid)
            if first is None:
                if self.expired_at(command.issued, slot):
                    # Issued before the window our index covers: it may have
                    # been applied in a slot we no longer have. Refuse it.
                    self.expired += 1
                    outcome.append(EXPIRED)
                    continue
                first = firsts[rid] = slot
                self._index(rid, slot, pos, keys, positions)
                self.applied_commands += 1
            # Decided again (first != slot): answered with the first slot, applied nothing.
            outcome.append(first)
        if keys:
            out.request_keys.append((slot, keys, positions))
        return outcome

    def install(self, slot: int, value: Value, firsts: dict[str, int]) -> None:
        """Take `slot` (decided `value`) as a peer applied it (state transfer):
        `firsts` is each request id's first slot there, absent for a command
        the peer refused as expired. Indexes the ids first applied here and
        logs the commands applied (`out.logged`)."""
        out = self._out
        if not value:
            out.logged.append(LogEntry(slot, None, None, True))
        applied_here: set[str] = set()  # an id twice in one slot is applied once
        keys: list[int] = []
        positions: list[int] = []
        for pos, command in enumerate(value):
            rid = command.request_id
            first = firsts.get(rid)
            if first is None:
                self.expired += 1
                continue  # refused as expired there: not applied, not indexed
            if first == slot and rid not in applied_here:
                applied_here.add(rid)
                # Indexed where it was first applied, with its position
                # there; a duplicate of an earlier slot was indexed when
                # that slot was installed or applied (or is below our
                # log, where nothing can confirm it).
                self._index(rid, first, pos, keys, positions)
                # Counted as if applied here, so that a learner that
                # copied part of its log still counts every command it
                # holds (the decided-commands metric takes the largest).
                self.applied_commands += 1
                out.logged.append(LogEntry(slot, command.payload, rid, False))
        if keys:
            out.request_keys.append((slot, keys, positions))

    def _index(self, rid: str, first: int, pos: int, keys: list[int], positions: list[int]) -> None:
        """Index `rid` as first decided at `first` (at `pos` in its slot), its
        row in the outbox and its key in `keys`, unless it is indexed already
        (pending: an id twice in one slot)."""
        key = self.requests.add(rid, first)
        if key is not None:
            self._out.requests.append((rid, first))
            keys.append(key)
            positions.append(pos)

    # ----------------------------------------------------------- the filter

    def save_filter_if_due(self, covers: int) -> None:
        """Hand the id filter to the runtime with this `Ready` once enough ids
        were added since it was last saved: `Settings.filter_save_ids`, or a
        quarter of those it holds if more (so the blob, 2-4 bytes an id, costs
        at most about 16 bytes of writing per id applied: an eighth cost
        0.3 µs of CPU per command at 600,000, a quarter nothing measurable;
        BENCHMARKS.md, "Issue 24: the aged learner's start"). `covers` is the
        applied prefix: every id first applied up to it is in the filter, and
        its index rows are in this `Ready` or an earlier one (requests.py)."""
        id_filter = self.requests.filter
        added = id_filter.added
        if added < self.settings.filter_save_ids or added < id_filter.count >> 2:
            return
        self._hand_filter(covers)

    def save_filter(self, covers: int) -> None:
        """Hand the id filter out to be saved with the next `Ready` if ids were
        added since it last was (an agent's clean stop: its next start then
        reads no key at all)."""
        if self.requests.filter.added:
            self._hand_filter(covers)

    def _hand_filter(self, covers: int) -> None:
        id_filter = self.requests.filter
        self._out.id_filter = (covers, id_filter.to_bytes(covers))
        id_filter.added = 0
        self.filters_saved += 1
