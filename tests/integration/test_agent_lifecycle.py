"""Agent lifecycle on simulated hosts: restarts, etcd outages, bad records, bindings, chassis."""

from __future__ import annotations

import threading
import time

from agent_cluster import Cluster, tutorial
from tuplenet.agent.ovsdb import tunnel_port_name
from tuplenet.model import LS, LSP
from tuplenet.sandbox import packets as P
from tuplenet.sandbox.procs import wait_for

A_MAC = "f2:01:0a:0a:01:01"


def our_flows(c: Cluster, host: str) -> list[str]:
    """Flow identities without counters, for 'nothing changed' comparisons."""
    return sorted(f for f in c.flows(host) if "cookie=0x7470" in f)


def test_delete_topology_and_recreate_gives_same_flows(cluster: Cluster) -> None:
    c = cluster
    tutorial(c)
    c.start_agents()
    c.wait_converged()
    before = {h: our_flows(c, h) for h in ("hv1", "hv2")}
    kvs, _ = c.store.get_prefix("entity_view/")
    topo = [kv for kv in kvs if "/chassis/" not in kv.key]
    for kv in topo:
        c.store.delete(kv.key)
    c.wait_converged()
    left = our_flows(c, "hv1")
    assert left and all("metadata=" not in f.split(" actions=")[0] for f in left)  # no per-datapath flow
    assert all("in_port=" not in f.split(" actions=")[0] or "resubmit(,98)" in f for f in left)
    for kv in topo:
        c.store.put(kv.key, kv.value)
    c.wait_converged()
    assert {h: our_flows(c, h) for h in ("hv1", "hv2")} == before


def test_chassis_registration_liveness_and_tunnel_removal(cluster: Cluster) -> None:
    c = cluster
    tutorial(c)
    c.start_agents()
    for name in ("hv1", "hv2", "hv3"):
        kv = wait_for(lambda n=name: c.store.get(f"entity_view/chassis/{n}"), timeout=10, what="chassis")
        assert kv.value.startswith(f"ip={c.host(name).ip},tick=")
        assert c.store.get(f"liveness/chassis/{name}").lease != 0
    port = tunnel_port_name("192.168.100.4")
    wait_for(lambda: port in c.host("hv1").vsctl("list-ports", "br-int"), timeout=10, what="tunnel to hv3")
    c.host("hv3").agent.stop()
    c.store.delete("entity_view/chassis/hv3")
    wait_for(lambda: port not in c.host("hv1").vsctl("list-ports", "br-int"), timeout=10, what="tunnel gone")
    c.wait_converged("hv1", "hv2")
    # hv3's ports are unreachable now: no flow refers to the vanished tunnel.
    assert not any("dl_dst=f2:01:0a:0a:02:03" in f and "table=6" in f for f in c.flows("hv1"))


def test_binding_written_back_with_cas(cluster: Cluster) -> None:
    c = cluster
    c.put(LS("ls1", 1), LSP("ls1", "vmx", "10.0.0.5", "f2:01:0a:00:00:05"))
    c.start_agents("hv2")
    c.host("hv2").add_vm_port("vmx", "vmx")
    kv = wait_for(lambda: (k := c.store.get("entity_view/LS/ls1/lsp/vmx")) and "chassis=hv2" in k.value and k,
                  timeout=10, what="binding written back")
    assert kv.value == "ip=10.0.0.5,mac=f2:01:0a:00:00:05,chassis=hv2"
    c.wait_converged("hv2")
    # Classified into its switch from its own addresses only (port security).
    assert any("priority=3,ip,in_port=" in f and "nw_src=10.0.0.5" in f and "set_field:0x5->reg0" in f
               for f in c.flows("hv2"))


def test_malformed_record_reported_once_skipped_then_applied(cluster: Cluster) -> None:
    c = cluster
    vms = tutorial(c)
    c.start_agents("hv1", "hv2")
    c.wait_converged("hv1")
    bad_key = "entity_view/LS/LS-A/lsp/vm9"
    for _ in range(3):
        c.store.put(bad_key, "ip=10.10.1.300,mac=f2:01:0a:0a:01:09,chassis=hv2")
    c.store.put(bad_key, "ip=10.10.1.300,mac=f2:01:0a:0a:01:09,chassis=hv2")
    wait_for(lambda: c.status("hv1")["bad_records"] == 1, timeout=10, what="bad record counted")
    log = open(c.host("hv1").agent.logfile).read()
    assert log.count("ignoring malformed record entity_view/LS/LS-A/lsp/vm9") == 1
    assert c.host("hv1").agent.alive()
    c.host("hv2").add_vm_port("vm9", "vm9")
    c.store.put(bad_key, "ip=10.10.1.9,mac=f2:01:0a:0a:01:09,chassis=hv2")
    f = P.icmp_frame(vms["vm1"].mac, "f2:01:0a:0a:01:09", "10.10.1.2", "10.10.1.9")
    assert c.send_until("hv1", "vm1", f, "hv2", "vm9").raw == f


def test_agent_restart_loses_no_packet_and_changes_no_flow(cluster: Cluster) -> None:
    c = cluster
    vms = tutorial(c)
    c.start_agents()
    c.wait_converged()
    f = P.icmp_frame(vms["vm1"].mac, vms["vm2"].mac, "10.10.1.2", "10.10.1.3")
    c.send_until("hv1", "vm1", f, "hv2", "vm2")
    before = {h: our_flows(c, h) for h in ("hv1", "hv2")}
    dst = c.host("hv2")
    mark = dst.tx_mark("vm2")
    sent = 0
    stop = threading.Event()

    def pump() -> None:
        nonlocal sent
        while not stop.is_set():
            c.host("hv1").inject("vm1", f)
            sent += 1
            time.sleep(0.005)

    t = threading.Thread(target=pump)
    t.start()
    try:
        # Traffic flows before, during and after the restarts: the window is bounded by packet counts, not
        # by how long a restart happens to take.
        wait_for(lambda: sent >= 10, timeout=10, what="traffic flowing before the restart")
        at_stop = sent
        for h in ("hv1", "hv2"):
            c.host(h).agent.stop()
            c.host(h).start_agent(c.endpoint, c.prefix)
        for h in ("hv1", "hv2"):
            wait_for(lambda h=h: (s := c.status(h)) and s["pid"] == c.host(h).agent.pid, timeout=20,
                     what=f"restarted agent on {h} ready")
        during = sent - at_stop
        at_ready = sent
        wait_for(lambda: sent >= at_ready + 10, timeout=10, what="traffic flowing after the restart")
    finally:
        stop.set()
        t.join()
    got = dst.wait_tx_after("vm2", mark, sent, timeout=10)
    assert during >= 5, f"only {during} packets sent while the agents restarted"
    assert len(got) == sent
    assert {h: our_flows(c, h) for h in ("hv1", "hv2")} == before
    for h in ("hv1", "hv2"):
        assert c.status(h)["openflow"]["flows_added"] == 0
        assert c.status(h)["openflow"]["flows_deleted"] == 0


def test_etcd_restart_resumes_without_full_recompute(cluster: Cluster, etcd) -> None:
    c = cluster
    vms = tutorial(c)
    c.start_agents("hv1", "hv2")
    c.wait_converged("hv1", "hv2")
    etcd.stop(kill=True)  # returns once the process is gone: every watch connection is broken
    etcd.start()
    c.put(LSP("LS-A", "vm7", "10.10.1.7", "f2:01:0a:0a:01:07", None, "hv2"))
    c.host("hv2").add_vm_port("vm7", "vm7")
    f = P.icmp_frame(vms["vm1"].mac, "f2:01:0a:0a:01:07", "10.10.1.2", "10.10.1.7")
    assert c.send_until("hv1", "vm1", f, "hv2", "vm7", timeout=20).raw == f
    for h in ("hv1", "hv2"):
        s = c.status(h)
        assert s["engine"]["full_runs"] == 1 and s["engine"]["resyncs"] == 0


def test_vswitchd_restart_flows_and_tlv_map_restored(cluster: Cluster) -> None:
    c = cluster
    vms = tutorial(c)
    c.start_agents("hv1", "hv2")
    f = P.icmp_frame(vms["vm1"].mac, vms["vm2"].mac, "10.10.1.2", "10.10.1.3")
    c.send_until("hv1", "vm1", f, "hv2", "vm2")
    c.host("hv1").restart(ovsdb=False)  # ovs-vswitchd loses every flow and the Geneve TLV map
    assert c.send_until("hv1", "vm1", f, "hv2", "vm2", timeout=20).raw == f
    c.wait_converged("hv1")
    assert c.host("hv1").agent.alive()


def test_foreign_flows_survive_restarts_and_changes(cluster: Cluster) -> None:
    """Third-party flows (another cookie, e.g. in the hook table 201) are never touched."""
    c = cluster
    vms = tutorial(c)
    c.start_agents("hv1")
    c.wait_converged("hv1")
    hv1 = c.host("hv1")
    hv1.ofctl("-O", "OpenFlow15", "add-flow", "br-int", "cookie=0x1234,table=201,priority=10,udp,actions=drop")
    hv1.agent.stop()
    c.put(LSP("LS-A", "vm8", "10.10.1.8", "f2:01:0a:0a:01:08", None, "hv2"))
    agent = hv1.start_agent(c.endpoint, c.prefix)
    wait_for(lambda: (s := c.status("hv1")) and s["pid"] == agent.pid, timeout=20, what="restarted agent ready")
    c.delete(vms["vm3"])
    c.wait_converged("hv1")
    flows = c.flows("hv1")
    assert any("cookie=0x1234" in f and "table=201" in f for f in flows), "\n".join(flows)


def test_tunnel_follows_chassis_ip_change_and_liveness_ends_with_agent(cluster: Cluster) -> None:
    c = cluster
    tutorial(c)
    c.start_agents()
    hv1 = c.host("hv1")
    old, new = tunnel_port_name("192.168.100.4"), tunnel_port_name("192.168.100.44")
    wait_for(lambda: old in hv1.vsctl("list-ports", "br-int"), timeout=10, what="tunnel to hv3")
    c.host("hv3").agent.stop()  # a clean stop revokes the liveness lease at once
    assert c.store.get("liveness/chassis/hv3") is None
    assert c.store.get("entity_view/chassis/hv3") is not None  # the record stays: peers keep their tunnels
    kv = c.store.get("entity_view/chassis/hv3")
    c.store.put(kv.key, kv.value.replace("192.168.100.4", "192.168.100.44"))
    wait_for(lambda: (p := hv1.vsctl("list-ports", "br-int")) and new in p and old not in p, timeout=10,
             what="tunnel replaced for the new IP")
    c.wait_converged("hv1")
    assert any("reg9=0xc0a8642c" in f for f in c.flows("hv1"))  # ports on hv3 now go to 192.168.100.44


def test_status_command_reports_the_running_agent(cluster: Cluster) -> None:
    import subprocess
    import sys

    c = cluster
    tutorial(c)
    c.start_agents("hv1")
    c.wait_converged("hv1")
    r = subprocess.run([sys.executable, "-m", "tuplenet.agent.main", "status", "--rundir", c.rundir("hv1")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"chassis hv1: agent pid {c.host('hv1').agent.pid} running")
    c.host("hv1").agent.stop()
    r = subprocess.run([sys.executable, "-m", "tuplenet.agent.main", "status", "--rundir", c.rundir("hv1")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "NOT running" in r.stdout
