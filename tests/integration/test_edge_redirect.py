"""Redirect between edges on simulated hosts (ENABLE_REDIRECT, the agent's default): when BFD says an edge
cannot reach a host directly, its frame goes through another edge, unchanged; a frame the second edge
cannot deliver either is dropped there, once, instead of bouncing between edges."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tuplenet.agent.ovsdb_model import tunnel_port_name
from tuplenet.model import LSP
from tuplenet.sandbox import packets as P
from tuplenet.sandbox.edge_lab import VM_IP, VM_MAC, EdgeLab
from tuplenet.sandbox.procs import wait_for
from tuplenet.sandbox.sim import SimNetwork

VM2_IP, VM2_MAC = "10.10.1.3", "f2:01:0a:0a:01:03"


@pytest.fixture
def lab(sim3: SimNetwork, etcd, prefix: str) -> Iterator[EdgeLab]:
    lab = EdgeLab(sim3, etcd.endpoint, prefix)
    try:
        lab.build()
        vm2 = LSP("LS-A", "vm2", VM2_IP, VM2_MAC, None, "hv2")  # a VM on the edge host hv2
        lab.store.put(vm2.key, vm2.to_value())
        sim3["hv2"].add_vm_port("vm2", "vm2")
        lab.start()
        lab.wait_bfd()
        yield lab
    finally:
        lab.close()


def _counter(lab: EdgeLab, host: str, priority: int) -> int:
    out = lab.net[host].ofctl("-O", "OpenFlow15", "dump-flows", "br-int", "table=95")
    return sum(int(n) for line in out.splitlines() if re.search(rf"priority={priority}[ ,]", line)
               for n in re.findall(r"n_packets=(\d+)", line))


def _cut(lab: EdgeLab, host: str, peer: str) -> None:
    """BFD on `host` says `peer` is gone; wait until `host`'s agent has turned its tunnel into a redirect."""
    lab.net[host].appctl("bfd/set-forwarding", tunnel_port_name(lab.net[peer].ip), "false")
    reg9 = "reg9=0x" + "".join(f"{int(b):02x}" for b in lab.net[peer].ip.split("."))
    try:
        wait_for(lambda: any(reg9 in f and "resubmit(,95)" in f for f in lab.net[host].dump_flows(table=93)),
                 timeout=10, interval=0.05, what=f"{host} redirecting what goes to {peer}")
    except TimeoutError:
        raise AssertionError(f"{reg9} {lab.bfd(host, peer)} {lab.net[host].dump_flows(table=93)}") from None
    lab.net[host].flush_datapath()  # frames already cached in the datapath take the new flows


def test_redirect_through_another_edge_and_never_twice(lab: EdgeLab) -> None:
    frame = P.icmp_frame(VM2_MAC, VM_MAC, VM2_IP, VM_IP)
    got = P.parse(_send_until(lab, frame))
    assert got.raw == frame  # direct, unchanged
    via_hv3 = len(lab.net.phy_frames_from("hv3"))

    _cut(lab, "hv2", "hv1")  # hv2's BFD says hv1 is unreachable: hv2 redirects through hv3
    once = _counter(lab, "hv2", 1)
    got = P.parse(_send_until(lab, frame))
    assert got.raw == frame
    assert _counter(lab, "hv2", 1) > once
    # it crossed hv3 (the underlay's capture of hv3's port may be written after the frame was delivered)
    wait_for(lambda: len(lab.net.phy_frames_from("hv3")) > via_hv3, timeout=5, what="the frame in hv3's capture")

    _cut(lab, "hv3", "hv1")  # hv3 cannot reach hv1 either: the redirected frame is dropped there, once
    once, twice = _counter(lab, "hv2", 1), _counter(lab, "hv3", 2)
    mark = lab.net["hv1"].tx_mark("vm1")
    for _ in range(3):
        lab.net["hv2"].inject("vm2", frame)
    with pytest.raises(TimeoutError):
        lab.net["hv1"].wait_tx_after("vm1", mark, 1, timeout=1.0)
    assert _counter(lab, "hv2", 1) - once == 3  # redirected once each, never bounced back to hv2
    assert _counter(lab, "hv3", 2) - twice == 3
    assert _counter(lab, "hv3", 1) == 0  # hv3 never redirected a flagged frame


def _send_until(lab: EdgeLab, frame: bytes) -> bytes:
    hv1 = lab.net["hv1"]
    for _ in range(50):
        mark = hv1.tx_mark("vm1")
        lab.net["hv2"].inject("vm2", frame)
        try:
            return hv1.wait_tx_after("vm1", mark, 1, timeout=0.2)[-1]
        except TimeoutError:
            continue
    raise TimeoutError("vm2's frame never reached vm1")
