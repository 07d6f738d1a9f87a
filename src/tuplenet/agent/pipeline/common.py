"""Lookups shared by the stages: datapath ids, router placement, peers. All reads go through a Reader."""

from __future__ import annotations

from ..duplicates import winner
from ..view import Reader

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


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


def _link(r: Reader, index: str, back: str, me: tuple, name: str | None) -> tuple[tuple, Any] | tuple[None, None]:
    """The object `me` is linked to. Peers are bare names in 0.3, and names are not unique across switches
    and routers, so anyone could create a port named like another tenant's link. A link counts only when
    both sides name each other, and the oldest such partner of each side wins on both sides: a later
    look-alike never takes over an existing link (it is ignored until the original goes)."""
    if not name:
        return None, None
    cands = [k for k in r.members(("I", index, name)) if (o := r.get(k)) is not None and o.peer == me[2]]
    best = winner(cands, r.created)
    if best is None:
        return None, None
    rivals = [k for k in r.members(("I", back, me[2])) if (o := r.get(k)) is not None and o.peer == best[2]]
    if winner(rivals, r.created) != me:
        return None, None
    return best, r.get(best)


def peer_lrp(r: Reader, lsp_key: tuple, peer: str | None) -> tuple[tuple, Any] | tuple[None, None]:
    """The router port a router-facing switch port is linked to."""
    return _link(r, "lrp_name", "lsp_name", lsp_key, peer)


def peer_lsp(r: Reader, lrp_key: tuple, peer: str | None) -> tuple[tuple, Any] | tuple[None, None]:
    """The switch port a router port is linked to."""
    return _link(r, "lsp_name", "lrp_name", lrp_key, peer)
