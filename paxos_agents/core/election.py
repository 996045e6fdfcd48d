"""Phase 1 of one proposer: its ballot, from which slot, whom it asked, what they promised.

Paxos Made Simple, section 2.2, run once for every slot from `first_slot`
(section 3), across configurations (configs.py, the alpha approach;
Lamport, Malkhi, Zhou, "Reconfiguring a State Machine", 2010, section 4):

- a new ballot takes a round above every one this proposer used or saw,
  persisted (`Outbox.round`) before its first Prepare leaves: the Prepares
  go to `send_after_persist`, so a restarted proposer never reuses a ballot;
- the Prepare goes to the members of every known configuration governing a
  slot >= `first_slot`, each asked once per ballot (a second Prepare under
  one ballot is refused), from that configuration's first slot if later;
- phase 1 is won when a majority of *each* of those configurations
  promised (`prepared`), not of the newest one only: the slots before a
  change belong to the old configuration;
- per slot, the vote to propose again is the highest ballot reported by
  config(slot)'s members (`adopted`, P2c);
- a leader that learns a new configuration asks its members under the same
  ballot and sends no Accept of its slots until a majority of it promised
  (`usable`); `waiting_since` says since when it waits (the proposer runs
  phase 1 again under a new ballot if that takes `election_ticks`).

The history it reads belongs to the proposer's `Reconfiguration`; it is
passed in, never kept here.
"""

from __future__ import annotations

from .configs import Config, History
from .ids import ZERO_BALLOT, Ballot
from .messages import Prepare, Promise, Vote
from .outbox import Outbox
from .promises import Promises


class Election:
    """One proposer's phase 1 state; a new ballot starts it afresh (`start`)."""

    __slots__ = ("node_id", "_out", "round", "ballot", "first_slot", "promises", "_asked",
                 "waiting_since")

    def __init__(self, node_id: str, out: Outbox, round: int) -> None:
        """`round`: the highest round this proposer persisted (`Record.round`)."""
        self.node_id = node_id
        self._out = out
        #: Highest round this proposer has used (persisted before use).
        self.round = round
        self.ballot: Ballot = ZERO_BALLOT
        #: Phase 1 covers every slot from this one.
        self.first_slot = 0
        self.promises = Promises(0)
        #: Acceptors sent the current ballot's Prepare.
        self._asked: set[str] = set()
        #: When, as leader, we began waiting for new members' promises (None: not waiting).
        self.waiting_since: int | None = None

    def start(self, first_slot: int, seen: Ballot) -> None:
        """A new ballot above ours and `seen` (the highest any leader or nack
        showed us), its round persisted with the next `Ready`; nobody asked yet.
        Call `prepare_missing` to send its Prepares."""
        self.round = max(self.round, seen.round, self.ballot.round) + 1
        self._out.round = self.round
        self.ballot = Ballot(self.round, self.node_id)
        self.first_slot = first_slot
        self.promises = Promises(first_slot)
        self._asked = set()
        self.waiting_since = None

    def stand_down(self) -> None:
        """We no longer run or lead: forget the promises; wait for nobody."""
        self.promises = Promises(0)
        self.waiting_since = None

    def prepare_missing(self, history: History, now: int, leader: bool) -> None:
        """Send our ballot's Prepare to every member of a configuration of
        `history` governing a slot >= `first_slot` not asked yet. A leader
        asking new members starts waiting for them (`waiting_since`)."""
        for config in history.configs_from(self.first_slot):
            first = max(self.first_slot, config.first_slot)
            for acceptor in config.acceptors:
                if acceptor not in self._asked:
                    self._asked.add(acceptor)
                    if leader and self.waiting_since is None:
                        self.waiting_since = now
                    self._out.send_after_persist.append(Prepare(
                        src=self.node_id, dst=acceptor, ballot=self.ballot, first_slot=first))

    def add(self, m: Promise) -> None:
        """Note a promise for our ballot (the caller checked `m.ballot`)."""
        self.promises.add(m)

    def prepared(self, history: History) -> bool:
        """Whether a majority of each configuration of `history` governing a
        slot >= `first_slot` promised our ballot."""
        return all(self.promises.covers(c) for c in history.configs_from(self.first_slot))

    def usable(self, config: Config, history: History, now: int) -> bool:
        """Whether a leader may send Accepts of `config`'s slots: a majority of
        it promised our ballot. If not, its members are asked first (those
        asked already, whose promises were lost, are not asked again)."""
        if self.promises.covers(config):
            return True
        self.prepare_missing(history, now, leader=True)
        if self.waiting_since is None:
            self.waiting_since = now
        return False

    def adopted(self, slot: int, config: Config) -> Vote | None:
        """The vote to propose again in `slot`: the highest ballot reported by
        `config`'s members (P2c)."""
        return self.promises.highest(slot, config)
