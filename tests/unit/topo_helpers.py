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
