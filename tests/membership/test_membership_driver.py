"""A whole membership change through the driver and a fake engine: no
process, no socket (the real engine is tests/cli/test_membership.py's).

Grow 3 -> 5, shrink 5 -> 3 and replace run to the end; a new agent that
never comes up undoes the change; a leader that dies with the proposal
gets it again (its successor does); and a driver killed after any one
action and resumed from topology.json finishes the same change. Every
run checks that no removed acceptor was stopped while it was still in
the configuration in force (`FakeEngine.early_stops`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from paxosctl.supervisor.control import OpError
from paxosctl.membership.change import Propose, RESEND_SECONDS, StartAgent, StopAgent
from paxosctl.membership.driver import Driver
from paxosctl.membership.names import resize
from paxosctl.membership.plan import Asked
from paxosctl.membership.topology import load

from .fake import FakeEngine, specs

STEP = 0.25


class Killed(Exception):
    """The driver's process dies here."""


def base() -> list:
    return [*specs("proposer", 2), *specs("acceptor", 3), *specs("learner", 1)]


def target(agents: list, acceptors: int) -> tuple:
    kept = [a for a in agents if a.role != "acceptor"]
    current = [a for a in agents if a.role == "acceptor"]
    grown = resize(current, acceptors, "acceptor", "acceptor", set(), Path("/s"))
    return (*kept[:2], *grown, *kept[2:])


def begin(driver: Driver, current, asked: Asked, now: float) -> None:
    """Plan `asked` (OpError if refused) and start it."""
    driver.start(driver.plan(current, asked), now)


def make_driver(engine: FakeEngine, tmp_path) -> Driver:
    path = tmp_path / "topology.json"
    return Driver(engine, path, load(path), lambda agents: setattr(engine, "agents", list(agents)))


def run(driver: Driver, engine: FakeEngine, now: float = 0.0, steps: int = 200):
    """Advance until the change has finished; the finished transition."""
    for _ in range(steps):
        engine.tick()
        now += STEP
        finished = driver.advance(now)
        if finished is not None:
            return finished
    raise AssertionError(f"not finished after {steps} steps: {driver.busy}")


def settled(engine: FakeEngine, agents: tuple, tmp_path) -> None:
    names = {a.name for a in agents}
    acceptors = tuple(a.name for a in agents if a.role == "acceptor")
    assert engine.running() == names
    assert set(engine.decided.acceptors) == set(acceptors)
    assert engine.decided.in_force_epoch == engine.decided.epoch
    assert engine.early_stops == []
    saved = load(tmp_path / "topology.json")
    assert saved.change is None and saved.agents == tuple(agents)


@pytest.mark.parametrize("before, after", [(3, 5), (5, 3), (3, 4), (4, 3)])
def test_grow_and_shrink_the_acceptors(tmp_path, before, after):
    agents = list(target(base(), before))
    engine = FakeEngine(agents)
    driver = make_driver(engine, tmp_path)
    wanted = target(agents, after)
    begin(driver, engine.current(), Asked(wanted, frozenset(), f"scale {before} -> {after}"), 0.0)
    finished = run(driver, engine)
    assert finished.error is None and finished.epoch == 1
    settled(engine, wanted, tmp_path)
    proposals = [a for a in engine.actions if isinstance(a, Propose)]
    assert len(proposals) == 1


def test_replace_retires_the_name(tmp_path):
    engine = FakeEngine(base())
    driver = make_driver(engine, tmp_path)
    new = specs("acceptor", 1, start=3)[0]
    wanted = tuple(new if a.name == "acceptor-1" else a for a in base())
    begin(driver, engine.current(), Asked(wanted, frozenset({"acceptor-1"}), "replace"), 0.0)
    run(driver, engine)
    settled(engine, wanted, tmp_path)
    stop, = [a for a in engine.actions if isinstance(a, StopAgent)]
    assert stop.name == "acceptor-1" and stop.retired
    assert "acceptor-1" in load(tmp_path / "topology.json").retired
    # The retired name is refused for good.
    back = tuple(a for a in wanted if a.name != "acceptor-3") + (specs("acceptor", 2)[1],)
    with pytest.raises(OpError, match="acceptor-1: retired by a replace"):
        begin(driver, engine.current(driver.retired), Asked(back, frozenset(), "scale"), 9.0)


def test_new_agents_run_before_old_ones_stop(tmp_path):
    """Proposers and learners (no configuration change): every new agent runs
    before the first removed one is asked to stop."""
    agents = base()
    engine = FakeEngine(agents)
    driver = make_driver(engine, tmp_path)
    wanted = (specs("proposer", 1, start=2)[0], *agents[2:5], specs("learner", 1, start=1)[0])
    begin(driver, engine.current(), Asked(wanted, frozenset(), "apply"), 0.0)
    running_at_first_stop = None
    for _ in range(50):
        engine.tick()
        before = len(engine.actions)
        if driver.advance(len(engine.actions) * STEP) is not None:
            break
        if running_at_first_stop is None and any(isinstance(a, StopAgent)
                                                 for a in engine.actions[before:]):
            running_at_first_stop = engine.running()
    assert {"proposer-2", "learner-1"} <= running_at_first_stop
    assert not any(isinstance(a, Propose) for a in engine.actions)
    settled(engine, wanted, tmp_path)


def test_a_new_agent_that_never_comes_up_undoes_the_change(tmp_path):
    agents = base()
    engine = FakeEngine(agents)
    engine.never_up = {"acceptor-4"}
    driver = make_driver(engine, tmp_path)
    wanted = target(agents, 5)
    begin(driver, engine.current(), Asked(wanted, frozenset(), "scale 3 -> 5"), 0.0)
    finished = run(driver, engine)
    assert finished.error.startswith("acceptor-4 did not start (see paxosctl logs acceptor-4); "
                                     "nothing was proposed")
    assert not any(isinstance(a, Propose) for a in engine.actions)
    settled(engine, tuple(agents), tmp_path)  # both new acceptors gone, epoch 0


def test_a_leader_that_dies_with_the_proposal_gets_it_resent(tmp_path):
    agents = base()
    engine = FakeEngine(agents)
    engine.kill_leader_on_propose = 1
    driver = make_driver(engine, tmp_path)
    wanted = target(agents, 5)
    begin(driver, engine.current(), Asked(wanted, frozenset(), "scale 3 -> 5"), 0.0)
    run(driver, engine)
    first, second = [a for a in engine.actions if isinstance(a, Propose)]
    assert (first.leader, second.leader) == ("proposer-0", "proposer-1")
    assert first.epoch == second.epoch == 1
    # proposer-0 died (the fake does not restart it); the rest is the target.
    assert engine.running() == {a.name for a in wanted} - {"proposer-0"}
    assert set(engine.decided.acceptors) == {a.name for a in wanted if a.role == "acceptor"}
    assert engine.decided.in_force_epoch == 1 and engine.early_stops == []


def test_resend_waits_for_the_resend_interval(tmp_path):
    engine = FakeEngine(base())
    engine.kill_leader_on_propose = 1
    driver = make_driver(engine, tmp_path)
    begin(driver, engine.current(), Asked(target(base(), 4), frozenset(), "scale"), 0.0)
    times = []
    now = 0.0
    while driver.transition is not None and now < 20:
        engine.tick()
        now += STEP
        before = len(engine.actions)
        driver.advance(now)
        times += [now for a in engine.actions[before:] if isinstance(a, Propose)]
    assert len(times) == 2 and times[1] - times[0] >= RESEND_SECONDS


def uninterrupted(tmp_path, wanted, retire) -> int:
    engine = FakeEngine(base())
    driver = make_driver(engine, tmp_path)
    begin(driver, engine.current(), Asked(wanted, retire, "change"), 0.0)
    run(driver, engine)
    return len(engine.actions)


CHANGES = {
    "grow 3 -> 5": (target(base(), 5), frozenset()),
    "shrink 3 -> 2": (target(base(), 2), frozenset()),
    "replace acceptor-0": (tuple(specs("acceptor", 1, start=3)[0] if a.name == "acceptor-0" else a
                                 for a in base()), frozenset({"acceptor-0"})),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_driver_killed_after_any_action_is_finished_by_the_next(tmp_path, change):
    wanted, retire = CHANGES[change]
    (tmp_path / "whole").mkdir()
    total = uninterrupted(tmp_path / "whole", wanted, retire)
    assert total >= 4
    for k in range(1, total + 1):
        folder = tmp_path / str(k)
        folder.mkdir()
        engine = FakeEngine(base())
        real = engine.carry_out

        def carry_out(action, now, real=real, engine=engine, k=k):
            real(action, now)
            if len(engine.actions) == k:
                raise Killed
        engine.carry_out = carry_out
        driver = make_driver(engine, folder)
        now = 0.0
        try:
            begin(driver, engine.current(), Asked(wanted, retire, change), now)
            run(driver, engine)
        except Killed:
            pass
        engine.carry_out = real
        saved = load(folder / "topology.json")
        if saved.change is not None:  # the next supervisor finishes it
            driver = make_driver(engine, folder)
            driver.resume(saved.agents, saved.change, 100.0)
            if driver.advance(100.0) is None:
                run(driver, engine, now=100.0)
        settled(engine, wanted, folder)
        assert sum(isinstance(a, StartAgent) for a in engine.actions) == \
            len({a.name for a in wanted} - {a.name for a in base()}), k
        # A proposal carried out before the kill was decided: not proposed again.
        assert sum(isinstance(a, Propose) for a in engine.actions) == 1, k
