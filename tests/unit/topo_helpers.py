"""Build agent views from small topologies without etcd or OVS."""

from __future__ import annotations

from tuplenet.agent.view import View
from tuplenet.model import LR, LRP, LS, LSP, LSR, Chassis


def tutorial_facts(self_id: str = "hv1") -> dict[tuple, object]:
    """LS-A and LS-B behind LR-central; vm1 on hv1, vm2 on hv2, vm3 on hv1 in LS-B."""
    f: dict[tuple, object] = {
        ("self",): self_id,
        ("LS", "LS-A"): LS("LS-A", 1),
        ("LS", "LS-B"): LS("LS-B", 2),
        ("LR", "LR-central"): LR("LR-central", 3),
        ("lrp", "LR-central", "LR-central_to_LS-A"): LRP("LR-central", "LR-central_to_LS-A", "10.10.1.1", 24,
                                                         "f2:01:0a:0a:01:01", "LS-A_to_LR-central"),
        ("lrp", "LR-central", "LR-central_to_LS-B"): LRP("LR-central", "LR-central_to_LS-B", "10.10.2.1", 24,
                                                         "f2:01:0a:0a:02:01", "LS-B_to_LR-central"),
        ("lsp", "LS-A", "LS-A_to_LR-central"): LSP("LS-A", "LS-A_to_LR-central", "10.10.1.1", "f2:01:0a:0a:01:01",
                                                   "LR-central_to_LS-A"),
        ("lsp", "LS-B", "LS-B_to_LR-central"): LSP("LS-B", "LS-B_to_LR-central", "10.10.2.1", "f2:01:0a:0a:02:01",
                                                   "LR-central_to_LS-B"),
        ("lsp", "LS-A", "vm1"): LSP("LS-A", "vm1", "10.10.1.2", "f2:01:0a:0a:01:02", None, "hv1"),
        ("lsp", "LS-A", "vm2"): LSP("LS-A", "vm2", "10.10.1.3", "f2:01:0a:0a:01:03", None, "hv2"),
        ("lsp", "LS-B", "vm3"): LSP("LS-B", "vm3", "10.10.2.2", "f2:01:0a:0a:02:02", None, "hv1"),
        ("lsr", "LR-central", "default"): LSR("LR-central", "default", "0.0.0.0", 0, "10.10.2.254",
                                              "LR-central_to_LS-B"),
        ("chassis", "hv1"): Chassis("hv1", "192.168.100.2", 1),
        ("chassis", "hv2"): Chassis("hv2", "192.168.100.3", 1),
        ("bind", "vm1"): 1,
        ("bind", "vm3"): 2,
        ("tun", "hv2"): 10,
        ("tunfb",): 9,
    }
    return f


def build_view(facts: dict[tuple, object]) -> View:
    v = View()
    changed: set = set()
    for k, o in facts.items():
        v.apply(k, o, changed)
    return v


def edge_facts(self_id: str = "hv1", edges: int = 2) -> dict[tuple, object]:
    """The tutorial plus `edges` edge roads as `tpctl edge` builds them: transit switch tp_LS_m<i> between
    LR-central (100.64.88.<255-i>) and edge router tp_LR_edge<i> (100.64.88.100) pinned to hv<i+1>, and the
    central default route to each (one ECMP group)."""
    f = tutorial_facts(self_id)
    for i in range(1, edges + 1):
        ls, lr, ch = f"tp_LS_m{i}", f"tp_LR_edge{i}", f"hv{i + 1}"
        cip = f"100.64.88.{255 - i}"
        f[("LS", ls)] = LS(ls, 10 + i)
        f[("LR", lr)] = LR(lr, 20 + i, ch)
        for router, ip in (("LR-central", cip), (lr, "100.64.88.100")):
            mac = "f2:01:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
            f[("lrp", router, f"{router}_to_{ls}")] = LRP(router, f"{router}_to_{ls}", ip, 24, mac, f"{ls}_to_{router}")
            f[("lsp", ls, f"{ls}_to_{router}")] = LSP(ls, f"{ls}_to_{router}", ip, mac, f"{router}_to_{ls}")
        f[("lsr", "LR-central", f"to_edge{i}")] = LSR("LR-central", f"to_edge{i}", "0.0.0.0", 0, "100.64.88.100",
                                                      f"LR-central_to_{ls}")
        f[("chassis", ch)] = Chassis(ch, f"192.168.100.{i + 2}", 1)
        f[("tun", ch)] = 10 + i - 1
    return f
