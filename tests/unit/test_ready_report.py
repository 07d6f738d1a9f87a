"""Port readiness reports in etcd: the record's encoding, the merge `tpctl lsp show` does, the agent's report
tracking (agent/readiness.py) and its background publisher (agent/ready_publish.py)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from topo_helpers import build_view

from fuzz_settings import fuzz
from tuplenet.agent.engine import Engine
from tuplenet.agent.readiness import Readiness
from tuplenet.agent.ready_publish import SETTLE, ReadyPublisher, start_for
from tuplenet.control import Controller
from tuplenet.control.memstore import MemStore
from tuplenet.control.readiness import port_states
from tuplenet.model import LS, LSP, Chassis, ModelError
from tuplenet.model.keys import ready_key
from tuplenet.model.ready import decode_report, encode_report, port_state
from tuplenet.store import StoreError

MAC = "f2:00:00:00:00:01"


# ---- the record ------------------------------------------------------------------------------------------

def test_encoding_is_deterministic_and_round_trips() -> None:
    pairs = [("LS-B", "vm2"), ("LS-A", "vm3"), ("LS-A", "vm1")]
    value = encode_report(pairs)
    assert value == '{"ready":{"LS-A":["vm1","vm3"],"LS-B":["vm2"]}}'
    assert encode_report(reversed(pairs)) == value
    assert decode_report(value) == frozenset(pairs)
    assert decode_report(encode_report([])) == frozenset()
    assert decode_report('{"ready":{"ls":["p"]},"later":1}') == {("ls", "p")}  # newer fields are ignored


@pytest.mark.parametrize("value", ["", "nope", "[]", "null", '{"ready":[]}', '{"ready":{"ls":"p"}}',
                                   '{"ready":{"ls":[1]}}', '{"ready":{"ls":[""]}}', '{"ready":{"":["p"]}}',
                                   '{"other":{}}', b"\xff\xfe", "[" * 100000])
def test_garbage_is_a_model_error(value: str | bytes) -> None:
    with pytest.raises(ModelError):
        decode_report(value)


def lsp(name: str = "vm1", chassis: str | None = "hv1", peer: str | None = None, ip: str = "10.0.0.2") -> LSP:
    return LSP("ls1", name, ip, MAC, peer, chassis)


def test_state_follows_the_bound_chassis_report() -> None:
    reports = {"hv1": frozenset({("ls1", "vm1")}), "hv2": frozenset({("ls1", "vm2")}), "hv3": None}
    assert port_state(lsp(), reports) == "true"
    assert port_state(lsp("vm2"), reports) == "false"  # hv2 lists it, but it is bound to hv1
    assert port_state(lsp("vm2", "hv2"), reports) == "true"
    assert port_state(LSP("ls2", "vm1", "10.0.0.2", MAC, None, "hv1"), reports) == "false"  # other switch
    assert port_state(lsp(chassis="hv3"), reports) == "unknown"  # undecodable report
    assert port_state(lsp(chassis="hv9"), reports) == "unknown"  # no report (0.3 agent, agent dead)
    assert port_state(lsp(chassis=None), reports) == "false"  # bound nowhere
    assert port_state(lsp(peer="lr1_to_ls1"), reports) is None  # router-facing: no readiness
    assert port_state(lsp(ip="255.255.255.255", peer="br-ex"), reports) is None  # patch port


def test_port_states_reads_only_the_bound_chassis_reports() -> None:
    store = MemStore()
    store.put(ready_key("hv1"), encode_report([("ls1", "a")]))
    store.put(ready_key("hv2"), "garbage")
    store.put(ready_key("hv3"), encode_report([("ls1", "c")]))  # nobody's bound there: never read
    ctl = Controller(store)
    ports = [lsp("a"), lsp("b"), lsp("c", "hv2"), lsp("d", "hv4"), lsp("e", peer="lr")]
    before = store.txn_count
    assert port_states(ctl, ports) == ["true", "false", "unknown", "unknown", None]
    assert store.txn_count == before + 1  # one read for three chassis
    assert ctl.warnings == ["communicate/ready/hv2: readiness report is not JSON: Expecting value: line 1 "
                            "column 1 (char 0)"]


def test_many_chassis_are_read_in_batches_under_the_txn_limit() -> None:
    store = MemStore()  # refuses more than 128 ops per txn, as etcd does by default
    ports = [lsp(f"p{i}", f"hv{i}") for i in range(250)]
    for i in range(0, 250, 2):
        store.put(ready_key(f"hv{i}"), encode_report([("ls1", f"p{i}")]))
    assert port_states(Controller(store), ports) == ["true" if i % 2 == 0 else "unknown" for i in range(250)]


@pytest.mark.fuzz
@fuzz
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                              lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                                                        max_size=4),
                              max_leaves=8).map(lambda d: json.dumps({"ready": d})),
                 st.dictionaries(st.text(max_size=6), st.lists(st.text(max_size=6), max_size=3), max_size=3)
                 .map(lambda d: json.dumps({"ready": d}))))
def test_fuzz_any_report_value_reads_as_a_state(value: str | bytes) -> None:
    """Whatever an agent (or anyone) wrote under communicate/ready/, lsp show prints a state, never a traceback."""
    try:
        pairs = decode_report(value)
    except ModelError:
        pairs = None
    else:
        assert all(isinstance(ls, str) and isinstance(n, str) and ls and n for ls, n in pairs)
        assert decode_report(encode_report(pairs)) == pairs
    store = MemStore()
    store.put(ready_key("hv1"), value if isinstance(value, str) else value.decode("latin-1"))
    [state] = port_states(Controller(store), [lsp()])
    assert state in ("true", "false", "unknown")


# ---- the agent's report --------------------------------------------------------------------------------

def facts(*lsps: LSP) -> dict[tuple, object]:
    f: dict[tuple, object] = {("self",): "hv1", ("LS", "ls1"): LS("ls1", 1), ("LS", "ls2"): LS("ls2", 2),
                              ("chassis", "hv1"): Chassis("hv1", "192.168.100.2", 1), ("bind", "vm1"): 5}
    for p in lsps:
        f[("lsp", p.ls, p.name)] = p
    return f


def test_report_follows_the_ready_ports_and_the_lsp_they_stand_for() -> None:
    v = build_view(facts(lsp()))
    e = Engine(v)
    e.full()
    r = Readiness()
    sunk: list[frozenset] = []
    r.sink = sunk.append
    r.update(v, e, set(), None)
    assert (r.report, sunk) == (frozenset(), [])  # not ready: nothing to publish
    r.update(v, e, set(e.desired()), set())
    assert (r.report, sunk) == ({("ls1", "vm1")}, [{("ls1", "vm1")}])
    # The port now stands for vm1 of another switch, on the same ofport: the OVSDB mark does not change,
    # the report must.
    changed: set[tuple] = set()
    v.apply(("lsp", "ls1", "vm1"), None, changed)
    v.apply(("lsp", "ls2", "vm1"), LSP("ls2", "vm1", "10.1.0.2", MAC, None, "hv1"), changed)
    e.process(changed)
    assert r.update(v, e, set(e.desired()), changed) is None
    assert sunk[-1] == {("ls2", "vm1")} and r.report == {("ls2", "vm1")}
    changed = set()
    v.apply(("bind", "vm1"), None, changed)  # the interface goes
    e.process(changed)
    assert r.update(v, e, set(e.desired()), changed) == {}
    assert sunk[-1] == frozenset() and len(sunk) == 3


# ---- the publisher (a recording store; the real etcd path is in tests/integration/test_ready_report_agent.py)

class Lease:
    def __init__(self, lease_id: int) -> None:
        self.id = lease_id


class RecordingStore:
    def __init__(self) -> None:
        self.puts: list[tuple[str, str, int | None]] = []
        self.fail = 0
        self.block = threading.Event()
        self.block.set()

    def put(self, key: str, value: str, lease: int | None = None) -> int:
        self.block.wait()
        if self.fail:
            self.fail -= 1
            raise StoreError("etcd away")
        self.puts.append((key, value, lease))
        return len(self.puts)


def wait(cond, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not met"
        time.sleep(0.005)


@pytest.fixture
def pub():
    made: list[ReadyPublisher] = []

    def make(store, lease, interval: float = 0.1, check: float = 0.05) -> ReadyPublisher:
        p = ReadyPublisher(store, "hv1", lease, interval=interval, check=check)
        made.append(p)
        p.start()
        return p

    yield make
    for p in made:
        p.stop()
        p.join(timeout=5)


def test_first_report_once_settled_a_burst_coalesced_into_the_latest(pub) -> None:
    store, lease = RecordingStore(), Lease(7)
    p = pub(store, lambda: lease, interval=0.2)
    t0 = time.monotonic()
    p.submit(frozenset({("ls1", "p0")}))
    wait(lambda: len(store.puts) == 1)
    assert SETTLE <= time.monotonic() - t0 < 5  # after the port-up that caused it (and soon, even on a busy box)
    assert store.puts == [("communicate/ready/hv1", '{"ready":{"ls1":["p0"]}}', 7)]
    for i in range(1, 200):
        p.submit(frozenset(("ls1", f"p{j}") for j in range(i + 1)))
    wait(lambda: decode_report(store.puts[-1][1]) == {("ls1", f"p{j}") for j in range(200)})
    assert len(store.puts) <= 3  # 200 changes, a write at most every 0.2 s
    time.sleep(0.3)
    assert len(store.puts) <= 3  # nothing new: nothing written


def test_submit_never_waits_for_etcd(pub) -> None:
    store, lease = RecordingStore(), Lease(7)
    store.block.clear()  # etcd hangs
    p = pub(store, lambda: lease)
    t0 = time.perf_counter()
    for i in range(1000):
        p.submit(frozenset({("ls1", f"p{i}")}))
    assert time.perf_counter() - t0 < 0.05
    store.block.set()
    wait(lambda: store.puts and store.puts[-1][1] == '{"ready":{"ls1":["p999"]}}')


def test_rewritten_under_a_regranted_lease_and_after_a_failure(pub) -> None:
    store, lease = RecordingStore(), Lease(7)
    p = pub(store, lambda: lease)
    p.submit(frozenset({("ls1", "a")}))
    wait(lambda: len(store.puts) == 1)
    lease.id = 8  # the old lease expired with the key: write it again under the new one
    wait(lambda: len(store.puts) == 2)
    assert store.puts[1] == ("communicate/ready/hv1", '{"ready":{"ls1":["a"]}}', 8)
    store.fail = 2
    p.submit(frozenset())
    wait(lambda: len(store.puts) == 3)
    assert p.errors == 2 and store.puts[2][1] == '{"ready":{}}'


def test_nothing_written_without_the_liveness_lease(pub) -> None:
    store, holder = RecordingStore(), {"lease": None}
    p = pub(store, lambda: holder["lease"])
    p.submit(frozenset({("ls1", "a")}))
    time.sleep(0.2)
    assert store.puts == []  # a key without a lease would outlive the agent
    holder["lease"] = Lease(3)
    wait(lambda: store.puts == [("communicate/ready/hv1", '{"ready":{"ls1":["a"]}}', 3)])


def test_start_for_publishes_the_current_report_and_follows_changes() -> None:
    store, lease = RecordingStore(), Lease(1)
    r = Readiness()
    r.report = frozenset({("ls1", "a")})
    p = start_for(r, store, "hv1", lambda: lease)
    try:
        wait(lambda: store.puts and store.puts[-1][1] == '{"ready":{"ls1":["a"]}}')
        r.sink(frozenset())
        wait(lambda: store.puts[-1][1] == '{"ready":{}}')
    finally:
        p.stop()
        p.join(timeout=5)
