"""On-demand hosts keep the duplicate rule of full mode: a later port repeating the IP or MAC of an older port
in its switch is ignored, even when the older one is a remote port nobody here talked to (held outside the
view). Otherwise a port bound here could take over a remote neighbour's address for this host's VMs (its
ARP answer and lookup flows would be the only ones here)."""

from __future__ import annotations

import pytest
from topo_helpers import build_view, tutorial_facts

from tuplenet.agent.engine import Engine
from tuplenet.agent.ondemand import OnDemand
from tuplenet.agent.pipeline.ondemand import MODE_KEY
from tuplenet.agent.view import View
from tuplenet.model import LSP

VM2 = ("lsp", "LS-A", "vm2")  # remote (hv2), created first
EVIL = ("lsp", "LS-A", "evil")  # bound here (hv1), created later

_RIVALS = {
    "ip": LSP("LS-A", "evil", "10.10.1.3", "f2:01:0a:0a:01:66", None, "hv1"),
    "mac": LSP("LS-A", "evil", "10.10.1.66", "f2:01:0a:0a:01:03", None, "hv1"),
}


def _facts(rival: str, on: bool) -> tuple[dict, dict]:
    f = tutorial_facts()
    f[MODE_KEY] = on
    f[EVIL] = _RIVALS[rival]
    f[("bind", "evil")] = 7
    created = {k: 5 for k in f if k[0] == "lsp"}
    created[EVIL] = 9
    return f, created


def _gated(f: dict, created: dict, order: list[tuple]) -> tuple[Engine, OnDemand]:
    view = View()
    od = OnDemand(view, bool(f.get(MODE_KEY)), idle=10, clock=lambda: 0.0, self_id=f[("self",)])
    changed: set = set()
    for k in order:
        od.apply(k, f[k], changed, created.get(k, 0))
    e = Engine(view)
    e.full()
    return e, od


@pytest.mark.parametrize("rival", ["ip", "mac"])
@pytest.mark.parametrize("evil_first", [False, True])
def test_a_local_port_repeating_a_dormant_ports_address_stays_ignored(rival: str, evil_first: bool) -> None:
    f, created = _facts(rival, on=True)
    order = [k for k in f if k not in (EVIL, VM2)]
    order += [EVIL, VM2] if evil_first else [VM2, EVIL]
    e, _od = _gated(f, created, order)
    full, _ = _gated(*_facts(rival, on=False), order)
    assert full.owner_flows.get(EVIL, ()) == ()  # full mode: the later port produces nothing
    assert e.owner_flows.get(EVIL, ()) == ()  # and on demand neither
    assert e.owner_flows.get(VM2, ()) == ()  # the remote one still has no flows until talked to


def test_waking_a_remote_port_wakes_the_dormant_ports_it_competes_with() -> None:
    """A miss naming only the later of two remote duplicates (its MAC, another IP) must not give it the
    contested address here: the older one is brought into the view too, and the later one stays ignored."""
    f = tutorial_facts()
    f[MODE_KEY] = True
    late = ("lsp", "LS-A", "late")
    f[late] = LSP("LS-A", "late", "10.10.1.3", "f2:01:0a:0a:01:77", None, "hv2")  # vm2's IP, own MAC
    created = {k: 5 for k in f if k[0] == "lsp"}
    created[late] = 9
    e, od = _gated(f, created, list(f))
    assert late in od.dormant and VM2 in od.dormant
    od.touch(1, "10.10.1.99", int("f2010a0a0177", 16))  # a frame to late's MAC, another IP
    changed = od.take_changed()
    od.refresh(changed)
    e.process(changed)
    assert late in od.wants and VM2 in e.view.facts
    assert e.owner_flows.get(late, ()) == ()  # shadowed by vm2, as in full mode
    full = Engine(build_view({**f, ("want", "LS-A", "late"): True, ("wantch", "hv2"): True}))
    full.view.created.update(created)
    full.full()
    assert full.owner_flows.get(late, ()) == ()
