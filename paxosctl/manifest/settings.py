"""Loading the settings sections: `[health]`, `[restart]`, `[paxos]` and
`[log]`, driven by their dataclass fields (model.py), the checks that
relate two keys of one section, `[metrics]` and `[chaos]`."""

from __future__ import annotations

import dataclasses
from typing import Any

from paxos_agents.runtime.chaos import KINDS, ChaosSettings

from .addresses import split_listen
from .messages import show
from .model import Health, MetricsSettings, PaxosSettings, RestartSettings
from .reader import Reader


def load_settings(reader: Reader, section: str, cls: type, table: dict[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    reader.no_unknown_keys((section,), table, tuple(fields))
    values = {}
    for key, value in table.items():
        meta = fields[key].metadata
        where = (section, key)
        if meta["kind"] == "duration":
            values[key] = reader.duration(where, value)
        elif meta["kind"] == "int":
            values[key] = reader.integer(where, value, meta["low"], meta["high"], meta["why"])
        else:
            values[key] = reader.choice(where, value, meta["noun"], meta["choices"])
    return cls(**values)


def check_orders(reader: Reader, health: Health, restart: RestartSettings, paxos: PaxosSettings,
                 tables: dict[str, dict[str, Any]]) -> None:
    """The checks that relate two keys of one section."""
    order(reader, tables, "health", health, "heartbeat_interval", "heartbeat_timeout", strict=True)
    order(reader, tables, "restart", restart, "backoff_initial", "backoff_max", strict=False)
    for f in dataclasses.fields(PaxosSettings):
        if f.metadata["kind"] == "duration" and f.name != "tick":
            order(reader, tables, "paxos", paxos, "tick", f.name, strict=False)
    order(reader, tables, "paxos", paxos, "heartbeat", "election_timeout", strict=True)
    order(reader, tables, "paxos", paxos, "window", "alpha", strict=False)


def order(reader: Reader, tables: dict[str, dict[str, Any]], section: str, settings: Any,
          low: str, high: str, *, strict: bool) -> None:
    """Fail unless settings.high > settings.low (>= unless `strict`).

    The error names `high`, unless only `low` was written in the file:
    then `low` is the key the operator has to look at."""
    low_value, high_value = getattr(settings, low), getattr(settings, high)
    if high_value > low_value or (not strict and high_value == low_value):
        return
    table = tables[section]
    blamed = low if low in table and high not in table else high

    def written(key: str) -> str:
        if key in table:
            return show(table[key])
        default = {f.name: f for f in dataclasses.fields(settings)}[key].metadata["text"]
        return show(default) + " (default)"

    relation = "greater than" if strict else "at least"
    found = "is not greater than" if strict else "is less than"
    raise reader.fail((section, blamed), f"{high} = {written(high)} {found} {low} = {written(low)}; "
                                         f"{section}.{high} must be {relation} {section}.{low}")


def load_metrics(reader: Reader, table: dict[str, Any]) -> MetricsSettings:
    reader.no_unknown_keys(("metrics",), table, ("listen", "enabled"))
    defaults = MetricsSettings()
    listen = table.get("listen", defaults.listen)
    enabled = table.get("enabled", defaults.enabled)
    if not isinstance(listen, str):
        raise reader.fail(("metrics", "listen"), f'expected "host:port", got {show(listen)}; '
                                                 'for example "127.0.0.1:9464" or "[::1]:9464"')
    try:
        split_listen(listen)
    except ValueError as exc:
        raise reader.fail(("metrics", "listen"), str(exc)) from None
    if not isinstance(enabled, bool):
        raise reader.fail(("metrics", "enabled"), f"expected true or false, got {show(enabled)}")
    return MetricsSettings(listen=listen, enabled=enabled)


def load_chaos(reader: Reader, table: dict[str, Any], agents: tuple[str, ...]) -> ChaosSettings:
    """[chaos]: faults the agents inject into what they send (see paxos_agents.runtime.chaos); all off by default."""
    reader.no_unknown_keys(("chaos",), table, ("drop", "duplicate", "delay", "partition",
                                                  "drop_kinds", "drop_to", "seed"))
    values: dict[str, Any] = {}
    for key in ("drop", "duplicate"):
        if key in table:
            value = table[key]
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not 0 <= value <= 1):
                raise reader.fail(("chaos", key),
                                  f"expected a fraction from 0 to 1, got {show(value)}")
            values[key] = float(value)
    if "delay" in table:
        value = table["delay"]
        if isinstance(value, str) and value.strip() in ("0", "0s", "0ms"):
            values["delay"] = 0.0
        else:
            values["delay"] = reader.duration(("chaos", "delay"), value)
    if "partition" in table:
        values["partition"] = _chaos_agents(reader, table, "partition", agents)
    if "drop_kinds" in table:
        kinds = table["drop_kinds"]
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            raise reader.fail(("chaos", "drop_kinds"), f"expected a list of message kinds, got "
                              f"{show(kinds)}; kinds: {', '.join(KINDS)}")
        for k in kinds:
            if k not in KINDS:
                raise reader.fail(("chaos", "drop_kinds"),
                                  f"no message kind {show(k)}; kinds: {', '.join(KINDS)}")
        values["drop_kinds"] = tuple(dict.fromkeys(kinds))
    if "drop_to" in table:
        names = _chaos_agents(reader, table, "drop_to", agents)
        if names and not values.get("drop_kinds"):
            raise reader.fail(("chaos", "drop_to"),
                              "names whose inbound drop_kinds to drop; give drop_kinds too")
        values["drop_to"] = names
    if "seed" in table:
        values["seed"] = reader.integer(("chaos", "seed"), table["seed"], 0, 2**63 - 1)
    return ChaosSettings(**values)



def _chaos_agents(reader: Reader, table: dict[str, Any], key: str,
                  agents: tuple[str, ...]) -> tuple[str, ...]:
    """[chaos] `key` as agent names, each once; `reader.fail` naming the agents if not."""
    names = table[key]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise reader.fail(("chaos", key), f"expected a list of agent names, got {show(names)}")
    for n in names:
        if n not in agents:
            raise reader.fail(("chaos", key), f"no agent {show(n)}; agents: {', '.join(agents)}")
    return tuple(dict.fromkeys(names))
