"""Port binding: a local interface whose iface-id names a logical port claims it for this chassis.

The claim is written back to etcd as `chassis=<self>` with a compare-and-swap on the revision the agent
saw, never a blind overwrite (0.3 defect §7.6): a concurrent admin change wins and is re-evaluated.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from ..model import PATCH_PORT_IP
from ..store import KV, Compare, Op, Store, StoreError
from .view import View

log = logging.getLogger(__name__)


def claims(view: View, self_id: str) -> list[tuple[tuple, Any]]:
    """(lsp fact key, lsp) pairs bound to a local interface here but recorded on another chassis."""
    out = []
    for fkey in view.members(("I", "binds")):
        keys = sorted(view.members(("I", "lsp_name", fkey[1])))
        ordinary = [(k, view.facts[k]) for k in keys if not view.facts[k].peer
                    and view.facts[k].ip != PATCH_PORT_IP]
        if len(ordinary) > 1:
            log.warning("iface-id %s matches ports in several switches: %s", fkey[1],
                        ", ".join(k[1] for k, _ in ordinary))
        out += [(k, lsp) for k, lsp in ordinary if lsp.chassis != self_id]
    return out


def write_claim(store: Store, lsp: Any, kv: KV | None, self_id: str) -> bool:
    new = replace(lsp, chassis=self_id)
    cmp = [Compare.mod_revision(kv.key, "=", kv.mod_revision)] if kv else [Compare.exists(new.key)]
    try:
        res = store.txn(cmp, [Op.put(new.key, new.to_value())])
    except StoreError as exc:
        log.warning("binding %s failed: %s", lsp.name, exc)
        return False
    if res.succeeded:
        log.info("bound port %s/%s to this chassis (was %s)", lsp.ls, lsp.name, lsp.chassis or "unbound")
    return res.succeeded
