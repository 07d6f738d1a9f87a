"""A port whose claim is in flight is bound here for flow purposes (binding.claiming_key), and only while
the claim rule allows the claim: the local fact goes when the claim comes back, loses, or is deferred."""

from __future__ import annotations

from topo_helpers import build_view

from tuplenet.agent import binding
from tuplenet.agent import tables as T
from tuplenet.agent.binding import Binder, claiming_key
from tuplenet.agent.engine import Engine
from tuplenet.agent.view import View
from tuplenet.model import LS, LSP, Chassis

MAC = "f2:00:00:00:00:01"
KEY = ("lsp", "ls1", "vm1")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def view(chassis: str | None = None) -> View:
    return build_view({("self",): "hv1", ("LS", "ls1"): LS("ls1", 1),
                       ("chassis", "hv1"): Chassis("hv1", "192.168.100.2", 1),
                       ("chassis", "hv2"): Chassis("hv2", "192.168.100.3", 1),
                       ("bind", "vm1"): 5, KEY: LSP("ls1", "vm1", "10.0.0.1", MAC, None, chassis)})


def step(v: View, b: Binder, changed: set[tuple] | None) -> tuple[list, set[tuple]]:
    """What the daemon does before the engine runs: decide, publish the claiming facts."""
    claims = b.update(v, changed)
    out: set[tuple] = set()
    for k, val in b.claiming_changes():
        v.apply(k, val, out)
    return claims, out


def classify(e: Engine) -> list:
    return [f for f in e.owner_flows.get(KEY, ()) if f.table == T.CLASSIFY]


def test_claim_in_flight_installs_local_flows_then_the_fact_goes_when_it_comes_back() -> None:
    v, b = view(), Binder(Clock())
    e = Engine(v)
    e.full()
    assert not classify(e)  # unbound: nothing local yet
    claims, ch = step(v, b, None)
    assert [k for k, _ in claims] == [KEY] and ch == {claiming_key(KEY)}
    e.process(ch)
    assert classify(e) and all(any(m.field == "in_port" and m.value == 5 for m in f.match) for f in classify(e))
    before = {f.cookie for f in e.owner_flows[KEY]}
    # The claim comes back through the watch: bound here, the local fact is dropped, flows unchanged.
    changed: set[tuple] = set()
    v.apply(KEY, LSP("ls1", "vm1", "10.0.0.1", MAC, None, "hv1"), changed)
    claims, ch = step(v, b, changed)
    assert not claims and claiming_key(KEY) in ch and claiming_key(KEY) not in v.facts
    d = e.process(changed | ch)
    assert {f.cookie for f in e.owner_flows[KEY]} == before and not d.deletes and not d.adds


def test_lost_claim_drops_the_local_flows() -> None:
    v, b = view(), Binder(Clock())
    e = Engine(v)
    e.full()
    _, ch = step(v, b, None)
    e.process(ch)
    assert classify(e)
    # Another live chassis won the compare-and-swap: its write comes back, ours failed.
    changed: set[tuple] = set()
    v.apply(binding.live_key("hv2"), True, changed)
    v.apply(KEY, LSP("ls1", "vm1", "10.0.0.1", MAC, None, "hv2"), changed)
    claims, ch = step(v, b, changed)
    assert not claims and claiming_key(KEY) not in v.facts
    e.process(changed | ch)
    assert not classify(e)
    assert [f.table for f in e.owner_flows[KEY] if f.table == T.LS_IN_LOOKUP]  # reached through hv2 now


def test_deferred_claim_is_not_bound_here_and_interface_gone_drops_the_fact() -> None:
    clock = Clock()
    v, b = view(), Binder(clock)
    step(v, b, None)
    # Lost to a chassis that then died: the claim rule allows a new claim, but the backoff defers it.
    changed: set[tuple] = set()
    v.apply(KEY, LSP("ls1", "vm1", "10.0.0.1", MAC, None, "hv2"), changed)
    v.apply(binding.live_key("hv2"), True, changed)
    step(v, b, changed)
    changed = set()
    v.apply(binding.live_key("hv2"), None, changed)
    clock.t += 0.1
    claims, ch = step(v, b, changed)
    assert not claims and claiming_key(KEY) not in v.facts
    clock.t += binding.BACKOFF_FIRST
    claims, ch = step(v, b, set())  # due: claimed again, bound here again for flows
    assert [k for k, _ in claims] == [KEY] and claiming_key(KEY) in v.facts
    changed = set()
    v.apply(("bind", "vm1"), None, changed)
    step(v, b, changed)
    assert claiming_key(KEY) not in v.facts and b.status()["claiming"] == 0


def test_claim_goes_when_the_interface_row_appears_flows_when_it_has_an_ofport() -> None:
    v, b = view(), Binder(Clock())
    changed: set[tuple] = set()
    v.apply(("bind", "vm1"), None, changed)
    e = Engine(v)
    e.full()
    claims, ch = step(v, b, None)
    assert not claims  # no interface at all
    changed = set()
    v.apply(("plugged", "vm1"), True, changed)  # the row is in OVSDB, ovs-vswitchd has not given an ofport
    claims, ch = step(v, b, changed)
    assert [k for k, _ in claims] == [KEY] and claiming_key(KEY) in v.facts
    e.process(changed | ch)
    assert not classify(e)  # flows need the ofport
    changed = set()
    v.apply(("bind", "vm1"), 5, changed)
    claims, ch = step(v, b, changed)
    assert not claims and claiming_key(KEY) in v.facts  # still in flight: not claimed twice
    e.process(changed | ch)
    assert classify(e)
    changed = set()
    v.apply(("bind", "vm1"), None, changed)
    v.apply(("plugged", "vm1"), None, changed)
    step(v, b, changed)
    assert claiming_key(KEY) not in v.facts


def test_a_claims_log_line_is_written_after_the_claim_leaves(caplog) -> None:
    v, b = view(), Binder(Clock())
    with caplog.at_level("INFO", logger="tuplenet.agent.binding"):
        claims, _ = step(v, b, None)
        assert [k for k, _ in claims] == [KEY]
        assert not caplog.records  # the daemon sends the claims first (daemon._bind), then flushes
        b.flush_log()
        assert [r.getMessage() for r in caplog.records] == ["iface-id vm1: claiming ls1/vm1 (unbound)"]
        caplog.clear()
        changed: set[tuple] = set()
        v.apply(KEY, LSP("ls1", "vm1", "10.0.0.1", MAC, None, "hv1"), changed)
        step(v, b, changed)
        step(v, b, set())  # an update without flush_log still writes the previous one's lines first
        assert [r.getMessage() for r in caplog.records] == ["iface-id vm1: bound to ls1/vm1"]
