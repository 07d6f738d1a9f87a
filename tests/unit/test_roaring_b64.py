"""model.roaring's base64 without the base64 module: the same bytes or the same exception as
base64.b64decode(validate=True) for any text (fuzzed), and the same text as base64.b64encode."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.model import roaring

texts = st.one_of(st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode()),
                  st.text(alphabet="AQgw+/=é \n-_", max_size=12), st.text(max_size=8))


def outcome(call, text: str) -> tuple[str, str]:
    try:
        return "ok", repr(call(text))
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__, str(exc)


@fuzz
@given(texts)
def test_fuzz_decode_is_b64decode_validated(text: str) -> None:
    assert outcome(roaring._b64decode, text) == outcome(lambda t: base64.b64decode(t, validate=True), text)


@fuzz
@given(st.sets(st.integers(0, 65535), max_size=300))
def test_fuzz_encoded_bitmaps_are_b64encode_and_round_trip(members: set[int]) -> None:
    text = roaring.encode_bitmap(members)
    assert base64.b64encode(base64.b64decode(text)).decode() == text
    assert roaring.decode_bitmap(text) == members
