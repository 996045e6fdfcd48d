"""What `status`, `describe` and `events` print for people: lines of text
from the supervisor's replies, and an agent's own view (`describe` with no
supervisor). Pure functions; the CLI and `top` print them.

The machine formats (-o json|yaml) print the replies themselves
(paxosctl.output); these are the tables and the describe page.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from paxos_agents.core.configs import majority

from .durations import format_duration
from .output import table


def age(seconds: float | None) -> str:
    """A duration for a table cell: "350ms", "12s", "3m20s"; "-" if unknown."""
    if seconds is None:
        return "-"
    return format_duration(round(seconds)) if seconds >= 1 else f"{seconds * 1000:.0f}ms"


def status_lines(st: Mapping[str, Any], *, wide: bool) -> list[str]:
    """The cluster line, the chaos line (if any), and the agents' table."""
    ballot = st.get("ballot")
    decided = st.get("decided_up_to")
    lines = [f"cluster: {st['cluster']}   leader: {st['leader'] or '(none)'}"
             f"{f'   ballot: {ballot[0]}.{ballot[1]}' if ballot else ''}"
             f"   decided up to slot: {decided if decided is not None else '(none)'}"]
    lines += configuration_lines(st.get("configuration"))
    if st.get("chaos"):
        lines.append("chaos: " + ", ".join(
            f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in st["chaos"].items()))
    header = ["NAME", "ROLE", "STATE", "PID", "RESTARTS", "AGE"]
    if wide:
        header += ["CPU", "RSS", "HEARTBEAT"]
    header.append("NOTE")
    rows = [header]
    for a in st["agents"]:
        state = a["state"]
        if state == "backoff" and "backoff_s" in a:
            state = f"backoff ({a['backoff_s']:.1f}s)"
        row = [a["name"], a["role"], state, str(a["pid"] or "-"), str(a["restarts"]),
               age(a.get("uptime_s"))]
        if wide:
            beat = a.get("last_heartbeat_s")
            row += [f"{a['cpu_s']:.2f}s" if a.get("cpu_s") is not None else "-",
                    f"{a['rss_bytes'] / 2**20:.1f}MiB" if a.get("rss_bytes") else "-",
                    age(beat) + (" ago" if beat is not None else "")]
        row.append(_one_line(a.get("note", "")))
        rows.append(row)
    return lines + table(rows)


def configuration_lines(config: Mapping[str, Any] | None) -> list[str]:
    """The acceptors in force (their epoch and majority), a decided change
    not yet in force, and a membership change the supervisor is making;
    nothing for a cluster whose acceptors never changed (its table starts
    on the second line, as before membership changes existed)."""
    if not config:
        return []
    out = []
    if "epoch" in config and (config["epoch"] or config.get("change")):
        in_force = config["in_force"]
        out.append(f"acceptors: {', '.join(in_force)} (epoch {config['in_force_epoch']}, "
                   f"majority {majority(len(in_force))})")
        if config["epoch"] != config["in_force_epoch"]:
            out.append(f"configuration epoch {config['epoch']} decided, not yet in force: "
                       f"{', '.join(config['acceptors'])}")
    change = config.get("change")
    if change:
        out.append(f"change in progress: {change['why']}: {change['pending']}")
    return out


def status_key(st: Mapping[str, Any]) -> tuple[Any, ...]:
    """What `status -w` redraws on: the leader, progress aside, and each
    agent's state, pid, restarts and note (not its age, which always moves)."""
    config = st.get("configuration") or {}
    change = config.get("change") or {}
    return (st.get("leader"), tuple((st.get("chaos") or {}).items()),
            config.get("epoch"), config.get("in_force_epoch"), change.get("pending"),
            tuple((a["name"], a["state"], a["pid"], a["restarts"], a.get("note"))
                  for a in st["agents"]))


def down_agents(st: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The agents that should run and do not: `status` exits 3 for these.
    One the operator stopped does not count; an unresponsive one does."""
    return [a for a in st["agents"]
            if a.get("should_run", True) and a["state"] != "running"]


def describe_lines(a: Mapping[str, Any]) -> list[str]:
    """One agent's page, as `kubectl describe` lays it out."""
    by_reason = a.get("restarts_by_reason") or {}
    last = a.get("last_exit")
    files = a.get("files", {})
    beat = a.get("last_heartbeat_s")
    ballot = a.get("ballot")
    fields = [
        ("Name", a["name"]),
        ("Role", a["role"]),
        ("State", a["state"] + (" (stopped by the operator)" if not a.get("should_run", True)
                                else "")),
        ("PID", str(a["pid"] or "-")),
        ("Incarnation", str(a.get("incarnation", "-"))),
        ("Member id", a.get("member_id") or "-"),
        ("Uptime", age(a.get("uptime_s"))),
        ("Restarts", f"{a['restarts']}" + (
            " (" + ", ".join(f"{r} {n}" for r, n in sorted(by_reason.items())) + ")"
            if by_reason else "")),
        ("Failures in a row", str(a.get("consecutive_failures", 0))),
        ("Health failures", str(a.get("health_failures", 0))),
        ("Last exit", _last_exit(last)),
        ("Backoff", age(a["backoff_s"]) if "backoff_s" in a else "-"),
        ("Last heartbeat", age(beat) + " ago" if beat is not None else "-"),
        ("Leader", ("yes" if a.get("leader") else "no") +
         (f", ballot {ballot[0]}.{ballot[1]}" if ballot and ballot[1] else "")),
        ("Decided up to", str(a["decided_up_to"]) if a.get("decided_up_to") is not None else "-"),
        ("CPU", f"{a['cpu_s']:.2f}s" if a.get("cpu_s") is not None else "-"),
        ("RSS", f"{a['rss_bytes'] / 2**20:.1f}MiB" if a.get("rss_bytes") else "-"),
    ]
    if a.get("error"):
        fields.append(("Error", _one_line(a["error"])))
    width = max(len(k) for k, _ in fields) + 2
    lines = [f"{k + ':':<{width}}{v}" for k, v in fields]
    lines.append("Files:")
    size = files.get("state_bytes")
    lines.append(f"  state:     {files.get('state', '-')}"
                 + (f" ({size / 1024:.1f} KiB)" if size is not None else " (none yet)"))
    lines.append(f"  log:       {files.get('log', '-')}")
    lines.append(f"  endpoint:  {files.get('endpoint', '-')}")
    lines.append("Events:")
    events = a.get("events") or []
    if not events:
        lines.append("  (none)")
    else:
        lines += ["  " + line for line in events_lines(events, with_agent=False)]
    return lines


def own_view_lines(a: dict[str, Any]) -> list[str]:
    """An agent's own view, laid out as `describe` lays out the supervisor's."""
    ballot = a.get("ballot")
    config = a.get("config") or {}
    files = a.get("files") or {}
    fields = [
        ("Name", a.get("name", "-")),
        ("Roles", ", ".join(a.get("roles") or []) or "-"),
        ("PID", str(a.get("pid") or "-")),
        ("Incarnation", f"{a.get('incarnation', '-')} (its start counter)"),
        ("Member id", a.get("member_id") or "-"),
        ("Uptime", age(a.get("uptime_s"))),
        ("Leader", ("yes" if a.get("leader") is True else "no") +
         (f", ballot {ballot[0]}.{ballot[1]}" if ballot and ballot[1] else "") +
         (f" (knows of {a['leader_hint']})" if a.get("leader_hint") else "")),
        ("Decided up to", "-" if a.get("decided_up_to") is None else str(a["decided_up_to"])),
        ("Highest decided", "-" if a.get("highest_decided") is None else str(a["highest_decided"])),
        ("Members", ", ".join(a.get("members") or []) + f" (version {a.get('members_version', 0)})"),
        ("Configuration", f"{config['in_force_epoch']} in force: {', '.join(config['in_force'])}"
         if config else "-"),
        ("CPU", f"{a['cpu_s']:.2f}s" if a.get("cpu_s") is not None else "-"),
        ("RSS", f"{a['rss_bytes'] / 2**20:.1f}MiB" if a.get("rss_bytes") else "-"),
        ("Malformed", str(a.get("malformed", 0))),
        ("Refused", ", ".join(f"{k} {v}" for k, v in sorted((a.get("refused") or {}).items()))
         or "-"),
    ]
    width = max(len(k) for k, _ in fields) + 2
    lines = [f"{k + ':':<{width}}{v}" for k, v in fields]
    size = files.get("state_bytes")
    lines.append("Files:")
    lines.append(f"  state:     {files.get('state', '-')}"
                 + (f" ({size / 1024:.1f} KiB)" if size else ""))
    lines.append("Counters:")
    lines += [f"  {k}: {v}" for k, v in sorted((a.get("stats") or {}).items())]
    return lines


def events_lines(events: list[Mapping[str, Any]], *, with_agent: bool = True,
                 header: bool = True) -> list[str]:
    """Events as a table: local time, type, (agent,) kind, message."""
    rows = [["TIME", "TYPE", *(["AGENT"] if with_agent else []), "KIND", "MESSAGE"]]
    for e in events:
        rows.append([time.strftime("%H:%M:%S", time.localtime(e["at"])), e["type"],
                     *([e["agent"] or "(cluster)"] if with_agent else []), e["kind"],
                     _one_line(e["message"])])
    lines = table(rows)
    return lines if header else lines[1:]


def _last_exit(last: Mapping[str, Any] | None) -> str:
    if not last:
        return "-"
    if last.get("signal"):
        how = f"signal {last['signal']}"
    elif last.get("code") is not None:
        how = f"code {last['code']}"
    else:
        how = "status unknown"
    return f"{how} ({last.get('cause', last.get('reason'))}), {age(last.get('ago_s'))} ago"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
