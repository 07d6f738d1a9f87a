"""Topology drawings from entities (pure)."""

from __future__ import annotations

from tuplenet.cli import graph
from tuplenet.model import LNAT, LR, LRP, LS, LSP, LSR, Chassis

ENTITIES = [
    LS("LS-A", 1), LS("LS-B", 2), LS("LS-X", 4), LR("LR-central", 3), LR("edge", 5, "hv2"),
    LRP("LR-central", "LR-central_to_LS-A", "10.10.1.1", 24, "f2:01:0a:0a:01:01", "LS-A_to_LR-central"),
    LSP("LS-A", "LS-A_to_LR-central", "10.10.1.1", "f2:01:0a:0a:01:01", "LR-central_to_LS-A"),
    LRP("LR-central", "LR-central_to_LS-B", "10.10.2.1", 24, "f2:01:0a:0a:02:01", "LS-B_to_LR-central"),
    LSP("LS-B", "LS-B_to_LR-central", "10.10.2.1", "f2:01:0a:0a:02:01", "LR-central_to_LS-B"),
    LSP("LS-A", "vm1", "10.10.1.2", "f2:01:0a:0a:01:02", None, "hv1"),
    LSP("LS-B", "vm3", "10.10.2.2", "f2:01:0a:0a:02:02"),
    LSP("LS-X", "x1", "10.9.0.2", "f2:01:0a:09:00:02", None, "hv3"),
    LSR("LR-central", "outside", "0.0.0.0", 0, "10.10.2.254", "LR-central_to_LS-B"),
    LNAT("LR-central", "snat1", "10.10.1.0", 24, "snat", "172.20.0.5"),
    Chassis("hv1", "172.31.0.2", 1),
]


def test_text_drawing() -> None:
    text = graph.text(ENTITIES)
    assert text.splitlines()[:6] == [
        "LR-central  (distributed)",
        "  +-- LR-central_to_LS-A 10.10.1.1/24 --- LS-A",
        "  |     vm1          10.10.1.2       on hv1",
        "  +-- LR-central_to_LS-B 10.10.2.1/24 --- LS-B",
        "        vm3          10.10.2.2       unbound",
        "  route outside: 0.0.0.0/0 via 10.10.2.254 (LR-central_to_LS-B)",
    ]
    assert "  nat snat1: snat 10.10.1.0/24 -> 172.20.0.5" in text
    assert "edge  (pinned to hv2)" in text
    assert "LS-X  (switch, no router)" in text and "x1" in text
    assert text.endswith("chassis: hv1 (172.31.0.2)\n")
    assert graph.text([]) == "empty topology\n"


def test_graphviz_source() -> None:
    src = graph.dot(ENTITIES)
    assert src.startswith("digraph tuplenet {") and src.endswith("}\n")
    assert '"LR/LR-central" -> "LS/LS-A" [label="10.10.1.1/24", dir=both];' in src
    assert '"P/LS-A/vm1" [label="vm1\\n10.10.1.2\\non hv1"];' in src
    assert '"LR/edge" [label="edge\\npinned to hv2"' in src
