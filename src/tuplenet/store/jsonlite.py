"""json.loads/json.dumps for the short-lived commands without importing the json package.

json.loads and json.dumps run the C scanner and encoder of `_json`; the package around them imports `re`
and `enum` for its pure-Python fallbacks (~6 ms of every tpcni start, a tenth of a DEL). These functions
call the same C code directly. Whatever the fast path does not take - an error, bytes the stdlib would read
as UTF-16/32 or with a BOM, a value the encoder does not know, a circular structure - is handed to the json
module itself, so results, exceptions and their messages are the stdlib's.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\n\r"  # json's WHITESPACE
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Decoding:
    """The attributes the C scanner reads from a json.JSONDecoder() with default arguments."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


class _Unknown(Exception):
    """A value the C encoder does not know: the stdlib's encoder reports it."""


def _refuse(value: object) -> object:
    raise _Unknown


_scan = _json.make_scanner(_Decoding())
_encode_str = _json.encode_basestring_ascii


def loads(data: str | bytes | bytearray) -> Any:
    """json.loads(data)."""
    try:
        if isinstance(data, str):
            text = data
        elif isinstance(data, bytes | bytearray) and data[:1] not in (b"\x00", b"\xef", b"\xfe", b"\xff") \
                and data[1:2] != b"\x00":
            text = data.decode("utf-8", "surrogatepass")  # what json.detect_encoding says for these
        else:
            raise _Unknown
        obj, end = _scan(text, len(text) - len(text.lstrip(_WS)))
        if text[end:].lstrip(_WS):
            raise _Unknown  # extra data
        return obj
    except Exception:  # noqa: BLE001 - the stdlib raises (or answers) exactly as json.loads does
        import json

        return json.loads(data)


def raw_decode(text: str, idx: int = 0) -> tuple[Any, int]:
    """json.JSONDecoder().raw_decode(text, idx): the value starting at `idx` and where it ends."""
    try:
        return _scan(text, idx)
    except StopIteration:
        import json

        return json.JSONDecoder().raw_decode(text, idx)


def dumps(obj: Any, separators: tuple[str, str] | None = None) -> str:
    """json.dumps(obj) or json.dumps(obj, separators=separators)."""
    item, key = separators or (", ", ": ")
    try:
        if isinstance(obj, str):
            return _encode_str(obj)
        chunks = _json.make_encoder({}, _refuse, _encode_str, None, key, item, False, False, True)(obj, 0)
        return "".join(chunks)
    except Exception:  # noqa: BLE001 - e.g. an unknown type: the stdlib's TypeError, with its message
        import json

        return json.dumps(obj, separators=separators)
