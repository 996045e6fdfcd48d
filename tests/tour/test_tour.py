"""examples/tour.md, run: the guided tour cannot rot.

The tour's markup (also said at the top of examples/tour.md):

- Only fenced blocks opened with ```console are run; ```text blocks and
  indented blocks are illustrations (a diagram from one run, say).
- In a console block, `$ COMMAND` is a command, run by bash (pipefail on)
  in the current folder: the copy of examples/'s parent at first; a command
  that is exactly `cd DIR` moves it for the commands after it.
- A trailing `# exit N` comment on a command is the exit status it must
  end with (0 unless said).
- The lines under a command, up to the next `$ `, are its output as the
  tour shows it: each must match a whole line of what the command wrote
  (stdout, then stderr), in any order, where `...` stands for any text and
  surrounding blanks are ignored. A line that is only `...` stands for
  lines left out and is not checked.

The tour runs on one real cluster, in a temporary copy of examples/ (its
metrics on port 0: a fixed port would collide with another cluster on the
machine), with the venv's paxosctl first on PATH and 80 columns. It waits
only through the tour's own commands (a `propose` returns once decided,
`scale` once in force), never by sleeping; each command gets at most
COMMAND_TIMEOUT seconds. Whatever happens, the cluster is torn down.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from clusters import GROUPS, Cluster, short_tmpdir

ROOT = Path(__file__).resolve().parents[2]
TOUR = ROOT / "examples" / "tour.md"
COMMAND_TIMEOUT = 30.0
EXIT_MARK = re.compile(r"\s#\s*exit\s+(\d+)\s*$")


@dataclass
class Step:
    """One `$ ` command of the tour, where it is, and what it must show."""

    line: int
    command: str
    exit: int = 0
    expect: list[str] = field(default_factory=list)

    def matches(self) -> list[re.Pattern[str]]:
        """The expected lines as patterns (`...` any text), `...` lines left out."""
        return [re.compile(".*".join(re.escape(part) for part in line.split("...")))
                for line in self.expect if line != "..."]


def parse(text: str) -> list[Step]:
    """The commands of every ```console block of `text`, in order."""
    steps: list[Step] = []
    in_console = in_other = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("```"):
            if in_console or in_other:
                in_console = in_other = False
            elif line == "```console":
                in_console = True
            else:
                in_other = True
            continue
        if not in_console:
            continue
        if line.startswith("$ "):
            command = line[2:].strip()
            mark = EXIT_MARK.search(command)
            steps.append(Step(number, command, int(mark.group(1)) if mark else 0))
        elif line and steps and steps[-1].line < number:
            steps[-1].expect.append(line)
        elif line:
            raise AssertionError(f"tour line {number}: output before any command: {line!r}")
    return steps


def run_step(step: Step, cwd: Path, env: dict[str, str]) -> Path:
    """Run `step` in `cwd`; assert its exit status and lines. The folder
    for the next step (moved by `cd DIR`)."""
    where = f"tour line {step.line}: $ {step.command}"
    if re.fullmatch(r"cd\s+\S+", step.command):
        target = (cwd / step.command.split(None, 1)[1]).resolve()
        assert target.is_dir(), f"{where}: no such folder {target}"
        return target
    try:
        result = subprocess.run(["bash", "-o", "pipefail", "-c", step.command], cwd=cwd, env=env,
                                capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                                stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{where}: still running after {COMMAND_TIMEOUT}s "
                             f"(output so far: {e.stdout!r} {e.stderr!r})") from None
    shown = f"\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == step.exit, (
        f"{where}: exit {result.returncode}, the tour says {step.exit}{shown}")
    lines = [line.strip() for line in (result.stdout + "\n" + result.stderr).splitlines()]
    for pattern, expected in zip(step.matches(), [e for e in step.expect if e != "..."]):
        assert any(pattern.fullmatch(line) for line in lines), (
            f"{where}: no line of its output is {expected!r}{shown}")
    return cwd


def run_tour(text: str, cwd: Path, env: dict[str, str]) -> int:
    """Run every step of the tour `text`, from `cwd`; the number run."""
    steps = parse(text)
    for step in steps:
        cwd = run_step(step, cwd, env)
    return len(steps)


def tour_env() -> dict[str, str]:
    """The reader's shell: the venv's paxosctl first on PATH, 80 columns,
    no manifest named by the environment."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"}
    for name in ("PAXOSCTL_FILE", "PAXOSCTL_FAULTS"):
        env.pop(name, None)
    return env


def test_the_tour_runs_on_the_example_cluster() -> None:
    """Every command of examples/tour.md, in order, on one real cluster:
    the exit status and the lines the tour shows."""
    folder = short_tmpdir()
    examples = folder / "examples"
    shutil.copytree(ROOT / "examples", examples, ignore=shutil.ignore_patterns(".paxosctl"))
    manifest = examples / "cluster.toml"
    text = manifest.read_text()
    assert 'listen = "127.0.0.1:9464"' in text
    manifest.write_text(text.replace('listen = "127.0.0.1:9464"', 'listen = "127.0.0.1:0"'))
    cluster = Cluster(dir=folder, topology="roles", name="demo", manifest=manifest,
                      state_dir=examples / ".paxosctl" / "demo", groups=dict(GROUPS["roles"]))
    try:
        assert run_tour(TOUR.read_text(), folder, tour_env()) >= 30
    finally:
        if cluster.supervisor() is not None:  # the tour ends with `down`; a failed one did not
            subprocess.run([str(Path(sys.executable).parent / "paxosctl"), "down", "--file",
                            str(manifest)], cwd=examples, capture_output=True, timeout=60)
        cluster.teardown()


# ---------------------------------------------------------------- the runner

SAMPLE = """\
Prose is not run.

```console
$ cd sub
$ printf 'decided at 0.0: hello (3.1 ms)\\nother\\n'
decided at 0.0: hello (...)
...
$ exit 3   # exit 3
```

```text
$ false
```
"""


def test_the_runner_reads_commands_exit_marks_and_expected_lines() -> None:
    steps = parse(SAMPLE)
    assert [(s.command, s.exit, s.expect) for s in steps] == [
        ("cd sub", 0, []),
        ("printf 'decided at 0.0: hello (3.1 ms)\\nother\\n'", 0,
         ["decided at 0.0: hello (...)", "..."]),
        ("exit 3   # exit 3", 3, []),
    ]


@pytest.mark.parametrize("broken, complaint", [
    ("$ exit 3   # exit 3", None),
    ("$ exit 1   # exit 3", "exit 1, the tour says 3"),
    ("$ false", "exit 1, the tour says 0"),
    ("$ paxosctl-no-such-command", "exit 127, the tour says 0"),
    ("$ echo decided\ndecided at ...", "no line of its output is 'decided at ...'"),
    ("$ cd nowhere", "no such folder"),
])
def test_a_step_that_fails_fails_the_tour(tmp_path: Path, broken: str, complaint: str | None) -> None:
    """A command that exits otherwise than the tour says, or does not show
    a line the tour shows, stops the tour with the line and the command."""
    (tmp_path / "sub").mkdir()
    text = SAMPLE.replace("$ exit 3   # exit 3", broken)
    if complaint is None:
        assert run_tour(text, tmp_path, tour_env()) == 3
        return
    with pytest.raises(AssertionError, match=re.escape(complaint)):
        run_tour(text, tmp_path, tour_env())
