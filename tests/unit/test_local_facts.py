"""local_facts: the keyed facts' diff between two OVS snapshots equals the difference of their full facts,
whether the snapshots share maps (the OVSDB thread reuses unchanged ones) or not."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuplenet.agent.config import Config
from tuplenet.agent.local_facts import FactSync, keyed_fact_changes, keyed_facts, local_facts, other_facts
from tuplenet.agent.ovsdb_model import OvsState
from tuplenet.agent.view import View

names = st.sampled_from("abcd")
ofmaps = st.dictionaries(names, st.integers(1, 3), max_size=3)


def apply(facts: dict, delta) -> dict:
    out = dict(facts)
    for k, v in delta:
        if v is None:
            out.pop(k)  # a removal names a fact that was there
        else:
            out[k] = v
    return out


def test_port_up_then_down() -> None:
    s0 = OvsState(bindings={"vm1": 3}, plugged=frozenset({"vm1"}), tunnels={"hv2": 9})
    s1 = OvsState(bindings={"vm1": 3, "vm2": 4}, plugged=frozenset({"vm1", "vm2"}), tunnels=s0.tunnels)
    assert sorted(keyed_fact_changes(s0, s1)) == [(("bind", "vm2"), 4), (("plugged", "vm2"), True)]
    assert sorted(keyed_fact_changes(s1, s0)) == [(("bind", "vm2"), None), (("plugged", "vm2"), None)]
    assert list(keyed_fact_changes(s1, s1)) == []


def test_ofport_change_and_full_from_none() -> None:
    s0 = OvsState(bindings={"vm1": 3}, patch_ofports={"lsp": 5})
    s1 = OvsState(bindings={"vm1": 7}, patch_ofports={"lsp": 5})
    assert list(keyed_fact_changes(s0, s1)) == [(("bind", "vm1"), 7)]
    assert dict(keyed_fact_changes(None, s1)) == keyed_facts(s1) == {("bind", "vm1"): 7, ("patchport", "lsp"): 5}


def test_local_facts_are_keyed_plus_others() -> None:
    cfg = Config(endpoints="", prefix="/tn/", tunnel_ip="192.168.100.2", logdir="", rundir="", ovsdb_path="",
                 ovs_rundir="", bridge="br-int", ondemand=True, gateway=False, redirect=False, untunnel=False,
                 hash_fn="hash", ipfix_collector=None, ipfix_sampling=0, datapath_type=None, liveness_ttl=10)
    s = OvsState(system_id="other", bindings={"vm1": 3}, flowbased_ofport=2,
                 tunnel_bfd={"hv2": {"forwarding": "false", "state": "up"}})
    facts = local_facts(s, cfg, "hv1")
    assert facts[("self",)] == "hv1" and facts[("tunfb",)] == 2 and facts[("tundead", "hv2")] is True
    assert facts == {**keyed_facts(s), **other_facts(s, cfg, "hv1")}


bfd_states = st.sampled_from([{}, {"forwarding": "true", "state": "up"},
                              {"forwarding": "false", "state": "down", "flap_count": "1"}])
bfdmaps = st.dictionaries(names, bfd_states, max_size=3)


@settings(max_examples=400, derandomize=True, deadline=None, database=None)  # a property, not an input path
@given(st.lists(st.tuples(ofmaps, st.frozensets(names), ofmaps, ofmaps, bfdmaps, st.booleans()), min_size=1,
                max_size=4))
def test_delta_replays_full_facts(steps) -> None:
    prev: OvsState | None = None
    facts: dict = {}
    for bindings, plugged, patches, tunnels, bfd, share in steps:
        if share and prev is not None:  # unchanged maps are the very objects, as the OVSDB thread reuses them
            bindings = prev.bindings if bindings == prev.bindings else bindings
            plugged = prev.plugged if plugged == prev.plugged else plugged
            tunnels = prev.tunnels if tunnels == prev.tunnels else tunnels
            bfd = prev.tunnel_bfd if bfd == prev.tunnel_bfd else bfd
        s = OvsState(bindings=bindings, plugged=plugged, patch_ofports=patches, tunnels=tunnels, tunnel_bfd=bfd)
        facts = apply(facts, keyed_fact_changes(prev, s))
        assert facts == keyed_facts(s)
        prev = s


class FailingView(View):
    """Raises on the n-th apply, as a pipeline bug behind the barrier would."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.calls, self.fail_at = 0, fail_at

    def apply(self, key, obj, changed, created=0) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("boom")
        super().apply(key, obj, changed, created)


def test_fact_sync_keeps_the_view_equal_and_recovers_from_a_failed_apply() -> None:
    sync, view = FactSync(), FailingView(fail_at=5)
    s0 = OvsState(bindings={"vm1": 3}, plugged=frozenset({"vm1"}))
    changed: set = set()
    sync.apply(view, s0, {("self",): "hv1"}, changed)  # applies 3 facts
    assert view.facts == sync.facts == {**keyed_facts(s0), ("self",): "hv1"}
    assert set(view.facts) <= changed  # (and the indexes they are in)
    s1 = OvsState(bindings={"vm1": 3, "vmx": 9, "vmy": 10}, plugged=s0.plugged)
    with pytest.raises(RuntimeError):  # one of vmx/vmy is in the view, the other apply fails
        sync.apply(view, s1, {("self",): "hv1"}, set())
    assert len([k for k in view.facts if k[0] == "bind"]) == 2
    s2 = OvsState(bindings={"vm1": 3}, plugged=s0.plugged)  # back to s0's facts: the half-applied one must go
    sync.apply(view, s2, {("self",): "hv1", ("gateway",): True}, set())
    assert view.facts == sync.facts == {**keyed_facts(s2), ("self",): "hv1", ("gateway",): True}
    s3 = OvsState(bindings=s2.bindings, plugged=s2.plugged)  # maps shared: only the others are looked at
    changed = set()
    sync.apply(view, s3, {("self",): "hv1"}, changed)
    assert ("gateway",) in changed and not any(k[0] in ("bind", "plugged") for k in changed)
    assert view.facts == {**keyed_facts(s3), ("self",): "hv1"}
