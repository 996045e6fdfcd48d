"""Certificates for agents on several hosts: `certs init`, `certs issue`, `certs rotate`.

A typer sub-app (`paxosctl certs ...`); the work is `paxosctl.certs`,
imported when a command runs, so that other commands never load it (nor
`cryptography`). Needs no running cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .common import FileOption, echo, find_manifest

if TYPE_CHECKING:
    from ..certs import Done

app = typer.Typer(
    name="certs",
    help="Make and renew the cluster's TLS certificates (CA, agents, operator, client).",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DirOption = Annotated[Optional[Path], typer.Option(
    "--dir", help="The certificates folder [default: certs/ beside the manifest].", show_default=False)]
DaysOption = Annotated[int, typer.Option(
    "--days", min=1, max=3650, help="Days a new leaf certificate is valid.")]
SanOption = Annotated[Optional[list[str]], typer.Option(
    "--san", help="An extra DNS name or IP address for the new certificates (repeat for more).",
    show_default=False)]

_CA_KEY_NOTE = ("{key} signs new certificates (`certs issue`, `certs rotate`) and is never needed "
                "by a running agent: keep it off the agents' hosts.")


def _report(done: "Done", verb: str) -> None:
    for leaf in done.leaves:
        echo(f"{verb} {leaf.identity.uri}: {leaf.cert} ({leaf.key.name}, mode 0600)")


@app.command()
def init(file: FileOption = None, directory: DirOption = None, days: DaysOption = 365,
         san: SanOption = None) -> None:
    """Make the cluster CA and a certificate per agent of the manifest, plus
    an operator's and a client's; add a cluster id to the manifest if it has none.

    Refuses a folder that already has a CA (use `certs issue` or `certs rotate`).
    """
    from .. import certs

    manifest_file = Path(find_manifest(file))
    done = certs.init(manifest_file, directory, days=days, extra_sans=san or ())
    if done.added_id:
        echo(f"{manifest_file}: added [cluster] id = \"{done.cluster_id}\"")
    echo(f"CA spiffe://{done.cluster_id}: {done.certs.ca_cert}")
    _report(done, "issued")
    echo(_CA_KEY_NOTE.format(key=done.certs.ca_key))


@app.command()
def issue(
    name: Annotated[str, typer.Argument(help="The name: an agent's (acceptor-3), or an operator's or client's.")],
    kind: Annotated[str, typer.Option("--kind", help="One of: agent, operator, client.")] = "agent",
    file: FileOption = None, directory: DirOption = None, days: DaysOption = 365, san: SanOption = None,
) -> None:
    """Issue (or re-issue) one certificate signed by the cluster CA, as for
    the names `scale` and `replace` add."""
    from .. import certs

    done = certs.issue(Path(find_manifest(file)), name, kind, directory, days=days, extra_sans=san or ())
    _report(done, "issued")


@app.command()
def rotate(file: FileOption = None, directory: DirOption = None, days: DaysOption = 365) -> None:
    """New keys and certificates for every certificate in the folder, same CA;
    the previous ones are kept as *.old until the next rotate. Restart the
    agents (one at a time) to use them."""
    from .. import certs

    done = certs.rotate(Path(find_manifest(file)), directory, days=days)
    _report(done, "rotated")
    echo("previous files kept as <name>.crt.old / <name>.key.old until the next rotate")
    echo(_CA_KEY_NOTE.format(key=done.certs.ca_key))
