"""The port-up path has no wait on our own etcd round trip: the owner installs a local port's flows as soon
as it has the interface and the lsp, while its claim is still on the way (etcd frozen here); the readiness
mark and the peers follow once the claim is recorded."""

from __future__ import annotations

import os
import signal
import time

from agent_cluster import Cluster
from tuplenet.agent.status import read_status
from tuplenet.model import LS, LSP
from tuplenet.sandbox.etcd import EtcdServer
from tuplenet.sandbox.procs import wait_for

X_MAC = "f2:01:0a:00:00:05"


def classify_flows(c: Cluster, host: str, ofport: int) -> list[str]:
    return [f for f in c.flows(host) if "table=" not in f and (f"in_port={ofport} " in f or f"in_port={ofport}," in f)]


def agent_state(c: Cluster, host: str) -> str:
    """What the agent was doing (every thread's stack: faulthandler on SIGUSR1) and its log's end: a failure
    here is rare and timing-dependent, so the report must carry what explains it."""
    agent = c.host(host).agent
    before = os.path.getsize(agent.console) if os.path.exists(agent.console) else 0
    os.kill(agent.pid, signal.SIGUSR1)
    wait_for(lambda: os.path.exists(agent.console) and os.path.getsize(agent.console) > before, timeout=5,
             what="the agent's stack dump")
    with open(agent.console, errors="replace") as f:
        f.seek(before)
        stacks = f.read()
    with open(agent.logfile, errors="replace") as f:
        log = "".join(f.readlines()[-30:])
    return f"agent stacks:\n{stacks}\nagent log (end):\n{log}\nflows:\n" + "\n".join(c.flows(host))


def mark(c: Cluster, host: str, iface: str) -> str | None:
    out = c.host(host).vsctl("--if-exists", "get", "Interface", iface, "external_ids:tuplenet-installed")
    return out.strip().strip('"') or None


def test_local_flows_do_not_wait_for_the_claim_to_come_back(sim3, tmp_path, prefix: str) -> None:
    etcd = EtcdServer(str(tmp_path / "etcd")).start()  # our own: this test freezes it
    c = Cluster(sim3, etcd.endpoint, prefix)
    try:
        c.put(LS("ls1", 1), LSP("ls1", "vmx", "10.0.0.5", X_MAC))
        c.start_agents("hv1", "hv2")
        wait_for(lambda: any("arp_tpa=10.0.0.5" in f for f in c.flows("hv1")), timeout=20,
                 what="hv1 knows vmx (its ARP responder is in)")
        os.kill(etcd.proc.pid, signal.SIGSTOP)
        try:
            ofport = c.host("hv1").add_vm_port("vmx", "vmx")
            try:
                flows = wait_for(lambda: classify_flows(c, "hv1", ofport), timeout=5,
                                 what="vmx's local flows while its claim cannot reach etcd")
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{agent_state(c, 'hv1')}") from None
            assert any("dl_src=" + X_MAC in f for f in flows)  # port security: its own MAC only
            assert mark(c, "hv1", "vmx") is None  # ready means recorded too: not before the claim lands
        finally:
            os.kill(etcd.proc.pid, signal.SIGCONT)
        wait_for(lambda: "chassis=hv1" in (c.store.get("entity_view/LS/ls1/lsp/vmx").value or ""), timeout=10,
                 what="the claim recorded")
        wait_for(lambda: mark(c, "hv1", "vmx") == "true", timeout=10, what="readiness mark")
        hv1_ip = "0xc0a86402"  # 192.168.100.2: the lookup names the chassis by its tunnel IP
        wait_for(lambda: any("dl_dst=" + X_MAC in f and hv1_ip in f for f in c.flows("hv2")),
                 timeout=10, what="hv2 reaches vmx through hv1")
        assert classify_flows(c, "hv1", ofport)
    finally:
        os.kill(etcd.proc.pid, signal.SIGCONT)
        c.store.close()
        for h in ("hv1", "hv2"):  # while their etcd is still there
            c.host(h).stop_agents()
        etcd.stop()


def test_agent_stops_promptly_while_etcd_is_frozen(sim3, tmp_path, prefix: str) -> None:
    """SIGTERM with etcd unreachable: the agent exits at once, cleanly; its liveness lease, which it could not
    revoke, expires by itself (it waited out the store's whole retry budget per revoke before)."""
    etcd = EtcdServer(str(tmp_path / "etcd")).start()
    c = Cluster(sim3, etcd.endpoint, prefix)
    try:
        c.put(LS("ls1", 1))
        agent = c.host("hv1").start_agent(c.endpoint, c.prefix)
        rundir = os.path.join(c.host("hv1").dir, "tuplenet")
        wait_for(lambda: read_status(rundir).get("pid") == agent.pid, timeout=20, what="hv1's agent started")
        os.kill(etcd.proc.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        rc = agent.stop(timeout=10)
        took = time.monotonic() - t0
        assert rc == 0 and took < 4, (rc, took)  # it took the store's whole 5 s retry budget before
    finally:
        os.kill(etcd.proc.pid, signal.SIGCONT)
        c.store.close()
        c.host("hv1").stop_agents()  # while its etcd is still there
        etcd.stop()
