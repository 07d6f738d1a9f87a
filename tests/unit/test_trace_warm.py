"""api/trace_warm.TraceWarmer: GET /trace's fabric rebuilt in the background after topology changes - one
build at a time, a burst coalesced into one build after the running one, the chassis of recent traces
prebuilt, a trace waiting for the build that covers its revision and never seeing an unfinished one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from tuplenet.api.trace_warm import TraceWarmer
from tuplenet.sandbox.procs import wait_for


class FakeFabric:
    def __init__(self, revision: int, chassis: tuple[str, ...] = ("hv1", "hv2", "hv3"),
                 gate: threading.Event | None = None, entered: threading.Event | None = None) -> None:
        self.revision = revision
        self.gate, self.entered = gate, entered
        self.model = SimpleNamespace(facts={("chassis", ch): object() for ch in chassis})
        self.built: list[str] = []
        self.replayed: list[str] = []
        self.published = False

    def pipeline(self, chassis: str) -> None:
        assert not self.published, "a published fabric is never built on by the builder"
        if self.entered is not None:
            self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        self.built.append(chassis)


class Source:
    """load() for the warmer: the current revision's fake fabric; can be held mid-build or made to fail."""

    def __init__(self) -> None:
        self.revision = 1
        self.loads: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail = False
        self.unusable = False
        self.pipeline_gate = threading.Event()  # FakeFabric.pipeline waits for it
        self.pipeline_gate.set()
        self.in_pipeline = threading.Event()

    def __call__(self) -> tuple[int, FakeFabric] | None:
        rev = self.revision
        self.loads.append(rev)
        self.entered.set()
        assert self.gate.wait(10)
        if self.fail:
            raise RuntimeError("bad tree")
        return None if self.unusable else (rev, FakeFabric(rev, gate=self.pipeline_gate,
                                                          entered=self.in_pipeline))


@pytest.fixture
def warm() -> Iterator[tuple[TraceWarmer, Source]]:
    source = Source()
    warmer = TraceWarmer(source, hot_limit=2).start()
    yield warmer, source
    warmer.stop()


def published(warmer: TraceWarmer, revision: int) -> Any:
    fab = warmer.fabric(revision, timeout=10)
    assert fab is not None and fab.revision >= revision
    fab.published = True
    return fab


def test_a_change_is_built_in_the_background_without_a_trace(warm) -> None:
    warmer, source = warm
    assert warmer.state() == {"revision": 0, "rebuilds": 0, "building": False}  # nothing announced yet
    warmer.changed(1)
    wait_for(lambda: warmer.state()["rebuilds"] == 1, timeout=10, what="the background build")
    assert warmer.state() == {"revision": 1, "rebuilds": 1, "building": False}
    assert published(warmer, 1).revision == 1 and source.loads == [1]
    warmer.changed(1)  # the same revision again: nothing to do
    assert published(warmer, 1).revision == 1 and source.loads == [1]


def test_a_burst_during_a_build_gives_exactly_one_more_build(warm) -> None:
    warmer, source = warm
    source.gate.clear()
    warmer.changed(1)
    assert source.entered.wait(10)
    for rev in range(2, 12):  # ten changes while the first build runs
        source.revision = rev
        warmer.changed(rev)
    assert warmer.state()["building"]
    source.gate.set()
    assert published(warmer, 11).revision == 11
    assert source.loads == [1, 11] and warmer.state() == {"revision": 11, "rebuilds": 2, "building": False}


def test_a_trace_mid_build_waits_for_it_and_gets_the_new_fabric(warm) -> None:
    warmer, source = warm
    warmer.changed(1)
    old = published(warmer, 1)
    source.gate.clear()
    source.entered.clear()
    source.revision = 2
    warmer.changed(2)
    assert source.entered.wait(10)
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(warmer.fabric(2, timeout=10)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and not got  # it waits for the running build ...
    assert warmer.fabric(1, timeout=0) is old  # ... which a trace of the older revision need not
    source.gate.set()
    waiter.join(10)
    assert got and got[0] is not old and got[0].revision == 2


def test_a_trace_that_sees_a_revision_before_the_hook_starts_its_build(warm) -> None:
    warmer, source = warm
    source.revision = 5
    assert published(warmer, 5).revision == 5 and source.loads == [5]


def test_the_chassis_of_recent_traces_are_built_before_publication(warm) -> None:
    warmer, source = warm
    warmer.used(["hv1", "hv2"])
    warmer.used(["hv3", "hv1"])  # hot_limit 2: hv2, the oldest, drops out
    warmer.changed(1)
    assert published(warmer, 1).built == ["hv1", "hv3"]  # the most recent first
    warmer.used(["gone"])  # a chassis no longer in the topology is skipped
    source.revision = 2
    warmer.changed(2)
    assert published(warmer, 2).built == ["hv1"]


def replay(fabric: FakeFabric, request: str) -> None:
    assert not fabric.published, "traces are replayed before publication"
    if request == "bad":
        raise ValueError("its port is gone")
    fabric.replayed.append(request)


def test_recent_traces_are_walked_again_on_the_new_fabric() -> None:
    source = Source()
    warmer = TraceWarmer(source, replay, hot_traces=3).start()
    try:
        for request in ("t1", "t2", "bad", "t1", "t3", "t4"):  # t2 is the oldest of the 3 most recent
            warmer.used(["hv1"], request)
        warmer.changed(1)
        fab = published(warmer, 1)
        assert fab.replayed == ["t4", "t3", "t1"] and fab.built == ["hv1"]
        warmer.used([], "bad")  # a replay that fails does not stop the build
        source.revision = 2
        warmer.changed(2)
        assert published(warmer, 2).replayed == ["t4", "t3"]
    finally:
        warmer.stop()


def test_a_trace_never_gets_a_fabric_whose_pipelines_are_still_being_built(warm) -> None:
    warmer, source = warm
    warmer.used(["hv2"])
    source.pipeline_gate.clear()
    warmer.changed(1)
    assert source.in_pipeline.wait(10)
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(warmer.fabric(1, timeout=10)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and not got
    source.pipeline_gate.set()
    waiter.join(10)
    assert got and got[0].built == ["hv2"]


def test_no_fabric_when_the_cache_cannot_be_the_source_then_a_later_change_builds(warm) -> None:
    warmer, source = warm
    source.unusable = True
    assert warmer.fabric(1, timeout=10) is None  # the trace builds its own from etcd
    source.unusable = False
    source.fail = True
    source.revision = 2
    assert warmer.fabric(2, timeout=10) is None  # a failing build: the builder lives on
    source.fail = False
    source.revision = 3
    warmer.changed(3)
    assert published(warmer, 3).revision == 3 and warmer.state()["rebuilds"] == 1


def test_an_offered_fabric_is_kept_unless_a_newer_one_is(warm) -> None:
    warmer, source = warm
    source.unusable = True
    assert warmer.fabric(4, timeout=10) is None
    mine = FakeFabric(4)
    warmer.offer(4, mine)
    assert warmer.fabric(4, timeout=0) is mine
    warmer.offer(3, FakeFabric(3))
    assert warmer.fabric(4, timeout=0) is mine and warmer.state()["revision"] == 4


def test_changes_are_rebuilt_in_the_background_only_while_traces_are_asked_for() -> None:
    now = [0.0]
    source = Source()
    warmer = TraceWarmer(source, interest=100.0, clock=lambda: now[0]).start()
    try:
        warmer.changed(1)  # the start counts as a trace
        assert published(warmer, 1).revision == 1 and warmer.state()["rebuilds"] == 1
        now[0] = 99.0  # within 100 s of that trace
        source.revision = 2
        warmer.changed(2)
        wait_for(lambda: warmer.state() == {"revision": 2, "rebuilds": 2, "building": False}, timeout=10,
                 what="the background build")
        now[0] = 250.0  # nobody traced for 151 s: changes wait for the next trace
        source.revision = 3
        warmer.changed(3)
        assert warmer.state() == {"revision": 2, "rebuilds": 2, "building": False}
        assert source.loads == [1, 2]
        assert published(warmer, 3).revision == 3 and source.loads == [1, 2, 3]  # the next trace builds it
        now[0] = 340.0  # that trace renewed the interest
        source.revision = 4
        warmer.changed(4)
        wait_for(lambda: warmer.state()["revision"] == 4, timeout=10, what="the background build")
    finally:
        warmer.stop()


def test_stop_wakes_a_waiting_trace() -> None:
    source = Source()
    source.gate.clear()
    warmer = TraceWarmer(source).start()
    warmer.changed(1)
    assert source.entered.wait(10)
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(warmer.fabric(1, timeout=30)))
    waiter.start()
    stopper = threading.Thread(target=warmer.stop)
    stopper.start()
    waiter.join(10)
    assert got == [None]
    source.gate.set()
    stopper.join(10)
    assert not stopper.is_alive()


def test_the_cache_announces_topology_changes_only_and_survives_a_failing_listener() -> None:
    from tuplenet.api.cache import TreeCache
    from tuplenet.store import KV, Event

    cache = TreeCache(None)  # type: ignore[arg-type]  (no store: nothing is started)
    heard: list[int] = []
    cache.on_topology = heard.append
    cache._apply([Event("PUT", KV("entity_view/LS/a", "id=1", 5, 5, 1, 0))], 5)
    cache._apply([Event("PUT", KV("communicate/hv1", "x", 6, 6, 1, 0))], 6)  # not the topology
    cache._apply([Event("PUT", KV("communicate/hv1", "y", 7, 6, 2, 0)),
                  Event("DELETE", KV("entity_view/LS/a", "", 7, 0, 0, 0))], 7)
    assert heard == [5, 7] and cache.revision == 7

    def broken(revision: int) -> None:
        raise RuntimeError("listener bug")

    cache.on_topology = broken
    cache._apply([Event("PUT", KV("entity_view/LS/b", "id=2", 8, 8, 1, 0))], 8)
    assert cache.revision == 8 and cache.get("entity_view/LS/b") is not None


def test_a_fabric_keeps_the_documents_of_its_traces_and_replays_keep_theirs() -> None:
    from topo_helpers import tutorial_facts

    from tuplenet.api import routes_trace
    from tuplenet.cli.trace import walk
    from tuplenet.trace.fabric import Fabric, Model
    from tuplenet.trace.request import Request, checked

    to_vm2 = checked(Request("LS-A/vm1", dst_ip="10.10.1.3"))
    to_vm3 = checked(Request("LS-A/vm1", dst_ip="10.10.2.2"))
    fab = Fabric(Model(tutorial_facts()))
    doc = routes_trace._document(fab, to_vm2)
    assert doc == walk(Fabric(Model(tutorial_facts())), to_vm2) and doc["result"] == "delivered"
    assert routes_trace._document(fab, to_vm2) is doc  # kept: not walked again
    assert routes_trace._document(fab, to_vm3) is not doc
    other = Fabric(Model(tutorial_facts()))  # another revision's fabric has documents of its own
    routes_trace._replay(other, to_vm3)
    replayed = routes_trace._document(other, to_vm3)
    assert replayed is not routes_trace._document(fab, to_vm3) and replayed == routes_trace._document(fab, to_vm3)
    assert routes_trace._document(other, to_vm3) is replayed
