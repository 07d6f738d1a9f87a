"""OVSDB wishes computed per owner: tunnel ports and patch ports.

The daemon used to rebuild both maps by scanning the whole view after every batch; as engine outputs only
the owners a change touches are recomputed and the daemon applies the wish delta.
"""

from __future__ import annotations

from typing import Any

from ..outputs import DerivedKind, Wish
from ..view import PATCH_IP, Reader

TUNNEL = "tunnel"  # ("tunnel", chassis) -> remote IP
PATCH = "patch"  # ("patch", lsp name) -> peer bridge


def _tunip_of(key: tuple, ch: Any) -> tuple[tuple, ...]:
    return (("tunip", ch.ip),)


def tunip_wishes(r: Reader, owner: tuple, members: list[tuple]) -> list[Wish]:
    """One tunnel per remote tunnel IP: chassis sharing an IP resolve to the newest tick (0.3 rule); our
    own chassis, and our own IP, get none."""
    ip = owner[1]
    if ip == r.get(("selfip",)):
        return []
    self_id = r.self_id
    best = None
    for k in members:
        if k[1] == self_id:
            continue
        ch = r.get(k)
        if ch is not None and (best is None or (ch.tick, k[1]) > best):
            best = (ch.tick, k[1])
    return [Wish(TUNNEL, (best[1],), ip)] if best else []


TUNNELS = DerivedKind("tunip", ("chassis",), _tunip_of, tunip_wishes)


def patch_wishes(r: Reader, key: tuple, lsp: Any) -> list[Wish]:
    """A patch lsp bound to this chassis asks for a patch pair to its peer bridge."""
    if lsp.ip == PATCH_IP and lsp.peer and lsp.chassis == r.self_id:
        return [Wish(PATCH, (key[2],), lsp.peer)]
    return []
