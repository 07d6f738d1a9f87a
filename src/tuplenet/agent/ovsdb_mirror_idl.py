"""IDL side of port mirrors: Mirror rows -> `MirrorView`s, and mirror edits -> transaction operations.

Kept apart from `ovsdb_idl` (which only dispatches here) so the mirror code stays in one place. Mirror rows
belong to no root table but Bridge.mirrors: dropping the reference deletes the row.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from tuplenet.agent.ovsdb_mirror import MIRROR_KEY, AddMirror, DelMirror, FixMirror, MirrorView

COLUMNS = ["name", "select_src_port", "select_dst_port", "output_port", "external_ids"]
ROW_PREFIX = "tuplenet-"


def _names(refs: Any) -> frozenset[str]:
    return frozenset(p.name for p in refs or () if p is not None)


def mirror_views(br: Any) -> tuple[MirrorView, ...]:
    """The bridge's Mirror rows (ours and others'), port references as port names."""
    out = []
    for row in getattr(br, "mirrors", None) or ():
        if row is None:
            continue
        output = [p for p in getattr(row, "output_port", []) or [] if p is not None]
        out.append(MirrorView(str(row.uuid), row.name, _names(row.select_src_port), _names(row.select_dst_port),
                              output[0].name if output else None, dict(row.external_ids)))
    return tuple(out)


def mirror_step(txn: Any, t: Any, bridges: Any, ports: Any,
                a: AddMirror | FixMirror | DelMirror) -> Callable[[], None]:
    """The operations of one mirror edit (the planner only names ports that exist)."""
    def refs(names: tuple[str, ...]) -> list[Any]:
        return [ports[n] for n in names]

    if isinstance(a, AddMirror):
        row = txn.insert(t["Mirror"])
        row.name = ROW_PREFIX + a.name
        row.select_src_port = refs(a.select_src)
        row.select_dst_port = refs(a.select_dst)
        row.output_port = refs((a.output,))
        row.external_ids = {MIRROR_KEY: a.name}
        return lambda: bridges[a.bridge].addvalue("mirrors", row)
    existing = t["Mirror"].rows[uuid.UUID(a.uuid)]
    if isinstance(a, DelMirror):
        return lambda: bridges[a.bridge].delvalue("mirrors", existing)

    def fix() -> None:
        existing.select_src_port = refs(a.select_src)
        existing.select_dst_port = refs(a.select_dst)
        existing.output_port = refs((a.output,))
    return fix
