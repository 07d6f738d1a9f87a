"""Load balancers (docs/lb.md): VIP:port of one protocol -> backends, by conntrack DNAT in the datapath's zone.

One owner per record (`("ls_lb", ls, name)` / `("lr_lb", lr, name)`). Only switches/routers with a load
balancer pay for conntrack, and there only packets to a VIP:port and replies from a backend's ip:port do.

Switch (tables by stage name):
- ls_in_lb: to VIP:port -> ct(zone, nat, table=ls_in_lb_sel) (an established connection is DNATed here);
  a hairpin reply (backend:port -> VIP) -> ct(zone, nat, table=ls_in_lb_hp) (un-SNAT first);
- ls_in_lb_sel: a new connection -> select group whose buckets ct(commit, zone, nat(dst=backend:port),
  table=ls_in_lb_nat); with `affinity` -> multipath on the source IP into reg8 and one flow per backend (a
  client IP keeps its backend while the set in service does not change); nothing in service -> drop;
- ls_in_lb_nat: a backend that is a port of this switch gets its MAC as destination; a backend reaching
  its own VIP (src == dst) is SNATed to the VIP in a second connection (ct_clear, then ct commit in the same
  zone) and may leave through its ingress port;
- ls_in_lb_hp: a hairpin reply, un-SNATed, is un-DNATed by its first connection;
- ls_out_lb (egress, on the chassis delivering the reply, which is the client's: it DNATed the request):
  from a backend's ip:port -> ct(zone, nat) un-DNATs; uncommitted traffic passes unchanged.
The switch answers ARP for the VIP with a MAC derived from it (f2:0b + the VIP), so a VIP may live in the
switch's subnet; a VIP outside it is reached through the router MAC as usual.

Router: the same in lr_in_lb / lr_in_lb_sel / lr_in_lb_nat / lr_in_lb_hp, where the router runs; replies
from a backend are un-DNATed in lr_in_lb too. A pinned router sees both directions on its chassis; a
distributed router's load balancer works only when the reply crosses the router on the client's chassis
(client and backends on one host), because the conntrack entry lives where the request was DNATed.

Group ids: our tag, then 0x8000 | slot << 3 | rank, where slot is a 12-bit hash of the record's identity
(model/lb.py lb_slot) and rank its place among the records of that slot; a ninth record in one slot uses
multipath like affinity does (hash over the 5-tuple), so ids never collide and never depend on unrelated
records.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .. import stages as S
from .. import tables as T
from ..flow import (
    Ct,
    CtClear,
    Flow,
    Load,
    M,
    Multipath,
    Nat,
    Resubmit,
    SetField,
    ToGroup,
    ip_int,
    mac_int,
    match,
)
from ..outputs import GROUP_SELECT, Bucket, Group, group_id
from ..view import Reader
from .common import lr_here, lr_of, ls_id
from .const import ETH_IP
from .ctzone import zone
from .switching import arp_responder

PROTO = {"tcp": 6, "udp": 17}
PORT_FIELDS = {"tcp": ("tcp_src", "tcp_dst"), "udp": ("udp_src", "udp_dst")}
CT_NEW, CT_EST, CT_TRK = 0x01, 0x02, 0x20
GROUP_BASE = 0x8000
RANK_BITS = 3
AFF_REG = "reg8"  # scratch: multipath result (bits 0-15) and "chosen" flag (bit 31)
AFF_FLAG = 1 << 31
TAG_OFS = 16  # ct_mark bits 16-31: the load balancer that DNATed the connection (bit 0 is the ACLs')
TAG_MASK = 0xFFFF << TAG_OFS
_LOOPBACK = Load(T.R_FLAGS, 1, 0, 1)  # the frame may leave through its ingress port (hairpin)


class Tables(NamedTuple):
    entry: int
    sel: int
    nat: int
    hp: int
    out: int  # where the load balancer's stages continue


LS_TABLES = Tables(S.table("ls_in_lb"), S.table("ls_in_lb_sel"), S.table("ls_in_lb_nat"), S.table("ls_in_lb_hp"),
                   S.table(S.BY_NAME["ls_in_lb"].default or ""))
LR_TABLES = Tables(S.table("lr_in_lb"), S.table("lr_in_lb_sel"), S.table("lr_in_lb_nat"), S.table("lr_in_lb_hp"),
                   S.table("lr_in_dnat"))
LS_OUT_LB = S.table("ls_out_lb")
LS_OUT_LB_CT = S.table("ls_out_lb_ct")


def lb_mac(vip: str) -> int:
    """The MAC the switch answers ARP for a VIP with: locally administered, f2:0b + the VIP's octets."""
    return (0xF20B << 32) | ip_int(vip)


def lb_tag(key: tuple) -> int:
    """A 16-bit tag of the record, written into the connection's ct_mark by the DNAT: the hairpin SNAT of
    a backend shared by several load balancers then matches its own connection's VIP (two records with one
    tag and one shared backend fall back to one VIP for the hairpin SNAT; the un-DNAT is still exact)."""
    from zlib import crc32

    return crc32("/".join(key).encode()) & 0xFFFF or 1


def group_index(r: Reader, key: tuple) -> int | None:
    """This record's group index, or None when its slot is full (it then selects by multipath)."""
    from ...model.lb import lb_slot

    slot = lb_slot(key[0], key[1], key[2])
    rank = r.members(("I", "lb_slot", slot)).index(key)
    return None if rank >= 1 << RANK_BITS else GROUP_BASE | slot << RANK_BITS | rank


def in_service(r: Reader, lb: Any) -> list:
    """Backends without a health verdict (`communicate/lb_health/...`), in record order."""
    down = {k[4] for k in r.members(("I", "lb_down", lb.dp_kind, lb.dp, lb.name))}
    return [b for b in lb.backends if b.text() not in down]


def lb_flows(r: Reader, key: tuple, lb: Any) -> list:
    """Flows (and the select group) of one load balancer record."""
    if key[0] == "ls_lb":
        dp = ls_id(r, lb.dp)
        t = LS_TABLES
    else:
        lr = lr_of(r, lb.dp)
        dp = lr.id if lr is not None and lr_here(r, lr) else None
        t = LR_TABLES
    if dp is None:
        return []
    on_switch = key[0] == "ls_lb"
    z = zone(dp)
    proto = PROTO[lb.protocol]
    src_f, dst_f = PORT_FIELDS[lb.protocol]
    vip = ip_int(lb.vip)
    ip = (M("metadata", dp), M("dl_type", ETH_IP), M("nw_proto", proto))
    to_vip = match(*ip, M("nw_dst", vip), M(dst_f, lb.port))
    out: list = [Flow(t.entry, 10, to_vip, (Ct(zone=z, table=t.sel, nat=Nat()),)),
                 Flow(t.hp, 1, match(metadata=dp, dl_type=ETH_IP), (CtClear(), Ct(zone=z, table=t.nat, nat=Nat())))]
    out += _selection(r, key, lb, t, z, to_vip)
    mac = lb_mac(lb.vip)
    tag = M("ct_mark", lb_tag(key) << TAG_OFS, TAG_MASK)
    # Hairpin frames on a switch come from the VIP's MAC and may leave through the port they came in by.
    hp = (SetField("dl_src", mac), _LOOPBACK) if on_switch else ()
    subnets = [] if on_switch else _router_subnets(r, lb.dp)
    for b in lb.backends:  # every backend, in service or not: its established connections go on
        bip = ip_int(b.ip)
        from_b = (*ip, M("nw_src", bip), M(src_f, b.port))
        out.append(Flow(t.entry, 5, match(*from_b, M("nw_dst", vip)), (*hp, Ct(zone=z, table=t.hp, nat=Nat()))))
        # Hairpin: the backend itself; on a router, any client of the backend's own subnet (its reply would
        # go straight back on the link and miss the router's un-DNAT).
        src = next((M("nw_src", n, m) for n, m in subnets if bip & m == n), M("nw_src", bip))
        out.append(Flow(t.nat, 10, match(*ip, src, M("nw_dst", bip), M(dst_f, b.port), tag),
                        (CtClear(), *hp, Ct(commit=True, zone=z, table=t.nat, nat=Nat("src", vip)))))
        if on_switch:  # shared by every load balancer of the switch with this backend: computed once per run
            out += r.cached(("lb_backend", lb.dp, dp, lb.protocol, b.ip, b.port),
                            lambda sub, b=b, from_b=from_b: _backend_flows(sub, lb.dp, dp, b, from_b))
        else:
            out.append(Flow(t.entry, 4, match(*from_b), (Ct(zone=z, table=t.nat, nat=Nat()),)))
    if on_switch:
        out.append(arp_responder(dp, lb.vip, mac))
    return out


def _selection(r: Reader, key: tuple, lb: Any, t: Tables, z: int, to_vip: tuple) -> list:
    """New connections to the VIP: a backend in service, chosen by select group or multipath; or a drop."""
    new = match(*to_vip, M("ct_state", CT_NEW | CT_TRK, CT_NEW | CT_EST | CT_TRK))
    live = in_service(r, lb)
    if not live:
        return [Flow(t.sel, 10, new, (Resubmit(T.DROP),))]

    tag = (Load("ct_mark", lb_tag(key), TAG_OFS, 16),)

    def dnat(b: Any) -> Ct:
        return Ct(commit=True, zone=z, table=t.nat, nat=Nat("dst", ip_int(b.ip), b.port), exec=tag)

    index = None if lb.affinity else group_index(r, key)
    if index is not None:
        gid = group_id(index)
        return [Flow(t.sel, 10, new, (ToGroup(gid),)),
                Group(gid, GROUP_SELECT, tuple(Bucket((dnat(b),)) for b in live))]
    fields = "nw_src" if lb.affinity else "symmetric_l4"
    unchosen = match(*new, M(AFF_REG, 0, AFF_FLAG))
    out = [Flow(t.sel, 10, unchosen, (Multipath(fields, len(live), AFF_REG, 0, 16, "hrw"), Load(AFF_REG, 1, 31, 1),
                                      Resubmit(t.sel)))]
    for i, b in enumerate(live):
        chosen = match(*to_vip, M(AFF_REG, AFF_FLAG | i, AFF_FLAG | 0xFFFF))
        out.append(Flow(t.sel, 5, chosen, (dnat(b),)))
    return out


def _backend_flows(r: Reader, ls: str, dp: int, b: Any, from_b: tuple) -> tuple[Flow, ...]:
    """A switch backend's own flows: replies un-DNATed in egress; its MAC as destination after the DNAT."""
    out = [Flow(LS_OUT_LB, 5, match(*from_b), (Ct(zone=zone(dp), table=LS_OUT_LB_CT, nat=Nat()),))]
    bmac = _port_mac(r, ls, b.ip)
    if bmac is not None:
        out.append(Flow(LS_TABLES.nat, 5, match(M("metadata", dp), M("dl_type", ETH_IP), M("nw_dst", ip_int(b.ip))),
                        (SetField("dl_dst", bmac), Resubmit(LS_TABLES.out))))
    return tuple(out)


def _router_subnets(r: Reader, lr: str) -> list[tuple[int, int]]:
    """(network, mask) of the router's ports, longest prefix first."""
    nets = set()
    for k in r.members(("I", "lr_lrps", lr)):
        lrp = r.get(k)
        if lrp is not None and lrp.prefix:
            mask = (0xFFFFFFFF << (32 - lrp.prefix)) & 0xFFFFFFFF
            nets.add((ip_int(lrp.ip) & mask, mask))
    return sorted(nets, key=lambda nm: -nm[1])


def _port_mac(r: Reader, ls: str, ip: str) -> int | None:
    """The MAC of the switch port holding `ip` (None if the backend is not a port of this switch)."""
    for k in r.members(("I", "ls_ip", ls, ip)):
        lsp = r.get(k)
        if lsp is not None and not lsp.is_patch:
            return mac_int(lsp.mac)
    return None
