"""A sandbox VM talks only once its port is ready (the agent's readiness mark), so its very first ping is
answered: no ARP lost to flows that are not in yet, no 1 s retry."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from conftest import e2e_skip_reason
from tuplenet.model import LS, LSP
from tuplenet.sandbox.netns import NetnsSandbox, default_mac
from tuplenet.sandbox.procs import wait_for
from tuplenet.store import Store

pytestmark = pytest.mark.e2e
PREFIX = "/tuplenet/"


@pytest.fixture(scope="module")
def sb() -> Iterator[NetnsSandbox]:
    if reason := e2e_skip_reason():
        pytest.skip(reason)
    s = NetnsSandbox(workdir=f"/tmp/tn-e2e-ping1-{os.getpid()}", name_prefix="tnp")
    try:
        s.up(hosts=2, prefix=PREFIX)
        s.wait_agents()
        yield s
    finally:
        s.down()


def put(sb: NetnsSandbox, *entities: object) -> None:
    store = Store(sb.etcd_endpoint, prefix=PREFIX)
    try:
        for e in entities:
            store.put(e.key, e.to_value())  # type: ignore[attr-defined]
    finally:
        store.close()


def lsp(name: str, ip: str) -> LSP:
    return LSP("LS-A", name, ip, default_mac(ip))


def test_first_ping_after_add_vm_is_answered(sb: NetnsSandbox) -> None:
    put(sb, LS("LS-A", 1), lsp("vm1", "10.10.1.2"), lsp("vm2", "10.10.1.3"))
    assert sb.add_vm("vm1", host="hv1", ip="10.10.1.2/24", mac=default_mac("10.10.1.2"))["ready"]
    assert sb.add_vm("vm2", host="hv2", ip="10.10.1.3/24", mac=default_mac("10.10.1.3"))["ready"]
    # OVS's userspace tunnels drop a host's first packets to another host while they resolve the underlay
    # neighbour: warm both directions first, so what follows measures the new port alone.
    wait_for(lambda: sb.exec("vm2", ["ping", "-c", "1", "-W", "1", "10.10.1.2"], check=False).returncode == 0,
             timeout=20, what="vm2 -> vm1 (underlay warm)")
    for i in range(5):  # a new VM on the other host pings vm1 at once, a single echo request
        name, ip = f"n{i}", f"10.10.1.{10 + i}"
        put(sb, lsp(name, ip))
        vm = sb.add_vm(name, host="hv2", ip=f"{ip}/24", mac=default_mac(ip))
        assert vm["ready"]
        assert sb.ovs("hv2", "get", "Interface", vm["port"], "external_ids:tuplenet-installed").strip() == '"true"'
        t0 = time.monotonic()
        r = sb.exec(name, ["ping", "-c", "1", "-W", "2", "10.10.1.2"], check=False)
        assert r.returncode == 0 and time.monotonic() - t0 < 0.9, r.stdout  # no ARP retry (1 s) on the way
        sb.del_vm(name)


def test_vm_without_lsp_comes_up_after_the_wait_unmarked(sb: NetnsSandbox) -> None:
    t0 = time.monotonic()
    vm = sb.add_vm("orphan", host="hv1", ip="10.10.9.2/24", ready_wait=0.5)
    assert not vm["ready"] and 0.5 <= time.monotonic() - t0 < 5
    wait_for(lambda: "state UP" in sb.exec("orphan", ["ip", "link", "show", "eth0"]).stdout, timeout=5,
             what="eth0 up anyway")
    sb.del_vm("orphan")
