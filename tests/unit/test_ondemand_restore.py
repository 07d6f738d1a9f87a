"""The demand set restored from the previous run's status at start-up: existing remote ports come back
(with their chassis), anything malformed, gone, local or a router port is skipped."""

from __future__ import annotations

from topo_helpers import tutorial_facts

from tuplenet.agent.engine import Engine
from tuplenet.agent.ondemand import OnDemand
from tuplenet.agent.pipeline.ondemand import MODE_KEY, want_key, wantch_key
from tuplenet.agent.view import View


def test_restore_brings_back_remote_ports_and_skips_the_rest() -> None:
    f = tutorial_facts()
    f[MODE_KEY] = True
    view = View()
    od = OnDemand(view, True, idle=10, clock=lambda: 0.0, self_id="hv1")
    changed: set = set()
    for k, v in f.items():
        od.apply(k, v, changed)
    assert ("lsp", "LS-A", "vm2") in od.dormant
    status = {"ondemand": {"wanted": [["LS-A", "vm2"], ["LS-A", "vm1"], ["LS-A", "LS-A_to_LR-central"],
                                      ["LS-A", "gone"], ["LS-A"], "x", [1, 2], None]}}
    assert od.restore(status) == 1 and od.restore(status) == 0
    assert od.restore({}) == 0 and od.restore({"ondemand": None}) == 0 and od.restore({"ondemand": {"wanted": 5}}) == 0
    assert od.restore({"ondemand": [1]}) == 0 and od.restore([]) == 0  # type: ignore[arg-type]
    restored = od.take_changed()
    od.refresh(restored)
    assert set(od.wants) == {("lsp", "LS-A", "vm2")} and ("lsp", "LS-A", "vm2") in view.facts
    assert view.get(want_key("LS-A", "vm2")) and view.get(wantch_key("hv2"))
    e = Engine(view)
    e.full()
    assert e.owner_flows.get(("lsp", "LS-A", "vm2"))


def test_full_mode_restores_nothing() -> None:
    od = OnDemand(View(), False)
    assert od.restore({"ondemand": {"wanted": [["LS-A", "vm2"]]}}) == 0 and od.wants == {}


def test_check_reads_a_damaged_status_as_no_demand_set() -> None:
    from topo_helpers import build_view

    from tuplenet.agent.ondemand import demand_facts

    view = build_view(tutorial_facts())
    for bad in ({"ondemand": [1]}, {"ondemand": {"wanted": 5}}, {"ondemand": {"wanted": [["LS-A"]]}}, {}):
        assert demand_facts(view, bad) == {}
    assert demand_facts(view, {"ondemand": {"wanted": [["LS-A", "vm2"]]}}) == {
        want_key("LS-A", "vm2"): True, wantch_key("hv2"): True}
