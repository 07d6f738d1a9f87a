"""The binding claim rule, its backoff and incremental recomputation, and the pipeline's use of it."""

from __future__ import annotations

from topo_helpers import build_view

from tuplenet.agent import binding
from tuplenet.agent import tables as T
from tuplenet.agent.binding import AMBIGUOUS, BOUND, CLAIM, CONFLICT, NONE, REQUESTED, Binder, decide
from tuplenet.agent.engine import Engine
from tuplenet.agent.readiness import Readiness
from tuplenet.agent.view import View
from tuplenet.model import LS, LSP, Chassis

MAC1, MAC2 = "f2:00:00:00:00:01", "f2:00:00:00:00:02"


def facts(**lsps: LSP) -> dict[tuple, object]:
    f: dict[tuple, object] = {("self",): "hv1", ("LS", "ls1"): LS("ls1", 1), ("LS", "ls2"): LS("ls2", 2),
                              ("chassis", "hv1"): Chassis("hv1", "192.168.100.2", 1),
                              ("chassis", "hv2"): Chassis("hv2", "192.168.100.3", 1),
                              ("bind", "vm1"): 5}
    for lsp in lsps.values():
        f[("lsp", lsp.ls, lsp.name)] = lsp
    return f


def vm(ls: str = "ls1", chassis: str | None = None, requested: str | None = None, mac: str = MAC1) -> LSP:
    ip = "10.0.0.1" if ls == "ls1" else "10.1.0.1"
    return LSP(ls, "vm1", ip, mac, None, chassis, requested)


def test_rule() -> None:
    def d(*lsps: LSP, live: tuple[str, ...] = ()) -> binding.Decision:
        f = facts(**{f"p{i}": p for i, p in enumerate(lsps)})
        f.update({binding.live_key(c): True for c in live})
        return decide(build_view(f), "vm1")

    assert d().state == NONE
    assert d(LSP("ls1", "vm1", "10.0.0.1", MAC1, "lr-port")).state == NONE  # router-facing ports never bind
    assert d(vm()).state == CLAIM
    assert d(vm(chassis="hv1")).state == BOUND
    assert d(vm(chassis="hv2"), live=("hv2",)) == binding.Decision(CONFLICT, ("lsp", "ls1", "vm1"), "hv2")
    assert d(vm(chassis="hv2")).state == CLAIM  # hv2 not live
    assert d(vm(chassis="hv2", requested="hv1"), live=("hv2",)).state == CLAIM
    assert d(vm(requested="hv2")).state == REQUESTED  # never claimed, even unbound
    assert d(vm(chassis="hv1", requested="hv2")).state == BOUND  # kept until hv2 takes it
    # One name in two switches: only where exactly one is recorded here.
    assert d(vm(), vm("ls2")).state == AMBIGUOUS
    assert d(vm(chassis="hv1"), vm("ls2", chassis="hv1")).state == AMBIGUOUS
    got = d(vm(), vm("ls2", chassis="hv1"))
    assert (got.state, got.lsp) == (BOUND, ("lsp", "ls2", "vm1"))
    assert d(vm(chassis="hv2"), vm("ls2", chassis="hv2"), live=("hv2",)).state == AMBIGUOUS


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def apply(v: View, key: tuple, obj: object) -> set[tuple]:
    changed: set[tuple] = set()
    v.apply(key, obj, changed)
    return changed


def test_claims_back_off_when_lost_again_and_reset_after_holding() -> None:
    clock = Clock()
    b = Binder(clock)
    v = build_view(facts(p=vm()))
    key = ("lsp", "ls1", "vm1")
    assert [k for k, _ in b.update(v, None)] == [key]
    # Someone else (an agent ignoring the rule, a split view of liveness) takes it, and again and again:
    times = []
    for _ in range(8):
        b.update(v, apply(v, key, vm(chassis="hv1")))  # our claim comes back through the watch ...
        changed = apply(v, key, vm(chassis="hv9"))  # ... and is lost again
        while not b.update(v, changed):
            changed = set()
            assert b.next_due() is not None
            clock.t = b.next_due()
        times.append(clock.t)
    gaps = [round(b2 - a2) for a2, b2 in zip([1000.0, *times], times, strict=False)]
    assert gaps == [1, 2, 4, 8, 16, 32, 60, 60]
    assert b.claims == 9 and b.status()["deferred"] == 8
    # Held for a minute: the next loss is claimed back at once.
    apply(v, key, vm(chassis="hv1"))
    b.update(v, {key})
    clock.t += 61
    b.update(v, {key})
    assert b.update(v, apply(v, key, vm(chassis="hv9")))


def test_only_touched_iface_ids_are_decided() -> None:
    b = Binder(Clock())
    f = facts(p=vm(chassis="hv2"))
    f[("bind", "vm7")] = 6
    f[("lsp", "ls1", "vm7")] = LSP("ls1", "vm7", "10.0.0.7", "f2:00:00:00:00:07", None, "hv2")
    f[binding.live_key("hv2")] = True
    v = build_view(f)
    assert b.update(v, None) == []
    assert {i: d.state for i, d in b.states.items()} == {"vm1": CONFLICT, "vm7": CONFLICT}
    calls: list[str] = []
    real = binding.decide
    try:
        binding.decide = lambda view, i: calls.append(i) or real(view, i)  # type: ignore[assignment]
        assert b.update(v, apply(v, ("lsp", "ls2", "other"), LSP("ls2", "other", "10.1.0.9", MAC2))) == []
        assert calls == []
        # hv2's liveness key expires: exactly its ports are re-decided and claimed.
        claims = b.update(v, apply(v, binding.live_key("hv2"), None))
    finally:
        binding.decide = real  # type: ignore[assignment]
    assert sorted(calls) == ["vm1", "vm7"]
    assert sorted(k for k, _ in claims) == [("lsp", "ls1", "vm1"), ("lsp", "ls1", "vm7")]


def test_status_lists_conflicts_and_ambiguity() -> None:
    b = Binder(Clock())
    f = facts(p=vm(chassis="hv2"))
    f[binding.live_key("hv2")] = True
    f[("bind", "vm3")] = 7
    for ls in ("ls1", "ls2"):
        f[("lsp", ls, "vm3")] = LSP(ls, "vm3", "10.0.0.3" if ls == "ls1" else "10.1.0.3", MAC2)
    b.update(build_view(f), None)
    st = b.status()
    assert st["conflicts"] == {"vm1": {"lsp": "ls1/vm1", "chassis": "hv2"}}
    assert st["ambiguous"] == {"vm3": ["ls1/vm3", "ls2/vm3"]}
    assert st["bound"] == 0


def local_flows(e: Engine, ofport: int) -> dict[str, set[int]]:
    """Datapaths that classify frames from `ofport` and that deliver to it."""
    into = {a.value for f in e.active.values() if f.table == T.CLASSIFY
            and any(m.field == "in_port" and m.value == ofport for m in f.match)
            for a in f.actions if getattr(a, "field", None) == "metadata"}
    out = {next(m.value for m in f.match if m.field == "metadata") for f in e.active.values()
           if f.table == T.LS_OUT_PORT and any(getattr(a, "value", None) == ofport for a in f.actions)}
    return {"into": into, "out": out}


def test_one_vm_is_classified_into_one_switch_only() -> None:
    """Two tenants' switches each with an lsp vm1 recorded on this host: the interface belongs to neither
    (ambiguous); once only one is recorded here, only that switch sees it."""
    e = Engine(build_view(facts(a=vm(chassis="hv1"), b=vm("ls2", chassis="hv1", mac=MAC2))))
    e.full()
    assert local_flows(e, 5) == {"into": set(), "out": set()}
    e.view.apply(("lsp", "ls2", "vm1"), vm("ls2", mac=MAC2), changed := set())
    e.process(changed)
    assert local_flows(e, 5) == {"into": {1}, "out": {1}}


def test_readiness_needs_every_flow_installed() -> None:
    v = build_view(facts(p=vm(chassis="hv1")))
    e = Engine(v)
    e.full()
    r = Readiness()
    assert r.update(v, e, set(), None) is None  # nothing installed yet: not ready, nothing to change
    installed = set(e.desired())
    assert r.update(v, e, installed, set()) == {"vm1": 5}  # re-checked as waiting, no change needed
    assert r.update(v, e, installed, set()) is None
    e.view.apply(("lsp", "ls1", "vm1"), None, changed := set())
    d, _ = e.process(changed)
    assert r.update(v, e, installed - set(d), changed) == {}


def test_a_port_requested_here_is_ready_while_its_claim_is_on_its_way() -> None:
    """Peers tunnel to a port's requested chassis before its claim: its mark need not wait for the claim to
    come back from etcd. Bound to another (dead) chassis, peers still go there: then it waits."""
    from tuplenet.agent.binding import claiming_key

    for holder, ready in ((None, {"vm1": 5}), ("hv2", None)):
        f = facts(p=vm(chassis=holder, requested="hv1"))
        f[claiming_key(("lsp", "ls1", "vm1"))] = True
        v = build_view(f)
        e = Engine(v)
        e.full()
        assert Readiness().update(v, e, set(e.desired()), None) == ready, holder
    v = build_view(facts(p=vm(requested="hv1")))  # no claim of ours in flight: no local flows, not ready
    e = Engine(v)
    e.full()
    assert Readiness().update(v, e, set(e.desired()), None) is None


def test_patch_lsp_named_like_a_vm_interface_does_not_capture_it() -> None:
    """A patch lsp (another tenant's switch) named like a VM's iface-id: the VM's interface is not an OVS
    patch port the agent made, so the patch flows must not classify its frames into that switch."""
    f = facts(p=vm(chassis="hv1"))
    f[("lsp", "ls2", "vm1")] = LSP("ls2", "vm1", "255.255.255.255", "ff:ff:ff:ff:ff:ee", "br-phy", "hv1")
    e = Engine(build_view(f))
    e.full()
    assert local_flows(e, 5) == {"into": {1}, "out": {1}}
    # Our own patch port (a separate fact from VM interfaces) is what the patch lsp uses.
    e.view.apply(("patchport", "vm1"), 9, changed := set())
    e.process(changed)
    assert local_flows(e, 9) == {"into": {2}, "out": {2}}
    assert local_flows(e, 5) == {"into": {1}, "out": {1}}
