"""ECMP to two edges on real hosts: roads built by `tpctl edge` on hv2 and hv3 (GATEWAY=1, SNAT to their
VIPs), an outside namespace behind both edges' br-ext; vm1 (hv1) pings the outside continuously, the edge
carrying the ping is cut off the underlay, and the ping goes on through the other edge. The loss is
measured (ping's own count at 10 ms intervals)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from conftest import e2e_skip_reason
from tuplenet.sandbox import netns_edges as ne
from tuplenet.sandbox import netns_outside as out
from tuplenet.sandbox.netns import NetnsSandbox
from tuplenet.sandbox.procs import wait_for

pytestmark = pytest.mark.e2e
PREFIX = "/tuplenet/"


@pytest.fixture(scope="module")
def sb() -> Iterator[NetnsSandbox]:
    if reason := e2e_skip_reason():
        pytest.skip(reason)
    sb = NetnsSandbox(workdir=f"/tmp/tn-e2e-ecmp-{os.getpid()}", name_prefix="tecm")
    try:
        sb.up(hosts=3, prefix=PREFIX)
        ne.build_two_edges(sb, PREFIX)
        yield sb
    finally:
        sb.down()


def _ping_ok(sb: NetnsSandbox) -> bool:
    return sb.exec("vm1", ["ping", "-c", "1", "-W", "1", out.INTERNET_IP], check=False).returncode == 0


def test_ping_survives_an_edge_dying(sb: NetnsSandbox) -> None:
    wait_for(lambda: _ping_ok(sb), timeout=60, interval=0.5, what="vm1 pinging the outside through an edge")
    assert "in ECMP" in ne.tpctl(sb, PREFIX, "edge", "show")
    status = sb.exec("hv1", [sys.executable, "-m", "tuplenet.agent.main", "status", "--rundir",
                             os.path.join(sb.host_dir("hv1"), "tuplenet")], check=False).stdout
    assert status.count("forwarding true") >= 2, status  # BFD up to both edges
    before = {h: ne.snat_packets(sb, h) for h in ne.VIPS}
    sb.exec("vm1", ["ping", "-c", "20", "-i", "0.01", "-q", out.INTERNET_IP])
    carrier = max(ne.VIPS, key=lambda h: ne.snat_packets(sb, h) - before[h])
    other = next(h for h in ne.VIPS if h != carrier)
    sent, got = ne.ping_loss(sb, seconds=8, cut_after=2.0, victim=carrier)
    lost_s = (sent - got) * 8.0 / sent  # the lost share of the 8 s run (ping may not keep its 10 ms pace)
    print(f"ECMP failover on namespaces: {sent - got} of {sent} pings lost in 8 s = {lost_s * 1000:.0f} ms; "
          f"{carrier} cut, {other} took over")
    assert got > sent / 2  # the ping went on through the other edge
    assert lost_s < 2.0, f"{sent - got} pings lost ({lost_s:.2f} s)"
    assert ne.snat_packets(sb, other) > 0
