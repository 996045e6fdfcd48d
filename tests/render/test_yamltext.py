"""The YAML writer (paxosctl/render/yamltext.py): what it writes reads back
as the same data with a YAML parser (PyYAML, test-only here), strings never
re-typed, multi-line text as a block literal."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, strategies as st

from paxosctl.render.yamltext import dump

TRICKY = ["true", "False", "yes", "NO", "on", "off", "y", "null", "~", "", " ", "123", "0x1F", "1e3", "1_000",
          "0o17", ".5", "-1", "2024-01-01", "12:30", "a: b", "a #b", "#c", "- x", "? k", "[x]", "{x}", "*ref",
          "&anchor", "!tag", "%dir", "@at", "`tick", "|", ">", "'q'", '"q"', "tab\there", "ü", "x\r\ny",
          "lead\n", "\nlead", " indented\nsecond", "trailing \nspace", "two\n\n", "a\x7fb", "nan", ".inf",
          "0.0.0.0:9466", "paxosctl:0.2.0", "/healthz", "app.kubernetes.io/name", "\U00010000", "a\u2028b",
          "x\x85y", "\ufeffbom", "line\n\u2028\n"]


@pytest.mark.parametrize("text", TRICKY)
def test_strings_read_back_as_the_same_strings(text):
    data = {text: text, "list": [text, {text: [text]}]}
    assert list(yaml.safe_load_all(dump([data]))) == [data]


def test_multi_line_text_is_a_block_literal():
    toml = '[cluster]\nname = "demo"\n\n[transport]\nkind = "tls"\n'
    text = dump([{"data": {"cluster.toml": toml}}])
    assert text == ('---\ndata:\n  cluster.toml: |\n    [cluster]\n    name = "demo"\n\n'
                    '    [transport]\n    kind = "tls"\n')
    assert yaml.safe_load(text) == {"data": {"cluster.toml": toml}}


def test_what_is_not_plain_data_is_refused():
    with pytest.raises(TypeError, match="cannot write float"):
        dump([{"x": 1.5}])
    with pytest.raises(TypeError, match="keys are strings"):
        dump([{1: "x"}])


plain = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@given(st.lists(plain, min_size=1, max_size=3))
def test_any_plain_data_reads_back_the_same(documents):
    assert list(yaml.safe_load_all(dump(documents))) == documents
