"""`paxosctl trace` on a real cluster: a proposed slot drawn from the agents'
records read over the data path, found by its request id, and bad input
refused in one line."""

from __future__ import annotations

import json

import clusters


def test_trace_draws_a_proposed_slot_found_by_slot_or_request_id(cluster):
    result = cluster.run_ok("propose", "traced-value", "--request-id", "trace-me", "-o", "json")
    slot = json.loads(result.stdout)["slot"]

    def drawn():
        r = cluster.run("trace", "--request-id", "trace-me", "-o", "json")
        if r.returncode != 0:
            return None
        life = json.loads(r.stdout)
        # A majority decides: the third acceptor's receipt of the Accept may be
        # recorded after the learners decided, so both are waited for.
        reached = {s["to"] for s in life["steps"]
                   if s["kind"] == "accept" and s["status"] == "delivered"}
        done = set(life["decided"]) == set(cluster.learners) and reached >= set(cluster.acceptors)
        return life if done else None

    life = clusters.wait_until(drawn, 15, "every learner's decision and every acceptor's "
                                          "receipt of the Accept in the trace")
    assert life["slot"] == slot
    steps = life["steps"]
    leader = next(s["from"] for s in steps if s["kind"] == "accept")
    accepts = [s for s in steps if s["kind"] == "accept" and s["from"] == leader
               and s["status"] == "delivered"]
    value = accepts[0]["value"]
    assert {s["to"] for s in accepts} == set(cluster.acceptors)
    assert all(s["value"] == value and s["slots"] == [slot, slot] for s in accepts)
    first_accept = steps.index(accepts[0])
    accepted = [i for i, s in enumerate(steps) if s["kind"] == "accepted"]
    assert accepted and min(accepted) > first_accept  # causal order: answers after the ask
    decided = [i for i, s in enumerate(steps) if s["kind"] == "decided"]
    assert life["decided"] == {learner: value for learner in cluster.learners}
    assert min(decided) > min(accepted)
    text = cluster.run_ok("trace", str(slot)).stdout
    assert f"DECIDED s{slot} {value}" in text and "Accept " in text


def test_trace_refuses_bad_input_in_one_line(cluster):
    cases = [(("trace", "five"), 2, "SLOT: expected a slot number"),
             (("trace",), 2, "give one of SLOT, --request-id ID or --follow"),
             (("trace", "999999"), 1, "slot 999999 is in no agent's protocol records"),
             (("trace", "--request-id", "never-proposed"), 1, "request id")]
    for args, code, message in cases:
        r = cluster.run(*args)
        assert r.returncode == code, clusters.describe(r)
        lines = r.stderr.strip().splitlines()
        assert len(lines) <= 2 and message in lines[0], r.stderr  # error (+ hint)
        assert "Traceback" not in r.stderr


def test_trace_follow_draws_a_new_slot_and_ends_on_ctrl_c_with_exit_0(cluster):
    import os
    import signal
    import subprocess
    import threading

    env = {**os.environ, "COLUMNS": "120"}
    env.pop("PAXOSCTL_FAULTS", None)
    follower = subprocess.Popen([clusters.PAXOSCTL, "trace", "--follow", "--file",
                                 str(cluster.manifest)], cwd=cluster.dir, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(follower.stdout), daemon=True)
    reader.start()
    try:
        slots: list[int] = []

        def drawn():
            # Propose until one is drawn: the follower starts from the records
            # that come after its first poll, which we cannot see from here.
            if any(line.startswith(f"slot {s}: decided") for s in slots for line in list(lines)):
                return True
            proposed = cluster.run_ok("propose", f"followed-{len(slots)}", "-o", "json")
            slots.append(json.loads(proposed.stdout)["slot"])
            return False

        clusters.wait_until(drawn, 20, "the followed slot drawn")
        follower.send_signal(signal.SIGINT)
        assert follower.wait(10) == 0
        assert "Traceback" not in follower.stderr.read()
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


def test_trace_of_a_replica_cluster_pairs_the_messages_a_replica_sends_itself(make_cluster):
    """The collapsed topology: a replica's proposer talks to its own acceptor
    without a connection; those messages are drawn delivered, not lost."""
    cluster = make_cluster("replicas")
    result = cluster.run_ok("propose", "replicated", "--request-id", "rep-1", "-o", "json")
    slot = json.loads(result.stdout)["slot"]

    def drawn():
        r = cluster.run("trace", str(slot), "-o", "json")
        life = json.loads(r.stdout) if r.returncode == 0 else None
        return life if life and len(life["decided"]) == len(cluster.agent_names) else None

    life = clusters.wait_until(drawn, 15, "every replica's decision in the trace")
    accepts = [s for s in life["steps"] if s["kind"] == "accept"]
    leader = accepts[0]["from"]
    own = [s for s in accepts if s["to"] == leader]
    assert own and all(s["status"] == "delivered" for s in own), own
    assert not [s for s in life["steps"] if s["status"] == "send-missing"], life["steps"]
