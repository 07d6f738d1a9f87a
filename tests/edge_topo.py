"""An edge topology on simulated hosts, shared by the NAT and gateway tests.

LS-A (vm1 on hv1, vm2 on hv3) - LR-central (distributed) - LS-M (transit) - LR-edge (pinned to hv2)
- LS-out, whose patch port on hv2 leads to the physical bridge br-phy with the dummy port `ext`
(the outside world: frames the edge sends out appear in ext's tx pcap, frames injected on ext come in).
"""

from __future__ import annotations

from agent_cluster import Cluster, derived_mac
from tuplenet.model import LNAT, LR, LS, LSP, LSR

PATCH_IP, PATCH_MAC = "255.255.255.255", "ff:ff:ff:ff:ff:ee"
VIP = "172.16.0.2"
EXT_GW = "172.16.0.1"
EXT_GW_MAC = "02:ee:00:00:00:01"
INTERNET = "8.8.8.8"
EDGE = "hv2"
LS_OUT_ID, LR_EDGE_ID = 6, 4


def edge(c: Cluster, static_gw: bool = True) -> dict[str, LSP]:
    """Build the topology; with `static_gw` the outside gateway is a known port (no ARP needed)."""
    h = c.host(EDGE)
    h.vsctl("--may-exist", "add-br", "br-phy")  # standalone: a learning switch
    h.add_vm_port("ext", bridge="br-phy")
    c.put(LS("LS-A", 1), LS("LS-M", 5), LS("LS-out", LS_OUT_ID), LR("LR-central", 3), LR("LR-edge", LR_EDGE_ID, EDGE))
    c.link("LR-central", "LS-A", "10.10.1.1", 24, derived_mac("10.10.1.1"))
    c.link("LR-central", "LS-M", "100.64.88.254", 24, derived_mac("100.64.88.254"))
    c.link("LR-edge", "LS-M", "100.64.88.100", 24, derived_mac("100.64.88.100"))
    c.link("LR-edge", "LS-out", VIP, 24, derived_mac(VIP))
    c.put(LSR("LR-central", "out", "0.0.0.0", 0, "100.64.88.100", "LR-central_to_LS-M"),
          LSR("LR-edge", "out", "0.0.0.0", 0, EXT_GW, "LR-edge_to_LS-out"),
          LSR("LR-edge", "virt", "10.10.0.0", 16, "100.64.88.254", "LR-edge_to_LS-M"),
          LSP("LS-out", "phy", PATCH_IP, PATCH_MAC, "br-phy", EDGE))
    if static_gw:
        c.put(LSP("LS-out", "extgw", EXT_GW, EXT_GW_MAC))
    return {"vm1": c.vm("hv1", "LS-A", "vm1", "10.10.1.2", derived_mac("10.10.1.2")),
            "vm2": c.vm("hv3", "LS-A", "vm2", "10.10.1.3", derived_mac("10.10.1.3"))}


def nat(name: str, cidr: str, kind: str, xlate: str, lr: str = "LR-edge") -> LNAT:
    ip, prefix = cidr.split("/")
    return LNAT(lr, name, ip, int(prefix), kind, xlate)
