"""On-demand hosts on real namespaces (userspace OVS, Geneve, real agents): hv1 and hv2 run ONDEMAND=1, hv3
hosts a pinned router and runs full mode (the helper). A VM's very first ping to a VM it never talked to,
one echo request, is answered: its ARP and its first packets go through the helper, no loss."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from conftest import e2e_skip_reason
from tuplenet.model import LR, LRP, LS, LSP
from tuplenet.sandbox.netns import NetnsSandbox, default_mac
from tuplenet.sandbox.procs import wait_for
from tuplenet.store import Store

pytestmark = pytest.mark.e2e
PREFIX = "/tuplenet/"
ON = {"ONDEMAND": "1"}


def put(sb: NetnsSandbox, *entities: object) -> None:
    store = Store(sb.etcd_endpoint, prefix=PREFIX)
    try:
        for e in entities:
            store.put(e.key, e.to_value())  # type: ignore[attr-defined]
    finally:
        store.close()


def vm(sb: NetnsSandbox, name: str, host: str, ls: str, ip: str) -> None:
    put(sb, LSP(ls, name, ip, default_mac(ip)))
    assert sb.add_vm(name, host=host, ip=f"{ip}/24", mac=default_mac(ip))["ready"]


def ping(sb: NetnsSandbox, src: str, dst: str, count: int = 1) -> int:
    """ping's exit status, except that any lost echo counts as a failure (ping exits 0 once one came back)."""
    res = sb.exec(src, ["ping", "-c", str(count), "-i", "0.2", "-W", "2", dst], check=False, timeout=30)
    return res.returncode or (0 if f", {count} received" in res.stdout else 1)


def ondemand_status(sb: NetnsSandbox, host: str) -> dict:
    with open(os.path.join(sb.host_dir(host), "tuplenet", "status.json")) as f:
        return json.load(f)["ondemand"]


@pytest.fixture(scope="module")
def sb() -> Iterator[NetnsSandbox]:
    if reason := e2e_skip_reason():
        pytest.skip(reason)
    s = NetnsSandbox(workdir=f"/tmp/tn-e2e-ondemand-{os.getpid()}", name_prefix="tno")
    try:
        s.up(hosts=3, prefix=PREFIX, agents=False)
        put(s, LS("LS-A", 1), LS("LS-W", 2), LS("LS-X", 3), LR("LR-edge", 9, "hv3"),
            LRP("LR-edge", "LR-edge_to_LS-X", "10.99.0.1", 24, default_mac("10.99.0.1"), "LS-X_to_LR-edge"),
            LSP("LS-X", "LS-X_to_LR-edge", "10.99.0.1", default_mac("10.99.0.1"), "LR-edge_to_LS-X"))
        s.agent_start("hv3", {"ONDEMAND": "0"})
        s.agent_start("hv1", ON)
        s.agent_start("hv2", ON)
        s.wait_agents()
        yield s
    finally:
        s.down()


def test_on_demand_hosts_first_ping_is_answered(sb: NetnsSandbox) -> None:
    # OVS's userspace tunnels drop a host's first packets to another host while they resolve the underlay
    # neighbour: warm every host pair with VMs of another switch first (which hv1/hv2 learn on demand too).
    for name, host, ip in (("w1", "hv1", "10.20.0.1"), ("w2", "hv2", "10.20.0.2"), ("w3", "hv3", "10.20.0.3")):
        vm(sb, name, host, "LS-W", ip)
    for src, dst in (("w1", "10.20.0.2"), ("w1", "10.20.0.3"), ("w2", "10.20.0.3"), ("w2", "10.20.0.1"),
                     ("w3", "10.20.0.1"), ("w3", "10.20.0.2")):
        wait_for(lambda s=src, d=dst: ping(sb, s, d) == 0, timeout=20, what=f"{src} -> {dst} (underlay warm)")
    vm(sb, "vm1", "hv1", "LS-A", "10.10.1.2")
    vm(sb, "vm2", "hv2", "LS-A", "10.10.1.3")
    before = ondemand_status(sb, "hv1")
    assert ["LS-A", "vm2"] not in before["wanted"]
    assert ping(sb, "vm1", "10.10.1.3") == 0  # one echo request: ARP and echo through the helper, answered
    wait_for(lambda: ["LS-A", "vm2"] in ondemand_status(sb, "hv1")["wanted"], timeout=5, what="hv1 learns vm2")
    wait_for(lambda: ["LS-A", "vm1"] in ondemand_status(sb, "hv2")["wanted"], timeout=5, what="hv2 learns vm1")
    assert ping(sb, "vm1", "10.10.1.3", count=5) == 0  # and then direct, no loss
    assert ping(sb, "vm2", "10.10.1.2", count=3) == 0
