"""Imports point down: read from the source, not from what happens to load.

- `paxos_agents` never imports `paxosctl`;
- paxosctl's packages point down: cli -> tools -> supervisor -> membership,
  and client, each beside the others as `PACKAGE_ORDER` says, all over the
  shared top modules (manifest, errors, faults, layout...), which import
  none of the packages;
- inside each package the imports form no cycle (the supervisor's rooms:
  supervisor -> ops -> fleet -> agents -> metrics -> restart, and so on);
- the core draws randomness only from the generator it is given;
- test modules import the cluster harness from tests/clusters.py, not a conftest;
- nothing imports `paxosctl.cli` (the package, or a module in it) but `__main__`;
  inside it, command modules import only `paxosctl.cli.common`.

Imports made only for type checking count too: a cycle through them is
still two modules that each need the other to be understood.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("paxosctl", "paxos_agents")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules `path` imports (an imported name that is a module counts as one)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _stdlib_imports(path: Path) -> set[str]:
    """The top-level names of the modules `path` imports absolutely (the
    standard library and third parties; not the project's own packages)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.partition(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add((node.module or "").partition(".")[0])
    return names - set(PACKAGES)


def _graph() -> dict[str, set[str]]:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    modules = {_module_name(p) for p in files}
    graph = {_module_name(p): _imports(p, modules) for p in files}
    # A package's __init__ is imported with any of its modules: not an arrow back.
    return {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}


GRAPH = _graph()


def test_paxos_agents_never_imports_paxosctl():
    upward = {(m, d) for m, deps in GRAPH.items() if m.startswith("paxos_agents")
              for d in deps if d.startswith("paxosctl")}
    assert upward == set()


CLI = {m for m in GRAPH if m == "paxosctl.cli" or m.startswith("paxosctl.cli.")}


def test_nothing_imports_the_cli():
    """Only the entry point (`python -m paxosctl`) imports the CLI package,
    or any module in it; the console script does too, from outside the package."""
    assert {m for m, deps in GRAPH.items() if m not in CLI and deps & CLI} == {"paxosctl.__main__"}


def test_cli_command_modules_import_only_common():
    """Inside the CLI: a command module imports `common` and no other
    command module; `common` imports none of them."""
    for module in sorted(CLI - {"paxosctl.cli", "paxosctl.cli.common"}):
        assert GRAPH[module] & CLI <= {"paxosctl.cli.common"}, module
    assert GRAPH["paxosctl.cli.common"] & CLI == set()


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_form_no_cycle(package):
    graph = {m: {d for d in deps if d.startswith(package)} for m, deps in GRAPH.items()
             if m.startswith(package)}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            pytest.fail("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        for dep in sorted(graph.get(module, ())):
            visit(dep, path + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


#: paxosctl's packages and what each may import besides itself and the
#: shared top modules ("top": paxosctl/*.py). The client library runs where
#: no supervisor does; the membership wing never reaches up to the
#: supervisor that carries its actions out (another engine may); the tools
#: read the supervisor's pid file to measure its processes; the standalone
#: agent (`paxosctl agent`) shares the supervisor's metric families and
#: refuses a state dir a supervisor runs. `render` (Kubernetes objects, systemd
#: units) reads the manifest and the certificates only. `observe` (the
#: agents' protocol records, for trace/top/ui) asks agents as a client does.
PACKAGE_ORDER = {
    "cli": {"tools", "supervisor", "membership", "client", "standalone", "render", "topview",
            "observe", "ui"},
    # `paxosctl ui`: reads the agents (client, observe) and the supervisor's pid file.
    "ui": {"client", "supervisor", "observe"},
    "standalone": {"supervisor"},
    "tools": {"supervisor", "client", "membership"},  # remotechange drives a change from here
    "supervisor": {"membership"},
    "membership": {"render"},  # the launchers render what they start (launchers.py)
    "client": set(),
    "render": set(),
    "topview": {"client", "observe"},  # `paxosctl top`: the agents' views and records
    "observe": {"client"},  # the protocol records, read over the data path
    "top": set(),
}


#: Shared top modules grown into packages of their own (paxosctl/manifest/):
#: they count as "top", so they import none of the packages above, and their
#: __init__ re-exports the modules' names (it may import them).
TOP_PACKAGES = {"manifest"}


def _package(module: str) -> str:
    """The package of a paxosctl module ("top" for paxosctl/*.py), "" outside paxosctl."""
    parts = module.split(".")
    if parts[0] != "paxosctl":
        return ""
    return parts[1] if len(parts) > 1 and parts[1] in PACKAGE_ORDER else "top"


def test_paxosctl_has_only_the_known_packages():
    """A new package gets its place in PACKAGE_ORDER (and a docstring saying what it may import),
    or in TOP_PACKAGES if it is a shared top module split in files."""
    found = {p.parent.name for p in (ROOT / "paxosctl").glob("*/__init__.py")}
    assert found == set(PACKAGE_ORDER) - {"top"} | TOP_PACKAGES


def test_paxosctl_packages_import_only_downwards():
    """Each package imports only what PACKAGE_ORDER lets it. The top modules
    import none of the packages but where they are entry points:
    `__main__` (the CLI) and the package's `__init__`, whose client names
    are imported on first use (its lazy map), not when it loads."""
    wrong = set()
    for module, deps in GRAPH.items():
        package = _package(module)
        if not package:
            continue
        allowed = PACKAGE_ORDER[package] | {package, "top"}
        wrong |= {(module, d) for d in deps if _package(d) not in allowed | {""}}
    assert wrong == {("paxosctl.__main__", "paxosctl.cli")} | {
        ("paxosctl", m) for m in ("paxosctl.client.sync", "paxosctl.client.aio",
                                  "paxosctl.client.results", "paxosctl.client.decidedlog")}


@pytest.mark.parametrize("package", sorted(set(PACKAGE_ORDER) - {"top", "cli"}))
def test_package_inits_import_nothing_at_run_time(package):
    """`paxosctl --version` and `status` import a few modules of these
    packages; an __init__ that imported its modules would load them all.
    Imports under TYPE_CHECKING (for type checkers) are fine."""
    tree = ast.parse((ROOT / "paxosctl" / package / "__init__.py").read_text())
    assert ast.get_docstring(tree), "say what the package holds and what it may import"
    eager = [ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
             and not (isinstance(node, ast.ImportFrom) and node.module in ("__future__", "typing"))]
    assert eager == []


def test_the_supervisor_rooms_import_only_downwards():
    """The supervisor's modules, top to bottom: each may import only those below it."""
    order = ["daemon", "supervisor", "ops", "snapshot", "engine", "rollout", "reconcile", "fleet",
             "roster", "agents", "metrics", "restart", "loop"]
    for i, room in enumerate(order):
        above = {f"paxosctl.supervisor.{r}" for r in order[:i]}
        assert GRAPH[f"paxosctl.supervisor.{room}"] & above == set(), room


MEMBERSHIP = {m for m in GRAPH if m.startswith("paxosctl.membership.")}


def test_the_membership_wing_imports_only_downwards():
    """Inside paxosctl/membership: driver -> change -> plan, with topology,
    names and record beside; the engine for agents on their own hosts
    (remote, with its launchers) over the change. The engine of the
    supervisor's fleet is `paxosctl.supervisor.engine`, outside the wing:
    nothing in the wing imports the supervisor
    (test_paxosctl_packages_import_only_downwards)."""
    order = ["launchers", "remote", "driver", "topology", "change", "record", "names", "plan"]
    assert {m.rpartition(".")[2] for m in MEMBERSHIP} == set(order)
    for i, room in enumerate(order):
        above = {f"paxosctl.membership.{r}" for r in order[:i]}
        assert GRAPH[f"paxosctl.membership.{room}"] & above == set(), room
    assert {m for m in GRAPH if "paxosctl.supervisor.engine" in GRAPH[m]} == {
        "paxosctl.supervisor.supervisor"}


@pytest.mark.parametrize("module", ["plan", "change"])
def test_the_membership_plan_and_state_machine_do_no_io(module):
    """No process, file, socket or clock: they are table-tested without any."""
    names = _stdlib_imports(ROOT / "paxosctl" / "membership" / f"{module}.py")
    assert names & {"os", "socket", "subprocess", "time", "threading", "select", "signal",
                    "multiprocessing", "sqlite3"} == set()
    assert not GRAPH[f"paxosctl.membership.{module}"] & {
        "paxosctl.membership.topology", "paxosctl.membership.driver"}


#: What the protocol core may import from the standard library: no clock,
#: file, process, socket, thread or database (DESIGN.md, "Layers"), so the
#: same code runs in the simulator and in agents. `random` is there for the
#: `random.Random` a node is handed, never the global one.
CORE_STDLIB = {"__future__", "collections", "dataclasses", "enum", "functools", "hashlib",
               "importlib", "itertools", "json", "math", "random", "struct", "typing",
               "bisect", "heapq", "operator", "abc"}



@pytest.mark.parametrize("path", sorted((ROOT / "paxos_agents" / "core").glob("*.py")),
                         ids=lambda p: p.name)
def test_the_core_imports_no_io(path):
    """The core takes time, randomness and reads as arguments: it imports
    nothing that reads a clock, a file or a socket (os, time, socket,
    sqlite3, threading, select...), only what CORE_STDLIB lists."""
    assert _stdlib_imports(path) <= CORE_STDLIB, sorted(_stdlib_imports(path) - CORE_STDLIB)
    assert not {m for m in GRAPH.get(_module_name(path), set())
                if not m.startswith("paxos_agents.core")}, "the core imports only the core"


@pytest.mark.parametrize("path", sorted((ROOT / "paxos_agents" / "core").glob("*.py")),
                         ids=lambda p: p.name)
def test_the_core_draws_randomness_only_from_the_rng_it_is_given(path):
    """`random` is allowed in the core for its `Random` type only: a node draws
    from the generator it was built with, so a simulator seed replays a run
    exactly. A call of the module's functions (`random.random()`, a
    `from random import choice`) would draw from the process-wide generator."""
    tree = ast.parse(path.read_text())
    used = {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "random"}
    used |= {alias.name for node in ast.walk(tree)
             if isinstance(node, ast.ImportFrom) and node.module == "random" for alias in node.names}
    assert used <= {"Random"}, sorted(used - {"Random"})


def test_tests_import_the_harness_from_clusters_not_conftest():
    """pytest loads a conftest by itself; importing one by name as well gives
    two copies of it where two folders hold a conftest.py (tests/faults has
    one). The harness lives in tests/clusters.py."""
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*.py")
                 if "conftest" in _stdlib_imports(p)]
    assert offenders == []
