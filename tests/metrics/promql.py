"""The metric names a PromQL expression reads, for checking them against a scrape.

Not a parser: PromQL is regular enough at this level. Take out what can
hold words that are not metric names (strings, label matchers, range and
subquery brackets, `by (...)`-style label lists), then every identifier
left that is not a function call, an aggregation, a keyword or part of a
number is a metric name. tests/metrics/test_promql_names.py holds it
against expressions of every shape our files use.
"""

from __future__ import annotations

import re

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_LABEL_LISTS = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE)
# Not preceded by a word character or a dot: skips the "e9" of 1e9, the "m" of 5m.
_IDENTIFIER = re.compile(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
             "group_right", "bool", "offset", "inf", "nan", "atan2"}


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` selects."""
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _KEYWORDS:
            continue  # a function or an aggregation (its `by` list is gone), or a keyword
        names.add(word)
    return names


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*([A-Za-z_:][\w:]*)\s*(?:\{[^}]*\})?\s*,")


def template_metric_names(query: str) -> set[str]:
    """The metric a Grafana `label_values(metric, label)` variable query reads
    (other query kinds as PromQL)."""
    match = _LABEL_VALUES.match(query)
    if match:
        return {match.group(1)}
    return metric_names(query)
