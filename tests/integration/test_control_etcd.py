"""The control layer on a real etcd: races between threads, etcd's txn limits, IPAM, big imports."""

from __future__ import annotations

import threading

import pytest

from tuplenet.control import Conflict, ControlError, Controller, InvalidArgument, parse_export
from tuplenet.model import DEVICE_IDS_KEY, ip_book_key, port_id
from tuplenet.model.roaring import decode_bitmap
from tuplenet.store import Store


@pytest.fixture
def store(etcd, prefix):
    s = Store(etcd.endpoint, prefix=prefix)
    yield s
    s.delete_prefix("")
    s.close()


def _in_threads(n: int, fn) -> list[object]:
    """Run fn(i) in n threads released together; returns each result or raised exception."""
    results: list[object] = [None] * n
    gate = threading.Barrier(n)

    def body(i: int) -> None:
        gate.wait(timeout=30)
        try:
            results[i] = fn(i)
        except Exception as exc:  # noqa: BLE001 - collected for the assertions
            results[i] = exc

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_threads_racing_for_one_ip(etcd, prefix, store):
    Controller(store).add_switch("ls1")
    for round_ in range(3):
        results = _in_threads(6, lambda i, r=round_: Controller(store).add_switch_port(
            "ls1", f"r{r}p{i}", f"10.0.{r}.9"))
        winners = [r for r in results if not isinstance(r, Exception)]
        losers = [r for r in results if isinstance(r, Exception)]
        assert len(winners) == 1 and all(isinstance(e, Conflict) and "lower 16 bits" in str(e) for e in losers)


def test_threads_adding_distinct_ports_and_switches(etcd, prefix, store):
    Controller(store).add_switch("ls1")
    results = _in_threads(10, lambda i: Controller(store).add_switch_port("ls1", f"p{i}", f"10.0.0.{i + 2}"))
    assert not [r for r in results if isinstance(r, Exception)]
    assert decode_bitmap(store.get(ip_book_key("LS", "ls1")).value) == set(range(2, 12))
    switches = _in_threads(8, lambda i: Controller(store).add_switch(f"s{i}"))
    ids = [s.id for s in switches]  # type: ignore[union-attr]
    assert sorted(ids) == list(range(2, 10))
    assert decode_bitmap(store.get(DEVICE_IDS_KEY).value) == set(range(1, 10))


def test_ipam_racing_allocations_get_distinct_ips(etcd, prefix, store):
    Controller(store).add_switch("ls1")
    results = _in_threads(8, lambda i: Controller(store).allocate_switch_port("ls1", f"c{i}", "172.16.1.0/28"))
    ips = sorted(r.ip for r in results)  # type: ignore[union-attr]
    assert ips == sorted(f"172.16.1.{i}" for i in range(2, 10))
    ctl = Controller(store)
    for i in range(8, 13):
        ctl.allocate_switch_port("ls1", f"c{i}", "172.16.1.0/28")
    with pytest.raises(InvalidArgument, match="no free IP"):
        ctl.allocate_switch_port("ls1", "c13", "172.16.1.0/28")


def test_big_switch_over_txn_limits(etcd, prefix, store):
    """300 ports in one switch: import splits the group, recursive delete is still one txn."""
    lines = ["entity_view/LS/big\t", "entity_view/LR/r\t"]
    lines += [f"entity_view/LS/big/lsp/p{i}\tip=10.1.{i // 250}.{i % 250 + 2},mac=f2:01:00:00:00:01"
              for i in range(300)]
    ctl = Controller(store)
    result = ctl.import_records(parse_export("\n".join(lines)))
    assert (result.created, result.ids_assigned) == (302, 2) and result.batches >= 3
    ports = ctl.list_switch_ports("big")
    assert len(ports) == 300
    assert decode_bitmap(store.get(ip_book_key("LS", "big")).value) == {port_id(p.ip) for p in ports}
    ctl.delete_switch("big", recursive=True)
    assert store.get_prefix("entity_view/LS/")[0] == []


def test_concurrent_delete_and_port_add_leave_no_orphans(etcd, prefix, store):
    for round_ in range(5):
        name = f"ls{round_}"
        Controller(store).add_switch(name)
        Controller(store).add_switch_port(name, "p0", "10.0.0.2")
        results = _in_threads(2, lambda i, n=name: Controller(store).delete_switch(n, recursive=True) if i == 0
                              else Controller(store).add_switch_port(n, "p1", "10.0.0.3"))
        assert not isinstance(results[0], Exception)
        assert store.get_prefix(f"entity_view/LS/{name}")[0] == []  # no orphan port either way
        assert isinstance(results[1], Exception) or results[1] is not None


def test_version_newer_tree_is_refused(etcd, prefix, store):
    store.put("globals/version", "10")  # "10" < "1" as strings: 0.3 would have accepted it
    with pytest.raises(ControlError, match="db accessed by higher version controller: 10, local: 1"):
        Controller(store).add_switch("ls1")


_WRITER = """
import sys, time
from tuplenet.control import Controller
from tuplenet.store import Store
endpoint, prefix, name, start = sys.argv[1:5]
ctl = Controller(Store(endpoint, prefix=prefix))
time.sleep(max(0.0, float(start) - time.time()))
print(ctl.allocate_switch_port("ls1", name, "172.16.2.0/24").ip)
"""


def test_twenty_writer_processes_racing_for_one_switch_all_get_through(etcd, prefix, store):
    """Separate processes (as tpctl and CNI invocations are) released at the same instant: every one
    succeeds with a distinct address; none gives up because the others kept winning."""
    import subprocess
    import sys
    import time

    Controller(store).add_switch("ls1")
    start = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, etcd.endpoint, prefix, f"w{i}", str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(20)]
    outs = [p.communicate(timeout=60) for p in procs]
    failed = [err.strip().splitlines()[-1] for p, (_, err) in zip(procs, outs, strict=True) if p.returncode]
    assert not failed, failed[:3]
    ips = [out.strip() for out, _ in outs]
    assert len(set(ips)) == 20
    assert decode_bitmap(store.get(ip_book_key("LS", "ls1")).value) == {port_id(ip) for ip in ips}
