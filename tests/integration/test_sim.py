"""The dummy-datapath sim itself: hosts come up wired, Geneve crosses them, restarts and teardown behave."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

import fixtures_sim
from fixtures_sim import SIM3_HOSTS
from tuplenet.sandbox import packets as P
from tuplenet.sandbox.agentproc import AgentProcess
from tuplenet.sandbox.procs import wait_for
from tuplenet.sandbox.sim import SimError, SimHost, SimNetwork, process_running

TLV = "{class=0xffee,type=0,len=8}->tun_metadata0"
META = 0x1122334455667788
VNI = 5
VM_PORT = 1
sim_net, sim3 = fixtures_sim.sim_net, fixtures_sim.sim3  # until conftest registers the fixtures


def vm_mac(host: SimHost) -> str:
    return f"50:54:00:00:00:0{host.name[-1]}"


def tunnel_ofport(peer: SimHost) -> int:
    return 10 + int(peer.name[-1])


def wire(net: SimNetwork, *names: str) -> None:
    """Lab Recipe 1 by hand: a VM port per host, a fixed-remote_ip Geneve port per peer, static flows."""
    hosts = [net[n] for n in names]
    for hv in hosts:
        if not hv.vsctl("--bare", "--columns=name", "find", "Interface", "name=vm").strip():
            assert hv.add_vm_port("vm", iface_id=f"lsp-{hv.name}", ofport_request=VM_PORT) == VM_PORT
        if "tun_metadata0" not in hv.ofctl("dump-tlv-map", "br-int"):  # lost only on a restart
            hv.ofctl("add-tlv-map", "br-int", TLV)
        flows = []
        for peer in hosts:
            if peer is hv:
                continue
            port = f"gnv-{peer.name}"
            hv.vsctl("--may-exist", "add-port", "br-int", port, "--", "set", "Interface", port, "type=geneve",
                     f"options:remote_ip={peer.ip}", "options:key=flow", "options:csum=true",
                     f"ofport_request={tunnel_ofport(peer)}")
            flows.append(f"priority=100,in_port={VM_PORT},dl_dst={vm_mac(peer)},actions=set_field:{VNI}->tun_id,"
                         f"set_field:{META:#x}->tun_metadata0,output:{tunnel_ofport(peer)}")
            flows.append(f"priority=90,in_port={VM_PORT},dl_dst=02:ba:d0:00:00:0{peer.name[-1]},"
                         f"actions=set_field:{VNI}->tun_id,set_field:0xbad->tun_metadata0,"
                         f"output:{tunnel_ofport(peer)}")
            flows.append(f"priority=100,in_port={tunnel_ofport(peer)},tun_id={VNI},tun_metadata0={META:#x},"
                         f"actions=output:{VM_PORT}")
        hv.ofctl("add-flows", "br-int", "-", input="\n".join(flows) + "\n")


def ping(src: SimHost, dst: SimHost, dst_mac: str | None = None, seq: int = 1) -> bytes:
    return P.icmp_frame(vm_mac(src), dst_mac or vm_mac(dst), f"10.0.0.{src.name[-1]}",
                        f"10.0.0.{dst.name[-1]}", seq=seq)


def send(src: SimHost, dst: SimHost, frame: bytes) -> list[bytes]:
    """Inject on src's VM, wait for exactly the frames that then reach dst's VM."""
    mark = dst.tx_mark("vm")
    src.inject("vm", frame)
    return dst.wait_tx_after("vm", mark, 1)


def test_hosts_come_up_wired(sim3: SimNetwork) -> None:
    for name, ip in SIM3_HOSTS.items():
        hv = sim3[name]
        assert (hv.name, hv.ip) == (name, ip)
        assert os.path.isabs(hv.db_sock) and os.path.exists(hv.db_sock)
        assert hv.env["OVS_RUNDIR"] == hv.rundir == os.path.dirname(hv.db_sock)
        assert hv.vsctl("get", "Open_vSwitch", ".", "external_ids:system-id").strip().strip('"') == name
        assert hv.vsctl("get", "Interface", "br0", "mac_in_use").strip().strip('"') == hv.mac
        neigh = hv.appctl("tnl/neigh/show")
        for peer in sim3.hosts.values():
            assert (f"{peer.ip} " in neigh and peer.mac in neigh) == (peer is not hv)
        assert f"{ip[:-1]}0/24 dev br0 SRC {ip}" in hv.appctl("ovs/route/show")
        assert "br-int" not in hv.vsctl("list-br").split()
        assert len(hv.daemon_pids()) == 2 and all(process_running(p) for p in hv.daemon_pids())


def test_geneve_frames_cross_unchanged(sim3: SimNetwork) -> None:
    hv1, hv2, hv3 = sim3["hv1"], sim3["hv2"], sim3["hv3"]
    wire(sim3, "hv1", "hv2", "hv3")
    for dst in (hv2, hv3):
        frame = ping(hv1, dst)
        assert send(hv1, dst, frame) == [frame]
    assert send(hv3, hv1, ping(hv3, hv1, seq=9)) == [ping(hv3, hv1, seq=9)]

    # What the underlay carried into hv2 (phy also floods hv3's frames there until it learns hv3's MAC).
    outer = [f for f in map(P.Frame.parse, sim3.phy_frames_to("hv2")) if f.eth_dst == hv2.mac][-1]
    assert (outer.eth_src, outer.eth_dst, outer.ip_src, outer.ip_dst) == (hv1.mac, hv2.mac, hv1.ip, hv2.ip)
    assert (outer.dport, outer.geneve_vni) == (P.GENEVE_PORT, VNI)
    assert [(o.cls, o.type, int.from_bytes(o.data)) for o in outer.geneve_options] == [(0xFFEE, 0, META)]
    assert outer.geneve_inner is not None and outer.geneve_inner.raw == ping(hv1, hv2)
    assert outer.checksum_ok() and sim3.phy_frames_from("hv1")

    # Wrong tunnel metadata is dropped at hv2; the good frame sent after it proves it was processed.
    mark = hv2.tx_mark("vm")
    hv1.inject("vm", ping(hv1, hv2, dst_mac="02:ba:d0:00:00:02", seq=2))
    hv1.inject("vm", ping(hv1, hv2, seq=3))
    assert [P.Frame.parse(f).icmp_seq for f in hv2.wait_tx_after("vm", mark, 1)] == [3]
    assert len(hv2.tx_packets("vm")) == mark + 1


def test_host_restart_keeps_working(sim3: SimNetwork) -> None:
    hv1, hv2 = sim3["hv1"], sim3["hv2"]
    wire(sim3, "hv1", "hv2")
    assert send(hv1, hv2, ping(hv1, hv2)) == [ping(hv1, hv2)]
    before = hv2.tx_mark("vm")
    old_pids = hv2.daemon_pids()

    hv2.stop()
    assert not any(process_running(p) for p in old_pids)
    hv2.start()
    assert set(hv2.daemon_pids()).isdisjoint(old_pids)
    assert hv2.dump_flows() == []  # flows and TLV map live in ovs-vswitchd only
    assert hv2.tx_mark("vm") == before  # the tx pcap is appended to, so marks survive the restart
    wire(sim3, "hv1", "hv2")
    assert send(hv1, hv2, ping(hv1, hv2, seq=2)) == [ping(hv1, hv2, seq=2)]

    db_pid = hv1.pids["ovsdb-server"]
    hv1.restart(ovsdb=False)  # ovs-vswitchd only, as when OVS is upgraded under a running agent
    assert hv1.pids["ovsdb-server"] == db_pid and hv1.ofport("vm") == VM_PORT
    wire(sim3, "hv1", "hv2")
    assert send(hv2, hv1, ping(hv2, hv1, seq=4)) == [ping(hv2, hv1, seq=4)]
    assert send(hv1, hv2, ping(hv1, hv2, seq=5)) == [ping(hv1, hv2, seq=5)]


def test_link_down_and_up(sim3: SimNetwork) -> None:
    hv1, hv2 = sim3["hv1"], sim3["hv2"]
    wire(sim3, "hv1", "hv2")
    assert send(hv1, hv2, ping(hv1, hv2))
    sim3.link_down("hv2")
    hv1.inject("vm", ping(hv1, hv2, seq=2))

    def dropped() -> bool:
        out = sim3.main.ofctl("dump-flows", sim3.phy_bridge, "dl_dst=" + hv2.mac)
        return "n_packets=1," in out
    wait_for(dropped, timeout=5.0, interval=0.005, what="the frame to hit the link-down drop flow")
    sim3.link_up("hv2")
    assert [P.Frame.parse(f).icmp_seq for f in send(hv1, hv2, ping(hv1, hv2, seq=3))] == [3]
    assert [P.Frame.parse(f).icmp_seq for f in hv2.tx_packets("vm")] == [1, 3]


def test_vm_port_lifecycle(sim_net: SimNetwork) -> None:
    hv = sim_net.add_host("hv1", "192.168.100.2")
    assert hv.add_vm_port("vm1", iface_id="lsp1", ofport_request=7) == 7
    assert hv.vsctl("get", "Bridge", "br-int", "fail_mode").strip() == "secure"
    assert hv.vsctl("get", "Bridge", "br-int", "other_config:disable-in-band").strip().strip('"') == "true"
    assert hv.vsctl("get", "Interface", "vm1", "external_ids:iface-id").strip().strip('"') == "lsp1"
    second = hv.add_vm_port("vm2")
    assert second > 0 and second != 7 and hv.ofport("vm2") == second
    hv.set_iface_id("vm2", "lsp2")
    assert hv.vsctl("get", "Interface", "vm2", "external_ids:iface-id").strip().strip('"') == "lsp2"
    hv.set_iface_id("vm2", None)
    assert "iface-id" not in hv.vsctl("get", "Interface", "vm2", "external_ids")

    hv.ofctl("add-flow", "br-int", "priority=10,in_port=7,actions=output:" + str(second))
    frame = P.arp_request("02:00:00:00:00:01", "10.0.0.1", "10.0.0.2")
    hv.inject("vm1", frame)
    assert hv.wait_tx("vm2", 1) == [frame] and hv.rx_packets("vm1") == [frame]
    # ovs-ofctl add-flow speaks OpenFlow 1.0, whose flow_mods imply reset_counts.
    assert hv.dump_flows(table=0) == [f"reset_counts priority=10,in_port=7 actions=output:{second}"]
    assert hv.dump_flows(names=True) == ["reset_counts priority=10,in_port=vm1 actions=output:vm2"]
    assert hv.dump_flows(table=1) == []
    hv.del_vm_port("vm2")
    assert "vm2" not in hv.vsctl("list-ports", "br-int").split()
    with pytest.raises(SimError, match="no row"):
        hv.ofport("vm2")
    hv.add_vm_port("vm2")
    assert hv.tx_packets("vm2") == []  # a re-added port starts a fresh capture

    # A br-int made by someone else (the agent) is used as it is.
    hv2 = sim_net.add_host("hv2", "192.168.100.3")
    hv2.vsctl("add-br", "br-int", "--", "set", "Bridge", "br-int", "fail-mode=standalone")
    hv2.add_vm_port("vm1")
    assert hv2.vsctl("get", "Bridge", "br-int", "fail_mode").strip() == "standalone"


def test_destroy_stops_every_process(tmp_path: Path) -> None:
    t0 = time.monotonic()
    net = SimNetwork(str(tmp_path / "sim"))
    for name, ip in SIM3_HOSTS.items():
        net.add_host(name, ip)
    setup = time.monotonic() - t0
    assert setup < 5.0, f"main + 3 hosts took {setup:.2f}s"
    agent = AgentProcess([sys.executable, "-c", "import time; time.sleep(60)"], os.environ,
                         str(tmp_path / "agent")).start()
    net["hv1"].agents.append(agent)
    pids = net.pids()
    assert len(pids) == 2 * 4 + 1 and all(process_running(p) for p in pids)
    with net:
        pass  # the context manager destroys
    assert not [p for p in pids if process_running(p)]
    net.destroy()  # idempotent


def test_start_agent_command_line(sim_net: SimNetwork) -> None:
    hv = sim_net.add_host("hv1", "192.168.100.2")
    agent = hv.start_agent("127.0.0.1:1", "/t/", extra_env={"GATEWAY": "1", "ONDEMAND": "1"},
                           args=["-i", "1"])
    try:
        assert agent.argv[:3] == [sys.executable, "-m", "tuplenet.agent.main"]
        assert agent.argv[3:] == ["-a", "127.0.0.1:1", "-p", "/t/", "-f", hv.ip, "-l", agent.logdir,
                                  "-i", "1"]
        assert agent.env["TUPLENET_RUNDIR"] == os.path.join(hv.dir, "tuplenet")
        assert agent.env["TUPLENET_OVSDB_PATH"] == hv.db_sock
        assert agent.env["OVS_RUNDIR"] == hv.rundir
        assert (agent.env["ONDEMAND"], agent.env["GATEWAY"]) == ("1", "1")
        assert hv.agent is agent and os.path.isdir(agent.env["TUPLENET_RUNDIR"])
    finally:
        agent.stop()
    assert not agent.alive()


SCRIPT = """
import os, signal, sys, time
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", os.getpid(), os.environ["MARK"], flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("mode", ["polite", "stubborn"])
def test_agent_process_controls(tmp_path: Path, mode: str) -> None:
    env = {**os.environ, "MARK": "m1"}
    agent = AgentProcess([sys.executable, "-c", SCRIPT, mode], env, str(tmp_path / "log")).start()
    wait_for(lambda: f"ready {agent.pid} m1" in agent.output(), timeout=5.0, what="stand-in agent")
    first = agent.pid
    agent.restart(timeout=0.3)
    assert agent.alive() and agent.pid != first and not process_running(first)
    wait_for(lambda: f"ready {agent.pid} m1" in agent.output(), timeout=5.0, what="restarted stand-in")
    assert agent.stop(timeout=0.3) == (-15 if mode == "polite" else -9)
    assert not agent.alive() and agent.stop() == agent.returncode
    agent.start()
    assert agent.kill() == -9 and not agent.alive()
