"""The `paxosctl` command line: `app` (typer) and `main`, the console entry point.

The only package that prints or picks exit codes. One module per thing
the commands act on, so that a command is found by what it touches:

- `common`: the app, the options every command shares (-f, -o, AGENT),
  output that survives a closed pipe, the control-socket client, and
  `main`, which turns every `PaxosctlError` into `error: ...` and its
  exit code in one place and builds only the command that runs (its
  `LazyGroup` reads the table below);
- `lifecycle`: the whole cluster's life, `up` and `down`;
- `cluster`: looking at it without changing it, `status`/`ps`,
  `metrics`, `validate`, `version`, `completion`;
- `agents`: one agent at a time, `logs`, `kill`, `restart`, `stop`,
  `start`, `describe`, `events`;
- `data`: the data path, `propose` and `decided` (no supervisor needed);
- `changes`: changing what runs, `apply`, `scale`, `replace`;
- `load`: load and faults, `chaos`, `soak`, `bench`;
- `top`: the cluster live in the terminal (paxosctl.topview);
- `trace`: `trace SLOT`, a slot's life drawn from the agents' records;
- `ui`: `ui`, a live page of the cluster in the browser;
- `standalone`: `agent NAME`, one agent run in the foreground without a
  supervisor (a container's or unit's main process).

Command modules import `common` and nothing else here (tests/test_layers.py).
The commands are registered below, in one table, rather than by a
decorator in each module: `paxosctl --help` lists them in registration
order, which interleaves the modules and which scripts and docs quote.
"""

from . import (agents, certs, changes, cluster, data, lifecycle, load, render, standalone, top,
               trace, ui)
from .common import app, main

__all__ = ["app", "main"]

# The order of `paxosctl --help`, unchanged since the CLI was one module.
app.command()(lifecycle.up)
app.command()(lifecycle.down)
app.command()(data.propose)
app.command("ps", help="The same as status (as docker compose ps).")(cluster.status)
app.command()(cluster.status)
app.command()(data.decided)
app.command()(agents.logs)
app.command()(agents.kill)
app.command()(agents.restart)
app.command()(agents.stop)
app.command()(agents.start)
app.command()(agents.describe)
app.command()(agents.events)
app.command()(top.top)
app.command()(trace.trace)
app.command()(cluster.version)
app.command()(cluster.completion)
app.command()(load.chaos)
app.command()(load.soak)
app.command()(load.bench)
app.command()(ui.ui)
app.command()(cluster.metrics)
app.command()(cluster.validate)
app.command()(changes.apply)
app.command()(changes.scale)
app.command()(changes.replace)
app.add_typer(certs.app, name="certs")
app.add_typer(render.app, name="render")
app.command()(standalone.agent)
