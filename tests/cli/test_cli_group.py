"""The root group builds only the command that runs (paxosctl/cli/common.py,
`LazyGroup`), and shows what typer's own, eager, group shows.

- `paxosctl --help` lists every registered command, in registration order,
  each with its one-line help;
- the root help and every `paxosctl COMMAND --help` are, line for line,
  what typer prints when it builds all commands itself (`app(...)`);
- running one command converts that command alone to click (a cold
  `paxosctl status` paid ~20 ms for the 22 others: BENCHMARKS.md);
- command modules import no `_`-private name from `common`: what they
  share is its public surface.
"""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import pytest
import typer.main
from clusters import paxosctl

import paxosctl.cli as cli
from paxosctl.cli import common

CLI_DIR = Path(cli.__file__).parent


def registered() -> list[tuple[str, str]]:
    """(name, one-line help) of each command in registration order, then of
    each sub-app (`certs`), as typer's eager group lists them, from the tables themselves."""
    rows = []
    for info in cli.app.registered_commands:
        name = info.name or typer.main.get_command_name(info.callback.__name__)
        text = inspect.cleandoc(info.help) if info.help else inspect.getdoc(info.callback)
        rows.append((name, text.split("\n\n")[0].replace("\n", " ")))
    for group in cli.app.registered_groups:
        solved = typer.main.solve_typer_info_defaults(group)
        rows.append((solved.name, solved.help.split("\n\n")[0].replace("\n", " ")))
    return rows


def sub_commands() -> list[list[str]]:
    """`[SUBAPP, COMMAND]` for each command of each sub-app (`certs init`...)."""
    return [[typer.main.solve_typer_info_defaults(group).name,
             info.name or typer.main.get_command_name(info.callback.__name__)]
            for group in cli.app.registered_groups
            for info in group.typer_instance.registered_commands]


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`paxosctl ARGV` in this process, through the console entry point."""
    old = sys.argv
    sys.argv = ["paxosctl", *argv]
    try:
        with pytest.raises(SystemExit) as exit_:
            common.main()
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def run_lazy(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The stdout of `paxosctl ARGV` as `main` runs it (`root_command()`), named
    `paxosctl` (in this process click would name it after pytest)."""
    common.root_command()(argv, prog_name="paxosctl", standalone_mode=False)
    return capsys.readouterr().out


def run_eager(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The same, as typer runs it when it builds every command itself."""
    cli.app(argv, prog_name="paxosctl", standalone_mode=False)
    return capsys.readouterr().out




def test_help_lists_every_command_in_order_with_its_one_line_help(tmp_path: Path) -> None:
    """A real `paxosctl --help`: the Commands section names each registered
    command once, in the table's order, beside the start of its help."""
    result = paxosctl("--help", cwd=tmp_path)  # 200 columns: no help line cut short
    assert result.returncode == 0, result.stderr
    section = result.stdout.split("Commands:\n", 1)[1]
    listed = [line.split(None, 1) for line in section.splitlines() if line.strip()]
    expected = registered()
    assert [name for name, *_ in listed] == [name for name, _ in expected]
    assert len(expected) == 29 and [name for name, _ in expected[-2:]] == ["certs", "render"]
    for (name, *help_), (_, text) in zip(listed, expected):
        assert help_ and text.startswith(help_[0].removesuffix("...").strip()), name


@pytest.mark.parametrize("argv", [["--help"], *([name, "--help"] for name, _ in registered()),
                                  *([*names, "--help"] for names in sub_commands())],
                         ids=lambda argv: " ".join(argv))
def test_help_is_what_typers_eager_group_prints(argv: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert run_lazy(argv, capsys) == run_eager(argv, capsys)


def test_running_a_command_builds_that_command_only(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    """Each conversion of a command to click goes through typer's
    get_command_from_info: count them. `version` builds `version`;
    `--version` (the root's own option) builds none; `--help` builds all."""
    built: list[str] = []
    convert = typer.main.get_command_from_info

    def counting(*args, **kwargs):  # typer passes the info by keyword when it builds a sub-app
        command = convert(*args, **kwargs)
        built.append(command.name)
        return command

    monkeypatch.setattr(typer.main, "get_command_from_info", counting)
    monkeypatch.chdir(tmp_path)  # no manifest here: `version` reports no cluster
    code, out, _ = run_main(["version"], capsys)
    assert (code, built) == (0, ["version"])
    assert out.startswith("client:     paxosctl ")
    built.clear()
    code, out, _ = run_main(["--version"], capsys)
    assert (code, built) == (0, [])
    code, out, _ = run_main(["--help"], capsys)
    # A sub-app is built whole: its commands, then the group itself (not
    # counted: typer builds groups with get_group_from_info).
    subs = [name for _, name in sub_commands()]
    assert code == 0 and built == [name for name, _ in registered()][:-2] + subs
    certs = [name for app, name in sub_commands() if app == "certs"]
    built.clear()
    code, out, _ = run_main(["certs", "--help"], capsys)
    assert (code, built) == (0, certs)
    assert "init" in out and "rotate" in out


def test_usage_errors_exit_2_with_the_same_lines(tmp_path: Path) -> None:
    """Built late, a command's parameters still check the command line, and
    an unknown command is named with the full list, as before."""
    result = paxosctl("status", "--bogus", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "error: No such option: --bogus\n  hint: see paxosctl status --help\n"
    result = paxosctl("stauts", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    names = ", ".join(sorted(name for name, _ in registered()))
    assert result.stderr == (f"error: no command 'stauts' (did you mean 'status'?); commands: {names}\n"
                             "  hint: see paxosctl --help\n")
    assert "certs" in names
    result = paxosctl("cert", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("error: no command 'cert' (did you mean 'certs'?); commands: ")


def test_command_modules_import_no_private_name_from_common() -> None:
    """What `common` shares with the command modules has public names;
    a `_` name stays inside the module that defines it."""
    for path in sorted(CLI_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module == "common":
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert private == [], f"{path.name} imports {private} from common"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == "common":
                assert not node.attr.startswith("_"), f"{path.name}: common.{node.attr}"
