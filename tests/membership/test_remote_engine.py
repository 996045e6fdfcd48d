"""The engine for agents no supervisor runs (paxosctl/membership/remote.py),
driven by the real driver and transition against a fake world: agents that
answer a poll with a WELCOME, take admin frames, and decide a proposed
configuration, with a fake launcher. No process; the real ones are in
tests/hosts/test_membership_hosts.py."""

from __future__ import annotations

from paxosctl.manifest import AgentSpec
from paxosctl.membership.driver import Driver
from paxosctl.membership.plan import Asked, Current, Decided
from paxosctl.membership.remote import RemoteEngine


def replicas(*indexes: int) -> tuple[AgentSpec, ...]:
    return tuple(AgentSpec(f"replica-{i}", "replica", "replica", i) for i in indexes)


class World:
    """Replicas that answer, keep the newest record sent, and decide what the
    leader is asked to propose (in force at the next poll)."""

    def __init__(self, names) -> None:
        self.up = {n: {"members_version": 0, "admitted": True} for n in names}
        self.epoch, self.in_force, self.acceptors = 0, 0, tuple(names)
        self.leader = names[0]
        self.frames: list[tuple[str, dict]] = []
        self.deaf: set[str] = set()  # up, but they miss the next record sent to them
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.failing: set[str] = set()

    # Poll
    def poll(self, names):
        self.in_force = self.epoch
        return {n: (dict(self.up[n], leader=self.leader, epoch=self.epoch,
                         in_force_epoch=self.in_force, acceptors=list(self.acceptors))
                    if n in self.up else None) for n in names}

    # Admin
    def admin(self, name, frame):
        self.frames.append((name, frame))
        if name in self.deaf:
            self.deaf.discard(name)
            return f"cannot reach {name}"
        if frame["op"] == "members":
            if frame["version"] <= self.up[name]["members_version"]:
                return "not newer"
            self.up[name]["members_version"] = frame["version"]
        elif frame["op"] == "reconfig":
            self.epoch += 1
            self.acceptors = tuple(frame["acceptors"])
        return None

    # Launcher
    def start(self, spec, why):
        self.started.append(spec.name)
        if spec.name not in self.failing:
            self.up[spec.name] = {"members_version": 0, "admitted": True}

    def stop(self, name, why, retired):
        self.stopped.append(name)
        self.up.pop(name, None)

    def failed(self, name):
        return "exited 78" if name in self.failing else None


def run(world: World, running, target, retire=frozenset(), why="scale", tmp_path=None, turns=50):
    engine = RemoteEngine(poll_agents=world.poll, admin=world.admin, launcher=world,
                          names={a.name for a in running}, retired=set(retire))
    engine.poll()
    driver = Driver(engine, tmp_path / "topology.json", None, on_done=lambda agents: None)
    current = Current(agents=running, decided=Decided(0, world.acceptors, 0),
                      running=frozenset(a.name for a in running), retired=frozenset())
    driver.start(driver.plan(current, Asked(target, frozenset(retire), why)), 0.0)
    for turn in range(1, turns):
        engine.poll()
        done = driver.advance(turn * 0.5)
        if done is not None:
            return done, engine
    raise AssertionError(f"not done: {driver.waiting()}")


def records(world: World):
    return [(n, f) for n, f in world.frames if f["op"] == "members"]


def test_grow_announces_a_newer_record_to_every_member_until_each_has_it(tmp_path):
    world = World(["replica-0", "replica-1", "replica-2"])
    world.deaf.add("replica-1")  # misses the first record: it is sent again at the next poll
    done, engine = run(world, replicas(0, 1, 2), replicas(0, 1, 2, 3, 4), tmp_path=tmp_path)
    assert done.error is None and world.started == ["replica-3", "replica-4"]
    assert world.acceptors == ("replica-0", "replica-1", "replica-2", "replica-3", "replica-4")
    final = max(f["version"] for _, f in records(world))
    assert {n: w["members_version"] for n, w in world.up.items()} == dict.fromkeys(world.up, final)
    assert [n for n, f in records(world) if f["version"] == 1].count("replica-1") == 2


def test_an_added_agent_that_ends_for_good_undoes_the_change(tmp_path):
    world = World(["replica-0", "replica-1", "replica-2"])
    world.failing.add("replica-3")
    done, engine = run(world, replicas(0, 1, 2), replicas(0, 1, 2, 3), tmp_path=tmp_path)
    assert done.error is not None and "replica-3 did not start" in done.error
    assert world.epoch == 0 and world.stopped == ["replica-3"]
    last = records(world)[-1][1]
    assert last["acceptors"] == ["replica-0", "replica-1", "replica-2"]


def test_replace_names_the_retired_agent_only_once_it_is_no_member(tmp_path):
    world = World(["replica-0", "replica-1", "replica-2"])
    del world.up["replica-2"]  # wiped: it does not answer
    target = (*replicas(0, 1), *replicas(3))
    done, engine = run(world, replicas(0, 1, 2), target, retire={"replica-2"},
                       why="replace replica-2 by replica-3", tmp_path=tmp_path)
    assert done.error is None and world.acceptors == ("replica-0", "replica-1", "replica-3")
    sent = [f for _, f in records(world)]
    assert sent[0]["retired"] == [] and "replica-2" in sent[0]["acceptors"]
    assert sent[-1]["retired"] == ["replica-2"] and "replica-2" not in sent[-1]["acceptors"]
    assert "replica-2" not in {n for n, f in records(world)}  # it never answered: nothing sent
    assert world.stopped == ["replica-2"]
