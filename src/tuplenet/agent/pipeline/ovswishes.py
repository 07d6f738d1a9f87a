"""OVSDB wishes computed per owner: tunnel ports, patch ports and the bridge's IPFIX row.

The daemon used to rebuild both maps by scanning the whole view after every batch; as engine outputs only
the owners a change touches are recomputed and the daemon applies the wish delta.
"""

from __future__ import annotations

from ..outputs import DerivedKind, Wish
from ..view import PATCH_IP, Reader
from .ecmp import BFD, bfd_timers
from .ondemand import chassis_counted

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TUNNEL = "tunnel"  # ("tunnel", chassis) -> remote IP
PATCH = "patch"  # ("patch", lsp name) -> peer bridge
IPFIX = "ipfix"  # ("ipfix",) -> IpfixSpec of br-int's bridge sampling


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
        if k[1] == self_id or not chassis_counted(r, k[1]):  # on-demand: only chassis talked to
            continue
        ch = r.get(k)
        if ch is not None and (best is None or (ch.tick, k[1]) > best):
            best = (ch.tick, k[1])
    if not best:
        return []
    out = [Wish(TUNNEL, (best[1],), ip)]
    if r.get(("gateway",)) and r.get(("chassis", self_id)) is not None:
        # A gateway runs BFD on every tunnel (0.3), so computes see it alive in their ECMP bundle; while
        # its own chassis record is deleted it stops (and so leaves every ECMP set).
        out.append(Wish(BFD, (best[1],), bfd_timers(r)))
    return out


TUNNELS = DerivedKind("tunip", ("chassis",), _tunip_of, tunip_wishes)


def patch_wishes(r: Reader, key: tuple, lsp: Any) -> list[Wish]:
    """A patch lsp bound to this chassis asks for a patch pair to its peer bridge."""
    if lsp.ip == PATCH_IP and lsp.peer and lsp.chassis == r.self_id:
        return [Wish(PATCH, (key[2],), lsp.peer)]
    return []


def ipfix_wishes(key: tuple, cfg: Any) -> list[Wish]:
    """The agent's IPFIX settings (local fact ("ipfix",) = (collector ip:port, sampling rate, tunnel IP),
    present only when IPFIX_COLLECTOR is set) as the bridge's IPFIX row. As in 0.3: the host's IP as a
    uint32 is the observation domain (so a collector tells hosts apart), observation point 0, and no tunnel
    header sampling (0.3 meant `enable-tunnel-sampling=false` but wrote "flase")."""
    import ipaddress

    from ..ovsdb_ipfix import IpfixSpec  # only a host exporting IPFIX loads the OVSDB row types

    collector, sampling, tunnel_ip = cfg
    return [Wish(IPFIX, (), IpfixSpec((collector,), sampling, obs_domain_id=int(ipaddress.IPv4Address(tunnel_ip)),
                                     obs_point_id=0, other_config=(("enable-tunnel-sampling", "false"),)))]
