"""Edges on real hosts: a gateway agent (GATEWAY=1) on hv2 with a pinned edge router whose outside switch
is patched to br-ext, behind which the sandbox's outside namespace stands in for the internet. A VM fetches
over HTTP from the outside through SNAT; the outside reaches a VM by its floating IP."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from conftest import e2e_skip_reason
from tuplenet.sandbox import netns_outside as out
from tuplenet.sandbox.netns import NetnsSandbox, default_mac
from tuplenet.sandbox.procs import wait_for

pytestmark = pytest.mark.e2e
PREFIX = "/tuplenet/"
SNAT_IP, FIP = "172.16.0.100", "172.16.0.50"


def tpctl(sb: NetnsSandbox, *args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "tuplenet.cli.tpctl", "-e", sb.etcd_endpoint, "-p", PREFIX, *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def build_edge(sb: NetnsSandbox, edge_host: str = "hv2") -> None:
    """LS-A - LR-central - LS-M - LR-edge (pinned to `edge_host`) - LS-out - patch to br-ext - outside."""
    for args in [("ls", "add", "LS-A"), ("lr", "add", "LR-central"), ("lr", "link", "LR-central", "LS-A", "10.10.1.1/24"),
                 *out.edge_steps(edge_host, snat_ip=SNAT_IP)]:
        tpctl(sb, *args)
    out.add_outside(sb, edge_host)


@pytest.fixture(scope="module")
def sb() -> Iterator[NetnsSandbox]:
    if reason := e2e_skip_reason():
        pytest.skip(reason)
    sb = NetnsSandbox(workdir=f"/tmp/tn-e2e-edge-{os.getpid()}", name_prefix="tnat")
    try:
        sb.up(hosts=2, prefix=PREFIX)
        sb.agent_stop("hv2")
        sb.agent_start("hv2", {"GATEWAY": "1"})
        sb.wait_agents()
        build_edge(sb)
        for name, ip in (("vm1", "10.10.1.2"), ("vm2", "10.10.1.3")):
            tpctl(sb, "lsp", "add", "LS-A", name, ip)
            sb.add_vm(name, host="hv1", ip=f"{ip}/24", mac=default_mac(ip), gateway="10.10.1.1")
        yield sb
    finally:
        sb.down()


def test_a_vm_fetches_from_the_outside_through_snat(sb: NetnsSandbox) -> None:
    srv = out.serve_http(sb)
    try:
        body = wait_for(lambda: _get(sb, "vm1", f"http://{out.INTERNET_IP}/"), timeout=30, interval=0.3,
                        what="vm1 fetching from the outside")
        assert body == "hello from outside\n"
        log = open(os.path.join(sb.workdir, "outside-http.log")).read()
        assert f"{SNAT_IP} - -" in log and "10.10.1.2" not in log  # the outside only sees the SNAT address
    finally:
        srv.terminate()
        srv.wait(timeout=5)


def test_the_outside_reaches_a_vm_by_its_floating_ip(sb: NetnsSandbox) -> None:
    tpctl(sb, "lnat", "add", "LR-edge", "fip-d", "10.10.1.3/32", "dnat", FIP)
    tpctl(sb, "lnat", "add", "LR-edge", "fip-s", "10.10.1.3/32", "snat", FIP)
    srv = out.serve_http(sb, target="vm2", bind="0.0.0.0", port=8080)
    try:
        body = wait_for(lambda: _get(sb, "outside", f"http://{FIP}:8080/"), timeout=30, interval=0.3,
                        what="the outside fetching from vm2's floating IP")
        assert body == "hello from vm2\n"
        log = open(os.path.join(sb.workdir, "vm2-http.log")).read()
        assert "172.16.0.1 - -" in log  # the client's own address: DNAT only, no SNAT on the way in
        r = sb.exec("outside", ["ping", "-c", "3", "-i", "0.2", "-W", "2", FIP], check=False, timeout=20)
        assert r.returncode == 0, r.stdout
    finally:
        srv.terminate()
        srv.wait(timeout=5)


def _get(sb: NetnsSandbox, target: str, url: str) -> str | None:
    try:
        return out.http_get(sb, target, url, timeout=2)
    except Exception:  # noqa: BLE001 - flows still converging: retried by wait_for
        return None


def test_a_dnat_host_is_reached_inbound_and_still_snatted_outbound(sb: NetnsSandbox) -> None:
    """vm1 gets a DNAT rule too: inbound connections to 172.16.0.60 reach it (the client's address kept),
    and its own new connections still leave through the SNAT rule (un-DNAT finds nothing, SNAT commits in
    the same zone)."""
    tpctl(sb, "lnat", "add", "LR-edge", "web", "10.10.1.2/32", "dnat", "172.16.0.60")
    srv_vm = out.serve_http(sb, target="vm1", bind="0.0.0.0", port=8080)
    srv_out = out.serve_http(sb)
    try:
        body = wait_for(lambda: _get(sb, "outside", "http://172.16.0.60:8080/"), timeout=30, interval=0.3,
                        what="the outside reaching vm1 through DNAT")
        assert body == "hello from vm1\n"
        assert "172.16.0.1 - -" in open(os.path.join(sb.workdir, "vm1-http.log")).read()
        mark = len(open(os.path.join(sb.workdir, "outside-http.log")).read())
        assert wait_for(lambda: _get(sb, "vm1", f"http://{out.INTERNET_IP}/"), timeout=30, interval=0.3,
                        what="vm1 fetching from the outside") == "hello from outside\n"
        new = open(os.path.join(sb.workdir, "outside-http.log")).read()[mark:]
        assert f"{SNAT_IP} - -" in new and "172.16.0.60" not in new
    finally:
        for p in (srv_vm, srv_out):
            p.terminate()
            p.wait(timeout=5)
