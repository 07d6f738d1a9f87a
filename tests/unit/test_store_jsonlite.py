"""tuplenet.store.jsonlite against the json module it stands in for: for any value, text or bytes, the same
answer or the same exception with the same message (fuzzed), and the short-lived commands' modules keep
using it (no json/re/enum on tpcni's path: tests/unit/test_import_diet.py)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.store import jsonlite

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70), st.text(max_size=8),
                    st.floats(allow_nan=True, allow_infinity=True))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                      max_leaves=20)
texts = st.one_of(values.map(json.dumps), st.text(alphabet=' \t\n\r{}[]":,0123456789.eE+-truefalsnNIfinity\\u'
                                                           '\ufeffé', max_size=40), st.text(max_size=20))
blobs = st.one_of(texts.map(lambda t: t.encode("utf-8", "surrogatepass")),
                  texts.map(lambda t: t.encode("utf-16")), st.binary(max_size=24))


def outcome(call: Any, *args: Any, **kw: Any) -> tuple[str, str]:
    """What a call gives, comparable across NaN (repr) and exceptions (type and message)."""
    try:
        return "ok", repr(call(*args, **kw))
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__, str(exc)


@fuzz
@given(values)
def test_fuzz_dumps_is_json_dumps(value: Any) -> None:
    assert jsonlite.dumps(value) == json.dumps(value)
    assert jsonlite.dumps(value, separators=(",", ":")) == json.dumps(value, separators=(",", ":"))


@fuzz
@given(st.one_of(texts, blobs))
def test_fuzz_loads_is_json_loads(data: str | bytes) -> None:
    assert outcome(jsonlite.loads, data) == outcome(json.loads, data)


@fuzz
@given(texts, st.integers(0, 4))
def test_fuzz_raw_decode_is_the_decoders(text: str, idx: int) -> None:
    assert outcome(jsonlite.raw_decode, text, idx) == outcome(json.JSONDecoder().raw_decode, text, idx)


@pytest.mark.parametrize("value", [object(), {1, 2}, {"a": b"x"}, {(1, 2): 3}, [math.nan, {"k": object()}]])
def test_what_the_encoder_does_not_know_fails_as_json_fails(value: Any) -> None:
    assert outcome(jsonlite.dumps, value) == outcome(json.dumps, value)


def test_a_circular_structure_fails_as_json_fails() -> None:
    loop: list[Any] = []
    loop.append(loop)
    assert outcome(jsonlite.dumps, loop)[0] == "ValueError"
    assert outcome(jsonlite.dumps, loop) == outcome(json.dumps, loop)


@pytest.mark.parametrize("data", ["", " ", "\ufeff{}", '{"a": 1} x', b"\xef\xbb\xbf{}", "[1,]", "[" * 100000,
                                  b'{"a": "\xff"}', bytearray(b" [1, 2] ")])
def test_corner_cases_match_json(data: Any) -> None:
    assert outcome(jsonlite.loads, data) == outcome(json.loads, data)
