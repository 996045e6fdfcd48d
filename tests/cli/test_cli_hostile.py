"""Every command with hostile arguments: never a traceback, always a documented exit code.

Empty strings, NUL and bytes that are not UTF-8 (on the command line they
reach Python as lone surrogates; on standard input as bytes), huge and
negative numbers, NaN and infinities, unknown agents, garbage for -o and
-f, extra arguments. Each run must exit with a code the README documents
(0, 1, 2, 3, 124) and never show a traceback; a failure is one `error:`
line on stderr (and `hint:` lines), nothing on stdout.

Each case runs in this process (`paxosctl.cli.main` with sys.argv, the
standard streams and stdin replaced: tens of milliseconds, where a new
interpreter costs a quarter of a second of CPU), with the command line as
Python would decode it (`os.fsdecode`: a byte that is not UTF-8 becomes a
lone surrogate) and stdout strict UTF-8, as in a real process; an
exception escaping `main` is the traceback a user would see. The cases
with raw bytes run once more as real processes. All from an empty folder:
`-f` names the manifest.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from clusters import PAXOSCTL, Cluster, ClusterFactory, describe, short_tmpdir

#: The exit codes the README documents.
DOCUMENTED = {0, 1, 2, 3, 124}
HUGE = "1" + "0" * 30
NOT_UTF8 = b"\xff\xfe"            # on the command line: two lone surrogates
SURROGATE_UTF8 = b"\xed\xa0\x80"  # "\ud800" encoded as if it were UTF-8: invalid
MAX_VALUE_BYTES = 1024


@dataclass(frozen=True)
class Case:
    args: tuple[str | bytes, ...]
    code: int | set[int]          # the exit code expected (or those allowed)
    stdin: bytes | None = None
    file: bool = True             # append -f MANIFEST

    def __str__(self) -> str:
        shown = " ".join(a.decode(errors="backslashreplace") if isinstance(a, bytes) else repr(a)
                         for a in self.args)
        return f"paxosctl {shown}" + (f" < {self.stdin!r}" if self.stdin is not None else "")


def C(*args: str | bytes, code: int | set[int] = 2, stdin: bytes | None = None,
      file: bool = True) -> Case:
    return Case(args, code, stdin, file)


@dataclass(frozen=True)
class Files:
    manifest: Path
    garbage: Path       # not TOML
    nul: Path           # a manifest with NUL bytes in it


def hostile(f: Files) -> list[Case]:
    """Arguments no command should take badly, against a running cluster."""
    m, g, n = str(f.manifest), str(f.garbage), str(f.nul)
    return [
        # propose
        C("propose", "", code=0),
        C("propose", "-", stdin=b"a\x00b", code=0),
        # Values are bytes: any bytes are decided as they are.
        C("propose", "-", stdin=NOT_UTF8, code=0),
        C("propose", "-", stdin=SURROGATE_UTF8, code=0),
        C("propose", "-", stdin=b"x" * (MAX_VALUE_BYTES + 1)),
        C("propose", NOT_UTF8, code=0),
        C("propose", "x" * (MAX_VALUE_BYTES + 1)),
        C("propose", "v", "--request-id", ""),
        C("propose", "v", "--request-id", "\t"),
        C("propose", "v", "--request-id", NOT_UTF8),
        C("propose", "v", "--request-id", "r" * 257),
        C("propose", "v", "--request-id", "\0config:1:00:0"),
        # --issued: an i64 stamp from -1 (issue 20 (1): 2**63 was a traceback, then exit 124)
        *(C("propose", "v", "--request-id", "r-issued", "--issued", i)
          for i in (str(2**63), HUGE, "-2", "1.5", "x", "")),
        C("propose", "v", "--request-id", "r-issued-max", "--issued", str(2**63 - 1), code=0),
        *(C("propose", "v", "--timeout", t) for t in (HUGE, "-1", "0", "nan", "inf", "1e-9", "x")),
        *(C("propose", "v", "-o", o) for o in ("garbage", "", NOT_UTF8)),
        C("propose", "v", "-f", "", file=False),
        C("propose", "v", "-f", NOT_UTF8, file=False),
        C("propose", "v", "-f", "/dev/null", file=False),
        C("propose", "v", "-f", n, file=False),
        # status
        *(C("status", "-o", o) for o in ("garbage", "", NOT_UTF8)),
        C("status", "extra"),
        C("status", "-f", g, file=False),
        C("status", "-f", "/", file=False),
        # decided
        *(C("decided", "--from", v) for v in ("-1", HUGE, str(2**63), "abc", "")),
        C("decided", "-o", "garbage"),
        # logs
        *(C("logs", a) for a in ("", NOT_UTF8, "nobody", "../../../etc/passwd", "supervisor/..")),
        C("logs", "acceptor-0", "--tail", "-1"),
        C("logs", "acceptor-0", "--tail", HUGE, code=0),
        C("logs", "acceptor-0", "--tail", "x"),
        # kill, restart
        *(C("kill", a) for a in ("", NOT_UTF8, "nobody", "acceptor-0 ")),
        *(C("kill", "acceptor-0", "-s", s) for s in ("", NOT_UTF8, "BOGUS", "0", "SIG", HUGE)),
        *(C("restart", a) for a in ("", NOT_UTF8, "nobody")),
        # chaos (nothing valid: the cluster must stay as it is)
        *(C("chaos", "--drop", v) for v in ("2", "-1", "nan", "inf", "1e400", "x")),
        C("chaos", "--duplicate", "-0.5"),
        *(C("chaos", "--delay", v) for v in ("garbage", "-5s", "99999999h", "", NOT_UTF8)),
        *(C("chaos", "--partition", v) for v in ("nobody", NOT_UTF8, "acceptor-0,nobody")),
        C("chaos", "-o", "x"),
        # soak, bench (none may start: each has something wrong)
        *(C("soak", "--duration", v) for v in ("garbage", "-1s", "", NOT_UTF8)),
        *(C("soak", "--concurrency", v) for v in ("0", "-1", HUGE)),
        C("soak", "--kill-every", "garbage"),
        C("soak", "--chaos", "garbage"),
        C("soak", "--chaos", "drop=2", "--duration", "1s"),
        C("soak", "--chaos", b"partition=" + NOT_UTF8, "--duration", "1s"),
        *(C("soak", "--chaos", v, "--duration", "1s")
          for v in ("drop_kinds=nonsense", "drop_kinds=accepted,drop_to=nobody")),
        C("soak", "--seed", "x"),
        *(C("bench", "--requests", v) for v in ("0", "-1", HUGE)),
        *(C("bench", "--concurrency", v) for v in ("0", HUGE)),
        *(C("bench", "--value-size", v) for v in ("-1", HUGE)),
        C("bench", "--duration", "garbage"),
        C("bench", "-o", "x"),
        # metrics
        C("metrics", "extra"),
        # validate, up, down (that fail before they touch anything)
        *(C("validate", a, file=False) for a in ("", NOT_UTF8, "/dev/null", "/", g, n)),
        C("validate", code=1, file=False),  # no manifest here or above: as `status` says it
        *(C("up", a, file=False) for a in ("/nonexistent", NOT_UTF8, "/dev/null", g, n)),
        C("up", "-d", "--wait", "nan", g, file=False),
        C("up", "-d", "--wait", "x", m, file=False),
        C("down", "extra"),
        C("down", "-f", "/nonexistent", file=False),
        C("down", "-f", g, file=False),
        # the command line itself
        C("frobnicate", file=False),
        C(NOT_UTF8, file=False),
        C("--nope", file=False),
        C("", file=False),
        C("--version", code=0, file=False),
    ]


def stopped(f: Files) -> list[Case]:
    """Commands that need a running cluster, on one that is not running: exit 1
    (nothing was sent), and the same hostile input as ever."""
    return [
        C("status", code=1), C("status", "-o", "json", code=1), C("propose", "v", code=1),
        C("propose", "-", stdin=NOT_UTF8, code=1), C("decided", code=1), C("kill", "acceptor-0", code=1),
        C("kill", NOT_UTF8, code=1), C("restart", "acceptor-0", code=1), C("chaos", code=1),
        C("metrics", code=1), C("bench", "--requests", "1", code=1),
        C("soak", "--duration", "1s", code=1), C("logs", "acceptor-0", code=1),
        C("down", code={0, 1}),
    ]


def command_line(case: Case, manifest: Path) -> list[str | bytes]:
    return [*case.args, *(["--file", str(manifest)] if case.file else [])]


def run(case: Case, cwd: Path, manifest: Path) -> subprocess.CompletedProcess[bytes]:
    """`paxosctl` in a process of its own."""
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"}
    return subprocess.run([PAXOSCTL, *command_line(case, manifest)], cwd=cwd, input=case.stdin,
                          capture_output=True, timeout=60, env=env, check=False,
                          stdin=subprocess.DEVNULL if case.stdin is None else None)


def run_here(case: Case, cwd: Path, manifest: Path) -> subprocess.CompletedProcess[bytes]:
    """`paxosctl` in this process: `main()` with the process's globals replaced."""
    from paxosctl.cli import main

    argv = ["paxosctl", *(os.fsdecode(a) for a in command_line(case, manifest))]
    stdout, stderr = io.BytesIO(), io.BytesIO()
    saved = sys.argv, sys.stdin, sys.stdout, sys.stderr, os.getcwd()
    streams = (io.TextIOWrapper(io.BytesIO(case.stdin or b""), encoding="utf-8"),
               io.TextIOWrapper(stdout, encoding="utf-8", write_through=True),
               io.TextIOWrapper(stderr, encoding="utf-8", errors="backslashreplace",
                                write_through=True))
    sys.argv = argv
    sys.stdin, sys.stdout, sys.stderr = streams
    os.chdir(cwd)
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException as e:  # noqa: BLE001 - what a user would see as a traceback
        import traceback

        sys.stderr.write("".join(traceback.format_exception(e)))
        code = 1
    finally:
        sys.argv, sys.stdin, sys.stdout, sys.stderr, cwd_before = saved
        os.chdir(cwd_before)
        for stream in streams:
            stream.flush()
            stream.detach()  # and not close the buffers read below
    return subprocess.CompletedProcess(argv, code, stdout.getvalue(), stderr.getvalue())


def problems(case: Case, result: subprocess.CompletedProcess[bytes]) -> list[str]:
    """What is wrong with how `case` ended, if anything."""
    out = result.stdout.decode(errors="backslashreplace")
    err = result.stderr.decode(errors="backslashreplace")
    found = []
    allowed = case.code if isinstance(case.code, set) else {case.code}
    if result.returncode not in DOCUMENTED:
        found.append(f"undocumented exit code {result.returncode}")
    if result.returncode not in allowed:
        found.append(f"exit {result.returncode}, expected {sorted(allowed)}")
    if "Traceback" in out + err:
        found.append("a traceback")
    if result.returncode not in (0, 3):
        lines = [line for line in err.splitlines() if line.strip()]
        if out:
            found.append("output on stdout")
        if not lines or not lines[0].startswith("error: "):
            found.append("no `error:` first line")
        elif sum(line.startswith("error: ") for line in lines) != 1 or not all(
                line.startswith(("error: ", "  hint: ", "warning: ")) for line in lines):
            found.append("more than one error line")
    return [f"{case}: {p}\n    stdout: {out[:300]!r}\n    stderr: {err[:300]!r}" for p in found]


def run_all(cases: list[Case], cwd: Path, manifest: Path) -> None:
    """Every case in this process; those with raw bytes again in processes of their own."""
    results = [(case, run_here(case, cwd, manifest)) for case in cases]
    raw = [case for case in cases if case.stdin is not None
           or any(isinstance(a, bytes) for a in case.args)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results += zip(raw, pool.map(lambda c: run(c, cwd, manifest), raw))
    failures = [p for case, result in results for p in problems(case, result)]
    assert not failures, f"{len(failures)} of {len(results)} runs:\n" + "\n".join(failures)


@pytest.fixture(scope="module")
def files() -> Iterator[tuple[Files, Path]]:
    """The bad files, and an empty folder to run in."""
    folder = short_tmpdir()
    empty = folder / "empty"
    empty.mkdir()
    garbage = folder / "garbage.toml"
    garbage.write_bytes(b"\x00\xff[[[ not = toml\n" + bytes(range(256)))
    nul = folder / "nul.toml"
    nul.write_bytes(b'[cluster]\nname = "a\x00b"\n')
    try:
        yield Files(folder / "cluster.toml", garbage, nul), empty
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def test_hostile_arguments_against_a_running_cluster(make_cluster: ClusterFactory, files) -> None:
    bad, cwd = files
    cluster: Cluster = make_cluster("roles", name="hostile",
                                    paxos={"max_value_bytes": MAX_VALUE_BYTES})
    before = cluster.status()
    run_all(hostile(Files(cluster.manifest, bad.garbage, bad.nul)), cwd, cluster.manifest)
    # Nothing hostile changed the cluster: the same processes, no chaos in force.
    after = cluster.healthy()
    assert after is not None, cluster.status()
    assert after["chaos"] == {}
    assert [(a["name"], a["pid"]) for a in after["agents"]] == [
        (a["name"], a["pid"]) for a in before["agents"]]


def test_hostile_arguments_with_no_cluster_running(make_cluster: ClusterFactory, files) -> None:
    bad, cwd = files
    cluster = make_cluster("roles", name="stopped", start=False)
    run_all(stopped(Files(cluster.manifest, bad.garbage, bad.nul)), cwd, cluster.manifest)


def test_agent_names_that_leave_no_room_for_their_socket(make_cluster: ClusterFactory,
                                                        tmp_short: Path) -> None:
    """Issue 20 (11): a state_dir with room for proposer-9's endpoint but not
    proposer-10's (a Unix socket path is at most 107 bytes). `scale`,
    `apply` and `up` refuse such a name up front: exit 2, one line naming
    the path's length and the limit, nothing started or changed."""
    base = tmp_short
    # run/acceptor-2.sock needs 20 bytes past the state_dir, run/proposer-10.sock 21.
    state_dir = base / ("s" * (87 - len(str(base)) - 1))
    assert len(os.fsencode(state_dir)) == 87
    cluster = make_cluster("roles", name="roomless", state_dir=state_dir)
    before = [(a["name"], a["pid"]) for a in cluster.status()["agents"]]

    def refused(*args: str) -> str:
        result = cluster.run(*args)
        lines = result.stderr.splitlines()
        assert result.returncode == 2, describe(result)
        assert "Traceback" not in result.stderr and lines[0].startswith("error: "), describe(result)
        assert sum(line.startswith("error: ") for line in lines) == 1, describe(result)
        assert "proposer-10" in lines[0] and "108 bytes" in lines[0], describe(result)
        assert "107" in lines[0] and "state_dir" in lines[0], describe(result)
        return lines[0]

    refused("scale", "proposer=11")
    text = cluster.manifest.read_text()
    cluster.manifest.write_text(text.replace("[agents.proposer]\nrole = \"proposer\"\nreplicas = 2",
                                             "[agents.proposer]\nrole = \"proposer\"\nreplicas = 11"))
    assert cluster.manifest.read_text() != text
    refused("apply")
    cluster.manifest.write_text(text)
    # Nothing changed: the same processes; a name that fits still scales.
    assert [(a["name"], a["pid"]) for a in cluster.status()["agents"]] == before
    assert not (state_dir / "topology.json").exists()
    cluster.run_ok("scale", "proposer=3")
    cluster.down()
    # A topology.json naming proposer-10 (a cluster moved here from a shorter
    # path after a scale): `up` refuses before it starts anything.
    topology = json.loads((state_dir / "topology.json").read_text())
    topology["agents"].append(["proposer-10", "proposer", "proposer", 10])
    (state_dir / "topology.json").write_text(json.dumps(topology))
    for detach in (("-d",), ()):
        line = refused("up", *detach)
        assert "topology.json" in line
    assert cluster.supervisor() is None
    assert not (state_dir / "run" / "endpoints.json").exists()
