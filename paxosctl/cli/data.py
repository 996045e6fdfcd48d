"""The data path: `propose` a value, read the `decided` log. Both talk to
the agents directly; the supervisor need not run."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any, Iterator, Optional

import typer

from ..discovery import find_manifest
from ..output import MACHINE, render
from ..errors import Interrupted, UsageError
from ..manifest import Manifest
from ..layout import paths
from .common import TEXT, FileOption, TextOutput, echo, owned_manifest, output_format

if TYPE_CHECKING:
    from ..client.decidedlog import DecidedCommand


def propose(
    value: Annotated[str, typer.Argument(help='The value; "-" reads standard input (bytes, as they are).')],
    file: FileOption = None,
    request_id: Annotated[Optional[str], typer.Option(
        help="Idempotency key: proposing again with it never decides it twice "
             "[default: a new one, printed if the outcome is unknown].")] = None,
    issued: Annotated[Optional[int], typer.Option(
        min=-1, max=2**63 - 1,
        help="With --request-id, when retrying: the stamp its first try printed "
             "(needed with [log] retain).")] = None,
    timeout: Annotated[float, typer.Option(
        help="Seconds to wait for the decision; then exit 124 (it may still be decided).")] = 10.0,
    output: TextOutput = "text",
) -> None:
    """Propose VALUE and wait until it is decided; print its position (SLOT.INDEX).

    The value goes straight to the leader and the answer comes from a
    learner: the supervisor is not involved. Exits 124 when the outcome
    is unknown (no answer in time, the connection lost) and 130 on Ctrl-C
    while waiting: the value may still be decided, and proposing it again
    with the request id printed is safe. Exits 2 if the request id was
    decided with another value.
    """
    output = output_format(output, TEXT)
    if value == "-":
        payload = sys.stdin.buffer.read()
    else:
        # Bytes that are not UTF-8 reach us as lone surrogates (PEP 383): give them back.
        payload = os.fsencode(value)
    if request_id is not None:
        _text(request_id, "--request-id")
        if not 0 < len(request_id) <= 256 or not request_id.isprintable():
            raise UsageError(f"--request-id: expected 1 to 256 printable characters, "
                             f"got {ascii(request_id)[:60]}")
    elif issued is not None:
        raise UsageError("--issued: only with --request-id (the stamp of that request's first try)")
    if not 0.001 <= timeout <= 3600:
        raise UsageError(f"--timeout: expected seconds from 0.001 to 3600, got {timeout}")
    manifest = owned_manifest(file)
    from ..client.sync import new_request_id
    from ..client.datapath import check_proposal, retry_hint

    # Made here, before anything is sent, so that an unknown outcome can name it.
    fresh = request_id is None
    request_id = request_id or new_request_id()
    # The API's rules (README "Python API"), before anything is sent: exit 2.
    check_proposal(payload, request_id, issued, manifest.paxos.max_value_bytes)
    data = _data_client(manifest, file)
    try:
        future = data.propose_async(payload, request_id=request_id, timeout=timeout,
                                    issued=issued, fresh=fresh)
        from ..client.sync import Client

        decision = Client.wait(future, request_id, timeout)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted while waiting: request {request_id} may still be "
                          "decided", hint=retry_hint(request_id, data.stamp(request_id)),
                          request_id=request_id) from None
    finally:
        data.close()
    if output in MACHINE:
        from ..client.datapath import json_value

        echo(render({"slot": decision.slot, "index": decision.index,
                      "position": decision.position,
                      "value": json_value(decision.value),
                      "request_id": decision.request_id}, output))
    else:
        echo(f"decided at {decision.position}: {_shown(decision.value)} "
                   f"({decision.seconds * 1000:.1f} ms)")


def _data_client(manifest: Manifest, file: str | None):
    """The data path of the cluster `manifest` describes (no supervisor needed):
    where this host's supervisor says (run/endpoints.json), else, for agents
    run on their own hosts, where the manifest places them (over TLS)."""
    from ..client.datapath import DataClient
    from ..endpoints import from_manifest, read_endpoints
    from ..errors import NotRunning

    file = find_manifest(file)
    try:
        endpoints = read_endpoints(paths(manifest.state_dir)["run"], file)
    except NotRunning:
        endpoints = from_manifest(manifest, file)
        if endpoints is None:
            raise
    return DataClient(endpoints, cluster_file=file)


def _shown(value: bytes | None) -> str:
    """A payload on one line: UTF-8 text with tab, newline, backslash and
    other control characters escaped (\\t, \\n, \\\\, \\xHH); bytes that
    are not UTF-8 as \\xHH. `decided` output stays one entry per line."""
    if value is None:
        return "(no-op)"
    if value.isascii():
        text = value.decode("ascii")
        if text.isprintable() and "\\" not in text:
            return text  # nothing to escape (most values): no pass per character
    text = value.decode("utf-8", "surrogateescape")
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    return "".join(out)


def _text(value: str | bytes, what: str) -> str:
    """`value` as text, or a UsageError naming `what` if it is not UTF-8.

    Bytes come from standard input; a str from the command line, where
    bytes that are not UTF-8 arrive as lone surrogates (PEP 383).
    """
    try:
        if isinstance(value, bytes):
            return value.decode("utf-8")
        value.encode("utf-8")
        return value
    except UnicodeError as e:
        bad = value[e.start:e.start + 1]
        shown = f"byte 0x{bad[0]:02x}" if isinstance(bad, bytes) else ascii(bad)
        raise UsageError(f"{what}: not UTF-8 text ({shown} at position {e.start})") from None


def decided(
    file: FileOption = None,
    start: Annotated[Optional[int], typer.Option(
        "--from", min=0, max=2**63 - 1,
        help="First slot to show [default: the first slot retained].")] = None,
    limit: Annotated[Optional[int], typer.Option(
        "--limit", min=1, help="Show at most this many entries [default: all].")] = None,
    follow: Annotated[bool, typer.Option(
        "--follow", help="Then keep printing new decisions as they are applied "
                         "(Ctrl-C ends it, exit 130).")] = False,
    output: TextOutput = "text",
) -> None:
    """Print the decided log, read from a learner: position (SLOT.INDEX),
    request id, value; no-op slots marked.

    Text output: one entry per line, tab-separated, the value with tabs,
    newlines, backslashes and bytes that are not UTF-8 escaped (\\t \\n
    \\\\ \\xHH). JSON output: a value that is UTF-8 is a string, any other
    is {"base64": "..."}; one array, or with --follow one object per line
    as each decision arrives. Either way entries are written as they
    arrive, a page at a time: the log is never held whole. With `[log]
    retain`, learners keep only the latest slots: a --from below them is
    an error naming the first slot retained.
    """
    output = output_format(output, TEXT)
    from ..client.decidedlog import read_log_pages

    manifest = owned_manifest(file)
    data = _data_client(manifest, file)
    data.on_cut = lambda learner, reason: echo(
        f"note: learner {learner} cut this reader off ({reason}); going on from the same "
        "position on another learner", err=True)
    try:
        pages = read_log_pages(data, start, limit=limit, follow=follow)
        if output in MACHINE and not follow:
            _write_array(pages, output)
            return
        for page in pages:
            if output == "text":
                echo("\n".join(map(_decided_text, page)))
            elif output == "json":  # one JSON object per line
                echo("\n".join(json.dumps(_decided_json(e)) for e in page))
            else:  # a stream of YAML documents
                echo("\n".join("---\n" + render(_decided_json(e), output) for e in page))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None  # Ctrl-C ends a follow: 130, as for any Ctrl-C
    finally:
        data.close()


def _write_array(pages: Iterator[list[DecidedCommand]], output: str) -> None:
    """The entries as one JSON array (or YAML list), written page by page
    as they arrive: the same bytes as rendering the whole list at once."""
    if output == "json":
        opened = False
        for page in pages:
            body = ", ".join(json.dumps(_decided_json(e)) for e in page)
            echo(("[" if not opened else ", ") + body, nl=False)
            opened = True
        echo("]" if opened else "[]")
        return
    written = False
    for page in pages:  # a YAML block list is its items' one-item lists, concatenated
        echo(render([_decided_json(e) for e in page], output))
        written = True
    if not written:
        echo(render([], output))


def _decided_json(e: DecidedCommand) -> dict[str, Any]:
    """A `DecidedCommand` as `decided -o json` shows it (`DecidedCommand.to_dict`,
    the value as text or {"base64": ...})."""
    value = e.value
    if e.request_id is not None and not e.request_id.startswith("\x00"):
        # Not a configuration change (their request ids start with a NUL): the
        # dict is built here, without to_dict's look at the value.
        try:
            shown: Any = value.decode("utf-8") if value is not None else None
        except UnicodeDecodeError:
            from ..client.datapath import json_value

            shown = json_value(value)
        return {"slot": e.slot, "index": e.index, "request_id": e.request_id, "value": shown,
                "noop": False, "position": f"{e.slot}.{e.index}"}
    from ..client.datapath import json_value

    return {**e.to_dict(), "value": json_value(value)}


def _decided_text(e: DecidedCommand) -> str:
    """A `DecidedCommand` as one tab-separated line (request id and value
    escaped: `_shown`; a configuration change says what it decided)."""
    if e.noop:
        return f"{e.position}\t-\t(no-op)"
    rid = _shown(e.request_id.encode())  # a configuration change's starts with a NUL
    config = e.config if e.request_id.startswith("\x00") else None
    if config is not None:
        return f"{e.position}\t{rid}\t(configuration epoch {config[0]}: acceptors {', '.join(config[1])})"
    return f"{e.position}\t{rid}\t{_shown(e.value)}"
