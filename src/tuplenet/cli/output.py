"""Printing objects the way 0.3's tpctl did (plain), or as one JSON list (-j, which never worked in 0.3)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def plain_block(name: str, fields: Sequence[tuple[str, str]]) -> str:
    """`<name>:` then `  - <field padded to the longest>: <value>` lines, then a blank line."""
    width = max((len(f) for f, _ in fields), default=0)
    lines = [f"{name}:"] + [f"  - {f:<{width}}: {v}" for f, v in fields]
    return "\n".join(lines) + "\n\n"


def show(objs: Sequence[Any], as_json: bool, extra: Sequence[dict[str, Any]] | None = None) -> None:
    """Print objects sorted by name; `extra[i]` adds fields after the 0.3 ones (e.g. chassis liveness)."""
    pairs = sorted(zip(objs, extra or [{}] * len(objs), strict=True), key=lambda p: p[0].ident[-1])
    if as_json:
        import json

        sys.stdout.write(json.dumps([{**o.to_json(), **x} for o, x in pairs]) + "\n")
        return
    if not pairs:
        sys.stdout.write("empty data set\n")
        return
    out = []
    for obj, more in pairs:
        fields = obj.show_fields() + [(k, _text(v)) for k, v in more.items()]
        out.append(plain_block(obj.ident[-1], fields))
    sys.stdout.write("".join(out))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)
