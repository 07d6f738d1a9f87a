"""Port mirrors as OVSDB wishes: the chassis that holds the mirrored port asks for an OVS Mirror row.

OVS's own Mirror table does the copying (select_src_port / select_dst_port = the VM's port on br-int,
output_port = a local port or a tunnel port the agent creates towards the collector), so mirroring adds no
flows and sees exactly the frames the VM sends and receives. Every other chassis computes nothing for it.
"""

from __future__ import annotations

from typing import Any

from .. import tables as T
from ..binding import bound_lsp, claiming_key
from ..flow import Flow
from ..outputs import Wish
from ..view import Reader
from .const import default_flows

MIRROR = "mirror"  # ("mirror", name) -> MirrorWish


def mirror_wishes(r: Reader, key: tuple, m: Any) -> list[Wish]:
    """One wish if the mirrored lsp is bound to a local interface here: (iface-id, ofport, direction,
    target kind, local port name or collector IP, session id / VNI)."""
    lsp_key = ("lsp", m.ls, m.lsp)
    lsp = r.get(lsp_key)
    if lsp is None or lsp.peer or lsp.is_patch:
        return []
    self_id = r.self_id
    if lsp.chassis != self_id and not r.get(claiming_key(lsp_key)):
        return []
    ofport = r.get(("bind", m.lsp))
    if ofport is None or bound_lsp(r, m.lsp) != lsp_key:
        return []
    t = m.target
    return [Wish(MIRROR, (key[1],), (m.lsp, ofport, m.direction, t.kind, t.iface or t.ip, t.key))]


def revalidation_flow() -> Flow:
    """The ls_in_mirror stage's default flow, re-sent unchanged once ovs-vswitchd has applied a Mirror change.

    OVS 3.1 does not re-translate cached datapath flows when only the Mirror table changes (a VM talking
    before the mirror existed would never be copied); any flow-table change makes every datapath flow be
    revalidated, and re-adding an identical pass-through flow changes nothing else.
    """
    return next(f for f in default_flows() if f.table == T.LS_IN_MIRROR)
