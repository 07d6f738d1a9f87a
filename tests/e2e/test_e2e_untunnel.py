"""Untunnel / DSR on real hosts: hv1 runs its agent with ENABLE_UNTUNNEL=1, hv2 is the edge (GATEWAY=1,
no NAT: the outside routes the VMs' prefix to the edge). vm1's pings to the "internet" leave hv1 through
br-int-dsrgw and hv1's own stack towards the outside's leg on the physical network, never through Geneve
or the edge; the replies come back through the edge. The agent itself changes no host setting: it
reports what is missing until the operator (here the test) sets it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from conftest import e2e_skip_reason
from tuplenet.agent.ovsdb_model import DSRGW_PORT
from tuplenet.agent.status import read_status
from tuplenet.sandbox import netns_outside as out
from tuplenet.sandbox.netns import NetnsSandbox, default_mac
from tuplenet.sandbox.procs import wait_for

pytestmark = pytest.mark.e2e
PREFIX = "/tuplenet/"
VM1 = "10.10.1.2"


def tpctl(sb: NetnsSandbox, *args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "tuplenet.cli.tpctl", "-e", sb.etcd_endpoint, "-p", PREFIX, *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def sb() -> Iterator[NetnsSandbox]:
    if reason := e2e_skip_reason():
        pytest.skip(reason)
    sb = NetnsSandbox(workdir=f"/tmp/tn-e2e-dsr-{os.getpid()}", name_prefix="tndsr")
    try:
        sb.up(hosts=2, prefix=PREFIX)
        sb.agent_stop("hv2")
        sb.agent_start("hv2", {"GATEWAY": "1"})
        sb.agent_stop("hv1")
        sb.agent_start("hv1", {"ENABLE_UNTUNNEL": "1"})
        sb.wait_agents()
        for args in [("ls", "add", "LS-A"), ("lr", "add", "LR-central"),
                     ("lr", "link", "LR-central", "LS-A", "10.10.1.1/24"), *out.edge_steps("hv2", snat_ip=None)]:
            tpctl(sb, *args)
        out.add_outside(sb, "hv2", routes=("10.10.0.0/16 via 172.16.0.2",))  # back to the VMs: via the edge
        out.add_underlay_leg(sb)
        tpctl(sb, "lsp", "add", "LS-A", "vm1", VM1)
        sb.add_vm("vm1", host="hv1", ip=f"{VM1}/24", mac=default_mac(VM1), gateway="10.10.1.1")
        yield sb
    finally:
        sb.down()


def _dsr_status(sb: NetnsSandbox) -> dict:
    return read_status(os.path.join(sb.host_dir("hv1"), "tuplenet")).get("untunnel") or {}


def _sysctl(sb: NetnsSandbox, name: str) -> str:
    return sb.exec("hv1", ["sysctl", "-n", name]).stdout.strip()


def _capture(sb: NetnsSandbox, target: str, iface: str, name: str) -> tuple[subprocess.Popen, str]:
    log = os.path.join(sb.workdir, f"{name}.txt")
    proc = sb.spawn(target, ["tcpdump", "-i", iface, "-nn", "-t", "-l", "-e", "icmp"], logfile=log)
    wait_for(lambda: os.path.exists(log) and "listening on" in open(log).read(), timeout=10, interval=0.05,
             what=f"tcpdump on {target}:{iface}")
    return proc, log


def test_a_vm_reaches_the_outside_through_its_host_and_the_reply_comes_via_the_edge(sb: NetnsSandbox) -> None:
    st = wait_for(lambda: _dsr_status(sb).get("ofport") and _dsr_status(sb), timeout=20, what="br-int-dsrgw up")
    # The agent brought its port up and changed no sysctl: forwarding is still off and is reported.
    assert "UP" in sb.exec("hv1", ["ip", "link", "show", DSRGW_PORT]).stdout
    assert _sysctl(sb, f"net.ipv4.conf.{DSRGW_PORT}.forwarding") == "0"
    assert any("forwarding is not 1" in p for p in st["problems"]) and st["ok"] is False
    # The operator's part (docs/edges.md, "DSR / untunnel"): forwarding, loose/no rp_filter, a way out.
    sb.exec("hv1", ["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                    f"net.ipv4.conf.{DSRGW_PORT}.rp_filter=0"])
    sb.exec("hv1", ["ip", "route", "replace", "default", "via", out.UNDERLAY_LEG_IP.split("/")[0]])
    wait_for(lambda: _dsr_status(sb).get("ok"), timeout=10, what="the agent seeing the host prepared")

    dsr, dsr_log = _capture(sb, "hv1", DSRGW_PORT, "cap-dsrgw")
    outside, outside_log = _capture(sb, "outside", "any", "cap-outside")
    try:
        r = sb.exec("vm1", ["ping", "-c", "5", "-i", "0.2", "-W", "2", out.INTERNET_IP], check=False, timeout=30)
        assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout
        wait_for(lambda: len(_requests(open(dsr_log).read())) >= 5, timeout=5, what="requests seen on br-int-dsrgw")
        on_dsr = open(dsr_log).read()
        assert st["mac"] in " ".join(_requests(on_dsr))  # handed over with the port's MAC as destination
        seen = open(outside_log).read()
        reqs = [ln for ln in seen.splitlines() if f"{VM1} > {out.INTERNET_IP}: ICMP echo request" in ln]
        replies = [ln for ln in seen.splitlines() if f"{out.INTERNET_IP} > {VM1}: ICMP echo reply" in ln]
        assert len(reqs) >= 5 and all(ln.startswith("ul0") for ln in reqs), seen  # via hv1's stack
        assert len(replies) >= 5 and all(ln.startswith("eth0") for ln in replies), seen  # back via the edge
    finally:
        for p in (dsr, outside):
            p.terminate()
            p.wait(timeout=5)
    # The hand-off flow (ls_in_untunnel_known's catch-all) on hv1 counted them.
    flows = sb.ovs("hv1", "ovs-ofctl", "dump-flows", "br-int", "table=16")
    catch_all = next(ln for ln in flows.splitlines() if "priority=0" in ln)
    assert int(re.search(r"n_packets=(\d+)", catch_all).group(1)) >= 5, flows


def _requests(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if "ICMP echo request" in ln]
