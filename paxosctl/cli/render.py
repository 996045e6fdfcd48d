"""What an engine runs: `render k8s` (Kubernetes objects on stdout) and
`render systemd` (one unit file per agent into a folder).

A typer sub-app (`paxosctl render ...`); the work is `paxosctl.render`,
imported when a command runs. Needs no running cluster; reads the
certificates only with `--secrets`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from ..manifest import display_path
from .common import (IMAGE_DEFAULT, ClusterDomainOption, FileOption, ImageOption, NamespaceOption,
                     SecretsOption, StorageClassOption, StorageOption, completer, echo, echo_err,
                     find_manifest, load_manifest, output_format)

app = typer.Typer(
    name="render",
    help="Render what Kubernetes or systemd runs for the manifest's agents.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

FORMATS = ("yaml", "json", "manifest")


@app.command()
def k8s(
    file: FileOption = None,
    namespace: NamespaceOption = "paxos",
    image: ImageOption = IMAGE_DEFAULT,
    storage_class: StorageClassOption = None,
    storage: StorageOption = "1Gi",
    cluster_domain: ClusterDomainOption = "cluster.local",
    cert_manager: Annotated[Optional[str], typer.Option(
        "--cert-manager", metavar="ISSUER", help="Render cert-manager Certificates issued by this Issuer "
        "(or ClusterIssuer/NAME) for the agents' Secrets.", show_default=False)] = None,
    secrets: SecretsOption = False,
    pod_monitor: Annotated[bool, typer.Option(
        "--pod-monitor", help="A PodMonitor (Prometheus operator) instead of scrape annotations.")] = False,
    output: Annotated[str, typer.Option("-o", "--output", help=f"One of: {', '.join(FORMATS)}.",
                                        autocompletion=completer(FORMATS))] = "yaml",
) -> None:
    """Print the cluster's Kubernetes objects, for `kubectl apply -f -`:
    a StatefulSet per agent, a headless Service, a ConfigMap with the
    manifest, a PodDisruptionBudget keeping a majority of acceptors.

    The pods speak TLS at their DNS names whatever the manifest's
    transport: run `paxosctl certs init` first, then create the Secrets
    (or give --secrets or --cert-manager).
    """
    from ..render import k8s as render

    output = output_format(output, FORMATS)
    manifest = load_manifest(find_manifest(file))
    folder = manifest.transport.certs_dir(manifest.path) if secrets else None
    if folder is not None and not folder.is_dir():
        raise UsageError(f"--secrets: no certificates folder {folder}; allowed: run "
                         f"`paxosctl certs init -f {display_path(manifest.path)}` first")
    if image.strip() != image or not image:
        raise UsageError(f"--image: {image!r:.80} is not an image reference; allowed: NAME[:TAG], no spaces")
    opts = render.Options(namespace=namespace, image=image, storage_class=storage_class, storage=storage,
                          cluster_domain=cluster_domain, cert_manager=cert_manager, secrets_from=folder,
                          pod_monitor=pod_monitor)
    objects = render.cluster_objects(manifest, opts)
    if manifest.cluster_id is None:
        echo_err(f"warning: {manifest.path.name} has no [cluster] id: the pods refuse to start without "
                 "one; run `paxosctl certs init` (it adds it) and render again")
    if cert_manager is not None:
        from ..render.tlsobjects import ca_note

        echo_err(f"note: {ca_note(manifest, cert_manager)}")
    if output == "manifest":  # the ConfigMap's TOML alone: the CLI's manifest on any host
        echo(render.manifest_for_pods(manifest, opts), nl=False)
        return
    echo(render.to_yaml(objects) if output == "yaml" else render.to_json(objects), nl=False)


@app.command()
def systemd(
    output: Annotated[Path, typer.Option(
        "--output", help="The folder to write the unit files into (made if missing).", show_default=False)],
    file: FileOption = None,
    host: Annotated[Optional[str], typer.Option(
        "--host", help="Only the agents [transport.hosts.HOST] places [default: every agent].",
        show_default=False)] = None,
    binary: Annotated[str, typer.Option("--bin", help="paxosctl on the host.")] = "/opt/paxosctl/bin/paxosctl",
    manifest_path: Annotated[Optional[str], typer.Option(
        "--manifest-path", help="Where the manifest is on the host [default: /etc/paxosctl/<cluster>.toml].",
        show_default=False)] = None,
) -> None:
    """Write one unit file per agent (paxosctl-<cluster>-<agent>.service)
    into the folder given by --output, each running `paxosctl agent` with
    systemd's restarts and hardening."""
    from ..render import systemd as render

    manifest = load_manifest(find_manifest(file))
    units = render.units(manifest, host, render.Options(bin=binary, manifest=manifest_path))
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output: {output} is a file, not a folder; allowed: a folder (made if missing)")
    try:
        output.mkdir(parents=True, exist_ok=True)
        for name, text in units.items():
            _write(output / name, text)
    except OSError as e:
        raise UsageError(f"--output: cannot write into {output} ({e.strerror or e})") from None
    for name in units:
        echo(str(output / name))


def _write(path: Path, text: str) -> None:
    """Whole or not at all: a temporary file renamed into place, mode 0644 as units are."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
