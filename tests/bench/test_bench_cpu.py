"""`paxosctl bench` on a real cluster: its JSON keeps the old fields and adds
CPU per decided command for the supervisor, each agent, the client and the
cluster's sum, user and system apart, and the cluster's plus the client's;
an agent replaced during the measured phase is reported as such (no figure)
instead of a wrong one."""

from __future__ import annotations

import json
import subprocess

from clusters import PAXOSCTL, describe, wait_until

OLD_FIELDS = ("requests", "errors", "concurrency", "value_size", "seconds", "throughput_per_s",
              "latency_ms", "queue_limit_per_s", "ratio_to_limit")
OWN_KEYS = {"supervisor", "client", "cluster"}


def test_bench_reports_cpu_per_command_of_every_process(cluster):
    # 2 s of load, so that even the idle proposer accrues a few 10 ms CPU ticks.
    result = cluster.run("bench", "--duration", "2s", "--concurrency", "16", "--warmup", "200",
                         "-o", "json", timeout=120)
    assert result.returncode == 0, describe(result)
    data = json.loads(result.stdout)
    for name in OLD_FIELDS:
        assert name in data, name
    assert data["errors"] == 0 and data["requests"] > 0
    assert data["warmup"] == 200
    cpu = data["cpu_us_per_command"]
    assert set(cpu) - OWN_KEYS == set(cluster.agent_names)
    assert OWN_KEYS <= set(cpu)
    assert data["cpu_replaced"] == []
    for name, us in cpu.items():
        assert isinstance(us, (int, float)) and us > 0, (name, us)
    parts = sum(us for name, us in cpu.items() if name not in ("client", "cluster"))
    assert abs(cpu["cluster"] - parts) < 0.05 * len(cpu), (cpu["cluster"], parts)
    # User and system apart, for the same processes, adding up to each figure.
    user, system = data["cpu_user_us_per_command"], data["cpu_system_us_per_command"]
    assert set(user) == set(system) == set(cpu)
    for name, us in cpu.items():
        assert user[name] >= 0 and system[name] >= 0, (name, user[name], system[name])
        assert abs(user[name] + system[name] - us) < 0.02, (name, user[name], system[name], us)
    # The sum that caps throughput on one machine: the cluster's and the client's.
    assert abs(data["cpu_total_us_per_command"] - (cpu["cluster"] + cpu["client"])) < 0.02


def test_bench_text_output_has_a_cpu_row_per_process(cluster):
    result = cluster.run("bench", "--requests", "300", "--concurrency", "8", "--warmup", "0",
                         timeout=120)
    assert result.returncode == 0, describe(result)
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("process"))
    names = [line.split()[0] for line in lines[start + 1:]]
    assert names == ["supervisor", *cluster.agent_names, "client", "cluster", "cluster+client"]
    header = lines[start].split()
    assert header[-2:] == ["user", "system"], lines[start]


def test_an_agent_replaced_during_the_run_is_reported_not_measured(cluster):
    st = cluster.status()
    victim = "acceptor-2"
    old_pid = cluster.agent(victim)["pid"]
    before = st["decided_up_to"] if st["decided_up_to"] is not None else -1
    process = subprocess.Popen(
        [PAXOSCTL, "bench", "-f", str(cluster.manifest), "--duration", "6s", "--warmup", "0",
         "--concurrency", "8", "-o", "json"],
        cwd=cluster.dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        # With no warm-up, the first decision means the measured phase has begun.
        wait_until(lambda: (cluster.status()["decided_up_to"] or -1) > before, 30,
                   "the bench's first decision")
        with cluster.client() as client:
            client.kill(victim)
        wait_until(lambda: cluster.agent(victim)["pid"] not in (None, old_pid), 30,
                   f"{victim} to be restarted")
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode in (0, 1), (process.returncode, err)  # 1: a proposal failed
    data = json.loads(out)
    cpu = data["cpu_us_per_command"]
    assert data["cpu_replaced"] == [victim], (data, err)
    assert cpu[victim] is None
    assert cpu["cluster"] is None  # a sum missing a process would be wrong
    assert data["cpu_total_us_per_command"] is None
    assert data["cpu_user_us_per_command"][victim] is None
    assert all(us is not None and us > 0 for name, us in cpu.items()
               if name not in (victim, "cluster")), cpu
