"""Drawings of the logical topology as it is in etcd: a text tree for terminals and Graphviz for pictures.

Pure: takes decoded entities, returns text. Routers are drawn with the switches they link (through the
`lr link` port pairs) and their routes; switches with their ports and where each port is bound.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tuplenet.model import PATCH_PORT_IP


class Topology:
    def __init__(self, entities: list[Any]) -> None:
        self.ls = {e.name: e for e in entities if e.kind == "LS"}
        self.lr = {e.name: e for e in entities if e.kind == "LR"}
        self.chassis = {e.name: e for e in entities if e.kind == "chassis"}
        self.lsps: dict[str, list[Any]] = defaultdict(list)
        self.lrps: dict[str, list[Any]] = defaultdict(list)
        self.lsrs: dict[str, list[Any]] = defaultdict(list)
        self.lnats: dict[str, list[Any]] = defaultdict(list)
        children = {"lsp": self.lsps, "lrp": self.lrps, "lsr": self.lsrs, "lnat": self.lnats}
        for e in entities:
            if e.kind in children:
                children[e.kind][e.ls if e.kind == "lsp" else e.lr].append(e)
        by_name = {p.name: p for ports in self.lsps.values() for p in ports}
        # router port -> the switch it is linked to (peer names, as 0.3 links them)
        self.link: dict[tuple[str, str], str] = {}
        for lr, ports in self.lrps.items():
            for p in ports:
                peer = by_name.get(p.peer or "")
                if peer is not None:
                    self.link[(lr, p.name)] = peer.ls

    def vm_ports(self, ls: str) -> list[Any]:
        return sorted((p for p in self.lsps.get(ls, []) if not p.peer), key=lambda p: p.name)

    def patch_ports(self, ls: str) -> list[Any]:
        return [p for p in self.lsps.get(ls, []) if p.ip == PATCH_PORT_IP]


def _where(p: Any) -> str:
    return f"on {p.chassis}" if p.chassis else "unbound"


def text(entities: list[Any]) -> str:
    t = Topology(entities)
    out: list[str] = []
    drawn: set[str] = set()
    for name in sorted(t.lr):
        lr = t.lr[name]
        out.append(f"{name}  ({'pinned to ' + lr.chassis if lr.chassis else 'distributed'})")
        ports = sorted(t.lrps.get(name, []), key=lambda p: p.name)
        for i, p in enumerate(ports):
            ls = t.link.get((name, p.name), "(not linked)")
            last = i == len(ports) - 1
            out.append(f"  +-- {p.name} {p.ip}/{p.prefix} --- {ls}")
            for vm in t.vm_ports(ls):
                out.append(f"  {' ' if last else '|'}     {vm.name:<12} {vm.ip:<15} {_where(vm)}")
            drawn.add(ls)
        for r in sorted(t.lsrs.get(name, []), key=lambda r: r.name):
            out.append(f"  route {r.name}: {r.ip}/{r.prefix} via {r.next_hop} ({r.outport})")
        for n in sorted(t.lnats.get(name, []), key=lambda n: n.name):
            out.append(f"  nat {n.name}: {n.xlate_type} {n.ip}/{n.prefix} -> {n.xlate_ip}")
    for ls in sorted(set(t.ls) - drawn):
        out.append(f"{ls}  (switch, no router)")
        for vm in t.vm_ports(ls):
            out.append(f"        {vm.name:<12} {vm.ip:<15} {_where(vm)}")
    for ls in sorted(t.ls):
        for p in t.patch_ports(ls):
            out.append(f"{ls} -- patch port {p.name} to bridge {p.peer} on {p.chassis}")
    if t.chassis:
        out.append("chassis: " + ", ".join(f"{c.name} ({c.ip})" for c in sorted(t.chassis.values(),
                                                                                 key=lambda c: c.name)))
    return "\n".join(out) + "\n" if out else "empty topology\n"


_NL = "\\n"  # a line break inside a Graphviz label


def _q(s: str) -> str:
    return '"' + s.replace('"', '\\"') + '"'


def dot(entities: list[Any]) -> str:
    t = Topology(entities)
    out = ["digraph tuplenet {", "  rankdir=LR; node [shape=box, style=rounded, fontname=Helvetica];"]
    for name, lr in sorted(t.lr.items()):
        label = name + (f"{_NL}pinned to {lr.chassis}" if lr.chassis else "")
        out.append(f"  {_q('LR/' + name)} [label={_q(label)}, shape=ellipse, style=filled, fillcolor=palegreen];")
    for name in sorted(t.ls):
        out.append(f"  {_q('LS/' + name)} [label={_q(name)}, style=filled, fillcolor=lightyellow];")
        for vm in t.vm_ports(name):
            label = _NL.join((vm.name, vm.ip, _where(vm)))
            out.append(f"  {_q('P/' + name + '/' + vm.name)} [label={_q(label)}];")
            out.append(f"  {_q('LS/' + name)} -> {_q('P/' + name + '/' + vm.name)} [dir=both];")
    for (lr, port), ls in sorted(t.link.items()):
        p = next(x for x in t.lrps[lr] if x.name == port)
        out.append(f"  {_q('LR/' + lr)} -> {_q('LS/' + ls)} [label={_q(f'{p.ip}/{p.prefix}')}, dir=both];")
    out.append("}")
    return "\n".join(out) + "\n"
