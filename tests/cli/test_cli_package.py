"""The CLI package registers its commands in one table (paxosctl/cli/__init__.py):
a command written in a module but left out of the table would not exist, and
nothing else would notice."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import paxosctl.cli as cli


def test_every_command_a_module_defines_is_registered_and_only_those() -> None:
    """A public function of a command module is a command (private helpers
    start with `_`); each is on the app, and the app has nothing else."""
    modules = [importlib.import_module(f"{cli.__name__}.{info.name}")
               for info in pkgutil.iter_modules(cli.__path__) if info.name != "common"]
    defined = {f"{m.__name__}.{name}" for m in modules for name, f in vars(m).items()
               if inspect.isfunction(f) and f.__module__ == m.__name__ and not name.startswith("_")}
    registered = [f"{c.callback.__module__}.{c.callback.__name__}"
                  for c in cli.app.registered_commands if c.callback is not None]
    # A sub-app's commands (`paxosctl certs init`) are its module's functions.
    subcommands = [f"{c.callback.__module__}.{c.callback.__name__}"
                   for g in cli.app.registered_groups if g.typer_instance is not None
                   for c in g.typer_instance.registered_commands if c.callback is not None]
    assert len(modules) == 10
    assert defined == set(registered) | set(subcommands)
    names = [c.name or c.callback.__name__ for c in cli.app.registered_commands
             if c.callback is not None]
    assert len(names) == len(set(names)) == len(defined) - len(subcommands) + 1  # + `ps`, an alias of status
