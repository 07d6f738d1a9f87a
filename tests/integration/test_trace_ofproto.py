"""The offline interpreter against ovs-vswitchd itself: real agents program simulated hosts, and for a
corpus of packets (switching, routing across chained routers, ARP, TTL expiry, drops) the tables our
interpreter visits on every host, in order, and where the packet goes must equal what
`ovs-appctl ofproto/trace` reports for the same packet on the same flows."""

from __future__ import annotations

import re

import pytest

from agent_cluster import Cluster, derived_mac, router_chain, tutorial
from tuplenet.agent import check
from tuplenet.agent.flow import fmt_ip, fmt_mac
from tuplenet.model import LNAT
from tuplenet.sandbox import packets as P
from tuplenet.sandbox.ovsd import OvsSim
from tuplenet.trace.fabric import Fabric, Model
from tuplenet.trace.interp import HopTrace
from tuplenet.trace.packet import decode_frame

_TABLE = re.compile(r"^\s*(\d+)\. (.*)$")


def ofproto_trace(host: OvsSim, spec: str, frame: bytes | None = None) -> tuple[list[int], str, str]:
    """(tables visited on br-int in order, datapath actions, raw output)."""
    args = ["ofproto/trace", "br-int", spec] + ([frame.hex()] if frame is not None else [])
    out = host.appctl(*args)
    tables: list[int] = []
    in_br_int = False
    for line in out.splitlines():
        if line.startswith("bridge("):
            in_br_int = line.startswith('bridge("br-int")')
            continue
        m = _TABLE.match(line)
        if m and in_br_int:
            tables.append(int(m.group(1)))
    # A ct(table=...) recirculates: ofproto/trace goes on with the recirculated packet (as a new connection)
    # and prints one "Datapath actions" line per pass; the outputs are those of all passes.
    passes = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Datapath actions:")]
    actions = ",".join(a for a in passes if a != "drop") or ("drop" if passes else "")
    return tables, actions, out


def flow_spec(pkt: dict[str, int]) -> str:
    """Our packet as an ofproto/trace flow (for hops that start from a tunnel)."""
    parts = [f"in_port={pkt['in_port']}"]
    if pkt["tun_id"] or pkt["tun_src"]:
        parts += [f"tun_id={pkt['tun_id']:#x}", f"tun_src={fmt_ip(pkt['tun_src'])}",
                  f"tun_dst={fmt_ip(pkt['tun_dst'])}", f"tun_metadata0={pkt['tun_metadata0']:#x}"]
    parts += [f"dl_src={fmt_mac(pkt['dl_src'])}", f"dl_dst={fmt_mac(pkt['dl_dst'])}", f"dl_type={pkt['dl_type']:#06x}"]
    if pkt["dl_type"] == 0x0800:
        parts += [f"nw_src={fmt_ip(pkt['nw_src'])}", f"nw_dst={fmt_ip(pkt['nw_dst'])}",
                  f"nw_proto={pkt['nw_proto']}", f"nw_ttl={pkt['nw_ttl']}"]
        if pkt["nw_proto"] == 1:
            parts += [f"icmp_type={pkt['icmp_type']}", f"icmp_code={pkt['icmp_code']}"]
        elif pkt["nw_proto"] in (6, 17):
            p = "tcp" if pkt["nw_proto"] == 6 else "udp"
            parts += [f"{p}_src={pkt[p + '_src']}", f"{p}_dst={pkt[p + '_dst']}"]
    elif pkt["dl_type"] == 0x0806:
        parts += [f"arp_op={pkt['arp_op']}", f"arp_spa={fmt_ip(pkt['arp_spa'])}", f"arp_tpa={fmt_ip(pkt['arp_tpa'])}",
                  f"arp_sha={fmt_mac(pkt['arp_sha'])}", f"arp_tha={fmt_mac(pkt['arp_tha'])}"]
    return ",".join(parts)


def dp_ports(host: OvsSim) -> dict[int, int]:
    """br-int ofport -> datapath port number (datapath actions name the latter)."""
    out = host.appctl("dpif/show")
    ports: dict[int, int] = {}
    in_br_int = False
    for line in out.splitlines():
        s = line.strip()
        if s.endswith(":") and " " not in s:
            in_br_int = s == "br-int:"
            continue
        m = re.match(r"^\S+ (\d+)/(\d+):", s)
        if m and in_br_int:
            ports[int(m.group(1))] = int(m.group(2))
    return ports


def expected_actions(hop: HopTrace, c: Cluster, fab: Fabric) -> tuple[set[str], bool]:
    """What the datapath actions must show for our hop: dp ports of deliveries, tunnel destinations,
    a controller action; (set, dropped)."""
    want: set[str] = set()
    ports = dp_ports(c.host(hop.chassis))
    for e in hop.events:
        if e.kind == "deliver":
            want.add(f"port {ports[e.data['ofport']]}")
        elif e.kind == "tunnel":
            want.add(f"tunnel {c.host(e.data['to_chassis']).ip}")
        elif e.kind == "controller":
            want.add("controller")
    errors = any(e.kind == "error" for e in hop.events)
    return (set() if errors else want), (errors or not want)


def observed_actions(actions: str, host: OvsSim) -> set[str]:
    got: set[str] = set()
    if actions == "drop":
        return got
    ports = set(dp_ports(host).values())
    for m in re.finditer(r"tnl_push\(.*?dst=(\d+\.\d+\.\d+\.\d+)", actions):
        got.add(f"tunnel {m.group(1)}")
    if "userspace(" in actions and "controller(" in actions:
        got.add("controller")
    plain = re.sub(r"\w+\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)", "", actions)  # drop nested actions
    for tok in plain.split(","):
        tok = tok.strip()
        if tok.isdigit() and int(tok) in ports:
            got.add(f"port {int(tok)}")
    return got


def compare(c: Cluster, fab: Fabric, host: str, src_port: str, frame: bytes) -> list:
    """Trace `frame` from VM port `src_port` on `host` both ways, hop by hop; returns our hops."""
    chassis, ofport = host, c.host(host).ofport(src_port)
    t = fab.trace_from(src_port, chassis, ofport, decode_frame(frame))
    assert t.hops
    for i, hop in enumerate(t.hops):
        h = hop.trace
        sim = c.host(h.chassis)
        spec = f"in_port={h.in_port}" if i == 0 else flow_spec(h.entry)
        tables, actions, raw = ofproto_trace(sim, spec, frame if i == 0 else None)
        ours = [s.table for s in h.steps]
        assert ours == tables, f"hop {i} on {h.chassis}: tables differ\nours {ours}\novs  {tables}\n{raw}"
        want, dropped = expected_actions(h, c, fab)
        got = observed_actions(actions, sim)
        assert got == want, f"hop {i} on {h.chassis}: ours {want} vs datapath actions {actions!r}\n{raw}"
        assert dropped == (not got), f"hop {i}: {actions!r}"  # (passes before a recirculation output nothing)
    return t.hops


def fabric_of(c: Cluster, *hosts: str) -> Fabric:
    """Each host's flows as `tuplenet check` computes them (real ofports from its OVS)."""
    engines = {h: check.compute_desired(c.cfg(h))[0] for h in hosts}
    view = next(iter(engines.values())).view
    return Fabric(Model(view.facts, view.created), engines=engines)


def test_tutorial_corpus_matches_ofproto_trace(cluster: Cluster) -> None:
    c = cluster
    vms = tutorial(c)
    c.put(LNAT("LR-central", "snat", "10.10.1.0", 24, "snat", "10.10.2.100"))  # its address answers ARP
    c.start_agents()
    c.wait_converged()
    fab = fabric_of(c, "hv1", "hv2", "hv3")
    vm1, r_a = vms["vm1"], "f2:01:0a:0a:01:01"
    corpus = {
        "switch, across hosts": P.icmp_frame(vm1.mac, vms["vm2"].mac, vm1.ip, vms["vm2"].ip),
        "routed, same host": P.icmp_frame(vm1.mac, r_a, vm1.ip, vms["vm3"].ip),
        "routed, across hosts": P.icmp_frame(vm1.mac, r_a, vm1.ip, vms["vm4"].ip),
        "routed tcp": P.eth(r_a, vm1.mac, P.ETH_IP, P.ipv4(vm1.ip, vms["vm4"].ip, P.PROTO_TCP,
                                                        P.tcp(5555, 22, src=vm1.ip, dst=vms["vm4"].ip))),
        "routed udp": P.eth(r_a, vm1.mac, P.ETH_IP, P.ipv4(vm1.ip, vms["vm4"].ip, P.PROTO_UDP,
                                                        P.udp(5555, 53, src=vm1.ip, dst=vms["vm4"].ip))),
        "arp responder": P.arp_request(vm1.mac, vm1.ip, vms["vm2"].ip),
        "arp for the router": P.arp_request(vm1.mac, vm1.ip, "10.10.1.1"),
        "arp unknown": P.arp_request(vm1.mac, vm1.ip, "10.10.1.99"),
        "arp for a NAT address": P.arp_request(vm1.mac, vm1.ip, "10.10.2.100"),
        "to the NAT MAC": P.icmp_frame(vm1.mac, "f2:01:0a:0a:02:64", vm1.ip, vms["vm4"].ip),
        "echo to router": P.icmp_frame(vm1.mac, r_a, vm1.ip, "10.10.2.1"),
        "ttl 1": P.icmp_frame(vm1.mac, r_a, vm1.ip, vms["vm4"].ip, ttl=1),
        "ttl 0": P.icmp_frame(vm1.mac, r_a, vm1.ip, vms["vm4"].ip, ttl=0),
        "unknown mac": P.icmp_frame(vm1.mac, "f2:01:0a:0a:01:63", vm1.ip, "10.10.1.99"),
        "unknown next hop": P.icmp_frame(vm1.mac, r_a, vm1.ip, "8.8.8.8"),
        "spoofed mac": P.icmp_frame("f2:01:0a:0a:01:63", vms["vm2"].mac, vm1.ip, vms["vm2"].ip),
        "spoofed ip": P.icmp_frame(vm1.mac, vms["vm2"].mac, "10.10.1.99", vms["vm2"].ip),
        "spoofed arp": P.arp_request(vm1.mac, vms["vm2"].ip, "10.10.1.1"),
        "ipv6 (port security)": P.eth(r_a, vm1.mac, 0x86DD, b"\x60" + bytes(39)),
    }
    results = {}
    for name, frame in corpus.items():
        hops = compare(c, fab, "hv1", "vm1", frame)
        results[name] = [h.trace.chassis for h in hops]
    assert results["switch, across hosts"] == ["hv1", "hv2"]
    assert results["routed, across hosts"] == ["hv1", "hv3"]
    assert results["routed, same host"] == results["arp responder"] == results["arp for a NAT address"] == ["hv1"]


def test_router_chain_corpus_matches_ofproto_trace(cluster: Cluster) -> None:
    c = cluster
    router_chain(c)
    a = c.vm("hv1", "LS-A", "vma", "10.10.1.10", derived_mac("10.10.1.10"))
    d = c.vm("hv2", "LS-D", "vmd", "10.10.4.10", derived_mac("10.10.4.10"))
    c.start_agents("hv1", "hv2")
    c.wait_converged("hv1", "hv2")
    fab = fabric_of(c, "hv1", "hv2")
    hops = compare(c, fab, "hv1", "vma", P.icmp_frame(a.mac, derived_mac("10.10.1.1"), a.ip, d.ip))
    assert [h.trace.chassis for h in hops] == ["hv1", "hv2", "hv1", "hv2"]
    compare(c, fab, "hv1", "vma", P.icmp_frame(a.mac, derived_mac("10.10.1.1"), a.ip, d.ip, ttl=2))  # dies in LR-B
    compare(c, fab, "hv1", "vma", P.icmp_frame(a.mac, derived_mac("10.10.1.1"), a.ip, "10.10.4.4"))  # echo from LR-D
    back = compare(c, fab, "hv2", "vmd", P.icmp_frame(d.mac, derived_mac("10.10.4.3"), d.ip, a.ip, type=0))
    assert back[-1].trace.chassis == "hv1"


@pytest.mark.parametrize(("backward", "delivered"), [(64, True), (65, False)])
def test_translation_depth_limit_matches_ovs(sim_net, backward: int, delivered: bool) -> None:
    """Resubmits to earlier tables nest; OVS allows 64 and drops the packet on the 65th. Our interpreter
    must agree on the same flows (and on 200 forward resubmits, which do not nest)."""
    from tuplenet.agent.flow import Flow, Output, Resubmit
    from tuplenet.trace.compiled import compile_tables
    from tuplenet.trace.interp import ChassisPipeline, Port
    from tuplenet.trace.names import Names

    h = sim_net.add_host("hv1", "192.168.100.2")
    h.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
    for p in (1, 2):
        h.vsctl("add-port", "br-int", f"p{p}", "--", "set", "Interface", f"p{p}", "type=dummy", f"ofport_request={p}")
    n = backward  # 250 -> n is the first backward resubmit, then n-1 more down to table 1
    flows = [Flow(0, 0, (), (Resubmit(210),)), *(Flow(i, 0, (), (Resubmit(i + 1),)) for i in range(210, 250)),
             Flow(250, 0, (), (Resubmit(n),)), *(Flow(i, 0, (), (Resubmit(i - 1),)) for i in range(2, n + 1)),
             Flow(1, 0, (), (Output(2),))]
    h.ofctl("add-flows", "br-int", "-", input="".join(f.body_text() + "\n" for f in flows))
    frame = P.icmp_frame("f2:00:00:00:00:01", "f2:00:00:00:00:02", "10.0.0.1", "10.0.0.2")
    tables, actions, raw = ofproto_trace(h, "in_port=1", frame)
    cp = ChassisPipeline("hv1", compile_tables(flows, {}), {2: Port("vif", "p2", "S")}, Names({}), {})
    hop = cp.walk(decode_frame(frame), 1)
    assert [s.table for s in hop.steps] == tables
    assert (actions != "drop") == delivered, raw
    assert [e.kind for e in hop.events] == (["deliver"] if delivered else ["error"])


def test_clone_and_groups_match_ovs(sim_net) -> None:
    """clone() and group buckets work on a copy of the packet; an `all` group runs every bucket, a
    fast-failover group its first live one (select groups hash in OVS and are not compared)."""
    from tuplenet.agent.flow import Clone, Flow, Load, Output, Resubmit, ToGroup, match
    from tuplenet.agent.outputs import Bucket, Group
    from tuplenet.trace.compiled import compile_groups, compile_tables
    from tuplenet.trace.interp import ChassisPipeline, Port
    from tuplenet.trace.names import Names

    h = sim_net.add_host("hv1", "192.168.100.2")
    h.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
    for p in (1, 2, 3):
        h.vsctl("add-port", "br-int", f"p{p}", "--", "set", "Interface", f"p{p}", "type=dummy", f"ofport_request={p}")
    groups = [Group(7, "all", (Bucket((Output(2),)), Bucket((Load("reg1", 5), Resubmit(1))))),
              Group(8, "fast_failover", (Bucket((Output(3),), watch_port=3), Bucket((Output(2),), watch_port=2)))]
    for g in groups:
        h.ofctl("-O", "OpenFlow15", "add-group", "br-int", g.text())
    flows = [Flow(0, 5, match(dl_dst=1), (Clone((Load("reg1", 5), Resubmit(1))), Resubmit(2))),
             Flow(0, 5, match(dl_dst=2), (ToGroup(7), Output(3))),
             Flow(0, 5, match(dl_dst=3), (ToGroup(8),)),
             Flow(1, 5, match(reg1=5), (Output(3),)), Flow(1, 0), Flow(2, 0, (), (Output(2),))]
    h.ofctl("-O", "OpenFlow15", "add-flows", "br-int", "-", input="".join(f.body_text() + "\n" for f in flows))
    ports = {2: Port("vif", "p2", "S"), 3: Port("vif", "p3", "S")}
    cp = ChassisPipeline("hv1", compile_tables(flows, {}), ports, Names({}), {}, compile_groups(groups))
    dp = dp_ports(h)
    for dst in (1, 2, 3):
        frame = P.eth(dst.to_bytes(6, "big"), b"\x02" * 6, P.ETH_IP,
                      P.ipv4("10.0.0.1", "10.0.0.2", P.PROTO_UDP, P.udp(1, 2, src="10.0.0.1", dst="10.0.0.2")))
        tables, actions, raw = ofproto_trace(h, "in_port=1", frame)
        hop = cp.walk(decode_frame(frame), 1)
        assert [s.table for s in hop.steps] == tables, raw
        ours = [str(dp[e.data["ofport"]]) for e in hop.events if e.kind == "deliver"]
        assert ",".join(ours) == actions, raw
        assert ours, "every case delivers somewhere"
