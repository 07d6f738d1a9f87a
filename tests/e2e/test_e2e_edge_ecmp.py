"""ECMP to two edges on real hosts: roads built by `tpctl edge` on hv2 and hv3 (GATEWAY=1, SNAT to their
VIPs), an outside namespace behind both edges' br-ext; vm1 (hv1) pings the outside continuously, the edge
carrying the ping is cut off the underlay, and the ping goes on through the other edge. The loss is
measured (ping's own count at 10 ms intervals) and must stay within the 1 s budget's order."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from conftest import e2e_skip_reason
from tuplenet.sandbox import netns_edges as ne
from tuplenet.sandbox import netns_outside as out
from tuplenet.sandbox.netns import NetnsSandbox, default_mac
from tuplenet.sandbox.procs import wait_for

pytestmark = pytest.mark.e2e
PREFIX = "/tuplenet/"
VIPS = {"hv2": "172.16.0.11", "hv3": "172.16.0.12"}


def tpctl(sb: NetnsSandbox, *args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "tuplenet.cli.tpctl", "-e", sb.etcd_endpoint, "-p", PREFIX, *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def sb() -> Iterator[NetnsSandbox]:
    if reason := e2e_skip_reason():
        pytest.skip(reason)
    sb = NetnsSandbox(workdir=f"/tmp/tn-e2e-ecmp-{os.getpid()}", name_prefix="tecm")
    try:
        sb.up(hosts=3, prefix=PREFIX)
        for h in VIPS:
            sb.agent_stop(h)
            sb.agent_start(h, {"GATEWAY": "1"})
        sb.wait_agents()
        ne.add_shared_outside(sb, list(VIPS))  # br-ext on both edges before the patch ports
        for args in [("ls", "add", "LS-A"), ("lr", "add", "LR-central"),
                     ("lr", "link", "LR-central", "LS-A", "10.10.1.1/24"),
                     ("edge", "init", "hv2", "br-ext", f"{VIPS['hv2']}/24", "10.10.0.0/16", "172.16.0.1"),
                     ("edge", "add", "hv3", "br-ext", f"{VIPS['hv3']}/24"),
                     ("lnat", "add", "tp_LR_edge1", "vms", "10.10.0.0/16", "snat", VIPS["hv2"]),
                     ("lnat", "add", "tp_LR_edge2", "vms", "10.10.0.0/16", "snat", VIPS["hv3"]),
                     ("lsp", "add", "LS-A", "vm1", "10.10.1.2")]:
            tpctl(sb, *args)
        sb.add_vm("vm1", host="hv1", ip="10.10.1.2/24", mac=default_mac("10.10.1.2"), gateway="10.10.1.1")
        yield sb
    finally:
        sb.down()


def _ping_ok(sb: NetnsSandbox) -> bool:
    return sb.exec("vm1", ["ping", "-c", "1", "-W", "1", out.INTERNET_IP], check=False).returncode == 0


def _snat_packets(sb: NetnsSandbox, host: str) -> int:
    text = sb.ovs(host, "ovs-ofctl", "-O", "OpenFlow15", "dump-flows", "br-int", "table=53")
    return sum(int(m) for m in re.findall(r"n_packets=(\d+)", text))


def test_ping_survives_an_edge_dying(sb: NetnsSandbox) -> None:
    wait_for(lambda: _ping_ok(sb), timeout=60, interval=0.5, what="vm1 pinging the outside through an edge")
    assert "in ECMP" in tpctl(sb, "edge", "show")
    status = sb.exec("hv1", [sys.executable, "-m", "tuplenet.agent.main", "status", "--rundir",
                             os.path.join(sb.host_dir("hv1"), "tuplenet")], check=False).stdout
    assert status.count("forwarding true") >= 2, status  # BFD up to both edges
    before = {h: _snat_packets(sb, h) for h in VIPS}
    sb.exec("vm1", ["ping", "-c", "20", "-i", "0.01", "-q", out.INTERNET_IP])
    carrier = max(VIPS, key=lambda h: _snat_packets(sb, h) - before[h])
    other = next(h for h in VIPS if h != carrier)
    log = os.path.join(sb.workdir, "ping.log")
    interval = 0.01
    ping = sb.spawn("vm1", ["ping", "-i", str(interval), "-W", "1", "-w", "8", out.INTERNET_IP], logfile=log)
    try:
        time.sleep(2.0)
        ne.cut_host(sb, carrier)
        ping.wait(timeout=30)
    finally:
        ne.cut_host(sb, carrier, up=True)
    text = open(log).read()
    m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
    assert m, text[-500:]
    sent, got = int(m.group(1)), int(m.group(2))
    lost_s = (sent - got) * interval
    print(f"ECMP failover on namespaces: {sent - got} of {sent} pings lost at {interval * 1000:.0f} ms "
          f"intervals = {lost_s * 1000:.0f} ms loss window; {carrier} cut, {other} took over")
    assert got > sent / 2, text[-500:]  # the ping went on through the other edge
    assert lost_s < 2.0, f"{sent - got} pings lost ({lost_s:.2f} s)"
    assert _snat_packets(sb, other) > 0
