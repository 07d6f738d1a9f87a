"""Argument parsing shared by the tpctl command modules."""

from __future__ import annotations


def key_values(opts: list[str], what: str) -> dict[str, str]:
    """`KEY=VALUE` words -> dict; a word without `=` or a key given twice is an InvalidArgument naming `what`
    (e.g. "option", "match field")."""
    from tuplenet.control.errors import InvalidArgument

    out: dict[str, str] = {}
    for opt in opts:
        k, sep, v = opt.partition("=")
        if not sep or not k:
            raise InvalidArgument(f"{what}s are KEY=VALUE: {opt!r}")
        if k in out:
            raise InvalidArgument(f"{what} {k} given twice")
        out[k] = v
    return out
