"""Storage schema 4: the configuration history (`Persist.configs`) is durable.

A node that forgot its history after a restart would judge slots of a
reconfigured cluster by its manifest's acceptors: quorums that need not
intersect the real ones. These tests write through the storage API and the
node, close the file, reopen it and read it back.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from paxos_agents.core.commands import NOOP, Command, Value
from paxos_agents.core.settings import Membership, Settings
from paxos_agents.core.configs import History, config_command
from paxos_agents.core.ids import Ballot
from paxos_agents.core.messages import Accept, Accepted, Prepare, Promise, Vote
from paxos_agents.core.node import Node
from paxos_agents.core.ready import Persist, Ready
from paxos_agents.runtime.storage import MemoryStorage, SqliteStorage, Storage, StorageError

ALPHA = 4


def history_with_epoch_1(acceptors: tuple[str, ...] = ("a1", "a3", "a4")) -> History:
    """Epoch 0 = a0 a1 a2; epoch 1 (`acceptors`) decided in slot 1, governing slots >= 1 + ALPHA."""
    history = History.initial(ALPHA, ("a0", "a1", "a2"))
    for slot, value in enumerate([NOOP, Value.of([config_command(1, acceptors)]), NOOP]):
        history = history.fed(slot, value)
    assert [(c.epoch, c.first_slot) for c in history.configs] == [(0, 0), (1, 1 + ALPHA)]
    return history


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path):
    s = MemoryStorage() if request.param == "memory" else SqliteStorage(tmp_path / "state.db")
    yield s
    s.close()


def test_history_saved_with_applied_comes_back_after_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    history = history_with_epoch_1()
    with SqliteStorage(path) as store:
        assert store.load().configs is None  # a new store has none
        store.save(Persist(decisions=((0, NOOP), (1, NOOP), (2, NOOP)), applied=2,
                           configs=history.to_json()))
    with SqliteStorage(path) as store:
        record = store.load()
        assert record.applied == 2
        assert History.from_json(record.configs) == history
        # A later save replaces it (a second change, fed further), and one without leaves it.
        later = history.fed(3, NOOP)
        store.save(Persist(configs=later.to_json()))
        store.save(Persist(round=5))
    with SqliteStorage(path) as store:
        assert History.from_json(store.load().configs) == later


def test_history_is_one_json_text_in_meta(tmp_path: Path) -> None:
    """The documented column: meta key "configs", compact JSON, not interpreted."""
    path = tmp_path / "state.db"
    with SqliteStorage(path) as store:
        store.save(Persist(configs=history_with_epoch_1().to_json()))
    conn = sqlite3.connect(path)
    try:
        (text, kind), = conn.execute(
            "SELECT value, typeof(value) FROM meta WHERE key = 'configs'").fetchall()
    finally:
        conn.close()
    assert kind == "text"
    assert text == '[1,4,3,[[0,0,["a0","a1","a2"]],[1,5,["a1","a3","a4"]]]]'


def test_both_stores_return_the_history_as_json_gives_it_back(storage: Storage) -> None:
    """MemoryStorage keeps what SqliteStorage would return (lists, not the caller's tuples),
    and the caller owns what `load` returns."""
    given = [1, 4, 0, [(0, 0, ("a0",))]]
    storage.save(Persist(configs=given))
    given[3].clear()  # the caller's list changing later changes nothing stored
    first = storage.load()
    assert first.configs == [1, 4, 0, [[0, 0, ["a0"]]]]
    first.configs[3].clear()
    assert storage.load().configs == [1, 4, 0, [[0, 0, ["a0"]]]]


@pytest.mark.parametrize("bad", [[b"bytes"], [float("nan")], ("a", "tuple")],
                         ids=["bytes", "nan", "not-a-list"])
def test_a_history_that_is_not_json_writes_nothing(storage: Storage, bad) -> None:
    storage.save(Persist(round=1))
    with pytest.raises((TypeError, ValueError)):
        storage.save(Persist(round=2, configs=bad))
    record = storage.load()
    assert (record.round, record.configs) == (1, None)
    storage.save(Persist(round=3))  # a caller's bug, not a failed write: still usable
    assert storage.load().round == 3


@pytest.mark.parametrize("stored", ["not json", "{}", 7], ids=["not-json", "object", "integer"])
def test_a_damaged_history_is_refused_as_corruption(tmp_path: Path, stored) -> None:
    path = tmp_path / "state.db"
    SqliteStorage(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO meta (key, value) VALUES ('configs', ?)", (stored,))
    conn.commit()
    conn.close()
    with SqliteStorage(path) as store, pytest.raises(StorageError) as info:
        store.load()
    assert "is corrupt: bad row" in str(info.value) and "\n" not in str(info.value)


def test_a_failed_save_keeps_neither_the_history_nor_the_applied_prefix(tmp_path: Path) -> None:
    """The history and the learner's `applied` commit together or not at all."""
    path = tmp_path / "state.db"
    old = History.initial(ALPHA, ("a0", "a1", "a2")).fed(0, NOOP)
    with SqliteStorage(path) as store:
        store.save(Persist(decisions=((0, NOOP),), applied=0, configs=old.to_json()))

    def crash(point: str) -> None:
        if point == "after-write":
            raise RuntimeError("crash")

    store = SqliteStorage(path, fault=crash)
    with pytest.raises(RuntimeError):
        store.save(Persist(decisions=((1, NOOP), (2, NOOP)), applied=2,
                           configs=history_with_epoch_1().to_json()))
    store.close()
    with SqliteStorage(path) as store:
        record = store.load()
    assert record.applied == 0 and History.from_json(record.configs) == old


# --- a node restarted on its store ------------------------------------------------------

MEMBERS = Membership(proposers=("p0",), acceptors=("a0", "a1", "a2"), learners=("l0",))
SETTINGS = Settings(window=ALPHA, alpha=ALPHA, election_ticks=10)


def drain(node: Node, store: SqliteStorage) -> Ready:
    """What the runtime does with each Ready: persist first."""
    ready = node.ready()
    store.save(ready.persist)
    return ready


def elect(node: Node, store: SqliteStorage) -> list[Prepare]:
    """Tick `node` until it sends its Prepares (within a bounded number of ticks)."""
    for _ in range(10 * SETTINGS.election_ticks):
        node.tick()
        prepares = [m for m in drain(node, store).send_after_persist if isinstance(m, Prepare)]
        if prepares:
            return prepares
    raise AssertionError("no election within 100 ticks")


def promise(prepare: Prepare, votes: tuple[Vote, ...] = ()) -> Promise:
    return Promise(src=prepare.dst, dst=prepare.src, ballot=prepare.ballot,
                   first_slot=prepare.first_slot, votes=votes)


def accepted(node: Node, accepts: list[Accept], by: tuple[str, ...]) -> None:
    """`by` accept every one of `accepts` (each Accept once per slot)."""
    for m in {m.slot: m for m in accepts}.values():
        for src in by:
            node.step(Accepted(src=src, dst=m.src, ballot=m.ballot, slot=m.slot, value=m.value))


def test_a_proposer_restarted_on_a_store_with_epoch_1_asks_epoch_1s_acceptors(tmp_path: Path):
    """The first incarnation decides "epoch 1 = a1 a3 a4" in slot 0 (governing slots
    >= ALPHA) and persists the history; after a restart on the same file (the manifest
    still says a0 a1 a2) the node prepares a3 and a4 too, is not leader on a majority
    of a0 a1 a2 alone, and sends slot ALPHA's Accept to epoch 1's acceptors only."""
    path = tmp_path / "p0.db"
    with SqliteStorage(path) as store:
        node = Node("p0", MEMBERS, SETTINGS, record=store.load(), store=store)
        for prepare in elect(node, store)[:2]:
            node.step(promise(prepare))
        assert node.is_leader
        node.propose_config(("a1", "a3", "a4"))
        sent = [m for m in drain(node, store).send if isinstance(m, Accept)]
        assert {m.slot for m in sent} == {0}
        accepted(node, sent, by=("a0", "a1"))
        fill = [m for m in drain(node, store).send if isinstance(m, Accept)]
        assert {m.slot for m in fill} == {1, 2, 3}  # no-ops up to the change, at once
        accepted(node, fill, by=("a0", "a1"))
        drain(node, store)
        assert node.configuration().epoch == 1
        votes_of_a0 = tuple(Vote(m.slot, m.ballot, m.value) for m in sent + fill if m.dst == "a0")

    with SqliteStorage(path) as store:
        assert History.from_json(store.load().configs).latest.acceptors == ("a1", "a3", "a4")
        node = Node("p0", MEMBERS, SETTINGS, record=store.load(), store=store)
        prepares = {m.dst: m for m in elect(node, store)}
        assert set(prepares) == {"a0", "a1", "a2", "a3", "a4"}
        assert prepares["a3"].first_slot == prepares["a4"].first_slot == ALPHA
        node.step(promise(prepares["a0"], votes_of_a0))
        node.step(promise(prepares["a2"]))
        assert not node.is_leader, "a majority of the manifest's acceptors is not enough"
        node.step(promise(prepares["a3"]))
        node.step(promise(prepares["a4"]))
        assert node.is_leader
        again = [m for m in drain(node, store).send if isinstance(m, Accept)]
        assert {(m.slot, m.dst) for m in again} == {(s, a) for s in range(ALPHA)
                                                    for a in ("a0", "a1", "a2")}
        accepted(node, again, by=("a0", "a2"))
        node.propose(Command("c1", b"x"))
        accepts = [m for m in drain(node, store).send if isinstance(m, Accept)]
        assert {m.dst for m in accepts if m.slot == ALPHA} == {"a1", "a3", "a4"}
