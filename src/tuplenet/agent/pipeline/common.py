"""Lookups shared by the stages: datapath ids, router placement, peers. All reads go through a Reader."""

from __future__ import annotations

from typing import Any

from ..duplicates import winner
from ..view import Reader


def ls_id(r: Reader, ls: str) -> int | None:
    """The switch's datapath id, or None while it is missing or loses an id conflict."""
    return r.cached(("ls_id", ls), lambda sub: _ls_id(sub, ls))


def _ls_id(r: Reader, ls: str) -> int | None:
    obj = r.get(("LS", ls))
    if obj is None or not dp_id_owned(r, ("LS", ls), obj.id):
        return None
    return obj.id


def lr_of(r: Reader, lr: str) -> Any:
    obj = r.get(("LR", lr))
    if obj is None or not dp_id_owned(r, ("LR", lr), obj.id):
        return None
    return obj


def dp_id_owned(r: Reader, key: tuple, dp_id: int) -> bool:
    """Datapath ids must be unique across LS and LR; on a clash the oldest record keeps it and the later
    one is shadowed until the clash goes away (see duplicates.py)."""
    return _first(r, ("I", "dp_id", dp_id), key)


def lsp_shadowed(r: Reader, key: tuple, lsp: Any) -> bool:
    """A port repeating the MAC or IP of an older port in its switch produces nothing (duplicates.py)."""
    ls = key[1]
    return not (_first(r, ("I", "ls_mac", ls, int(lsp.mac.replace(":", ""), 16)), key)
                and _first(r, ("I", "ls_ip", ls, lsp.ip), key))


def _first(r: Reader, ikey: tuple, key: tuple) -> bool:
    holders = r.members(ikey)
    if len(holders) == 1:
        return holders[0] == key
    return winner(holders, r.created) == key


def lr_here(r: Reader, lr: Any) -> bool:
    """A router runs here when it is distributed or pinned to this chassis."""
    return not lr.chassis or lr.chassis == r.self_id


def _peer(r: Reader, index: str, name: str | None, me: str) -> tuple[tuple, Any] | tuple[None, None]:
    """The object named `name` (peers are named, not keyed, in 0.3), preferring one that points back."""
    if not name:
        return None, None
    cands = [(k, o) for k in r.members(("I", index, name)) if (o := r.get(k)) is not None]
    if not cands:
        return None, None
    return next(((k, o) for k, o in cands if o.peer == me), cands[0])


def peer_lrp(r: Reader, lsp_name: str, peer: str) -> tuple[tuple, Any] | tuple[None, None]:
    """The router port a router-facing switch port points at."""
    return _peer(r, "lrp_name", peer, lsp_name)


def peer_lsp(r: Reader, lrp_name: str, peer: str | None) -> tuple[tuple, Any] | tuple[None, None]:
    """The switch port a router port points at."""
    return _peer(r, "lsp_name", peer, lrp_name)
