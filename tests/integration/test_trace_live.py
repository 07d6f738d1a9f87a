"""Live trace across simulated hosts (issue 11 §3): `tpctl trace` without --simulate makes the agent holding
the source port inject a marked packet; every host it reaches reports its part through etcd and tpctl prints
the path in the offline trace's format. Real etcd, real ovs-vswitchd (dummy datapath), real agents."""

from __future__ import annotations

import json
import re
import subprocess

from test_tpctl_helpers import argv, fails, ok, run

from agent_cluster import Cluster, router_chain, tutorial
from edge_topo import EDGE, INTERNET, edge
from tuplenet.sandbox import packets as P
from tuplenet.trace import livewire as W


def live_json(cluster: Cluster, etcd, *args: str) -> dict:
    return json.loads(ok(etcd, cluster.prefix, "trace", "--json", *args))


def steps(doc: dict, chassis: str | None = None) -> list[dict]:
    return [s for h in doc["hops"] if chassis in (None, h["chassis"]) for s in h["steps"]]


def test_switch_and_routed_paths_across_hosts(cluster: Cluster, etcd) -> None:
    c = cluster
    vms = tutorial(c)
    c.start_agents()
    c.wait_converged()
    # switch path: vm1 (hv1) -> vm2 (hv2), a real packet arrives at vm2
    mark = c.host("hv2").tx_mark("vm2")
    doc = live_json(c, etcd, "-s", "LS-A/vm1", "--dst-ip", vms["vm2"].ip)
    assert [h["chassis"] for h in doc["hops"]] == ["hv1", "hv2"]
    assert doc["hops"][1]["from_chassis"] == "hv1" and doc["hops"][1]["in_port_name"] == "tunnel port of hv1"
    assert doc["result"] == "delivered"
    assert [(o["chassis"], o["switch"], o["port"]) for o in doc["outcomes"]] == [("hv2", "LS-A", "vm2")]
    assert doc["live"]["reports"] == 2
    got = P.parse(c.host("hv2").wait_tx_after("vm2", mark, 1, timeout=5)[-1])
    assert (got.ip_src, got.ip_dst) == (vms["vm1"].ip, vms["vm2"].ip)  # the traced packet itself
    seen = {(h["chassis"], s["stage"], s["owner"]) for h in doc["hops"] for s in h["steps"]}
    assert ("hv1", "classify", "lsp LS-A/vm1") in seen and ("hv1", "to_chassis", "chassis hv2") in seen
    assert ("hv2", "classify", "tunnel hv1") in seen and ("hv2", "ls_out_port", "lsp LS-A/vm2") in seen

    # routed, text form: the same report as the offline trace
    text = ok(etcd, c.prefix, "trace", "-s", "LS-A/vm1", "--dst-ip", vms["vm4"].ip)
    assert text.startswith("trace from LS-A/vm1: icmp 10.10.1.2 > 10.10.2.3 type 8 code 0 ttl 64")
    assert "hv1: in LS-A/vm1\n" in text and "hv3: in tunnel port of hv1 (Geneve from hv1)\n" in text
    assert "  router LR-central\n" in text and " lr_in_route " in text
    assert text.endswith("=> delivered to LS-B/vm4 on hv3\nresult: delivered\n")
    sim = json.loads(ok(etcd, c.prefix, "trace", "--simulate", "--json", "-s", "LS-A/vm1", "--dst-ip", vms["vm4"].ip))
    live = live_json(c, etcd, "-s", "LS-A/vm1", "--dst-ip", vms["vm4"].ip)
    # the same logical objects as the simulation (ofports, tunnel choice and so some rules differ: the
    # simulation's local facts are synthetic)
    assert [[(s["table"], s["owner"]) for s in h["steps"] if s["owner"] != "const"] for h in live["hops"]] == \
        [[(s["table"], s["owner"]) for s in h["steps"] if s["owner"] != "const"] for h in sim["hops"]]


def test_router_chain_crosses_hosts_back_and_forth(cluster: Cluster, etcd) -> None:
    c = cluster
    router_chain(c)
    src = c.vm("hv1", "LS-A", "vm1", "10.10.1.2", "f2:01:0a:0a:01:02")
    c.vm("hv2", "LS-D", "vm2", "10.10.4.2", "f2:01:0a:0a:04:02")
    c.start_agents("hv1", "hv2")
    c.wait_converged("hv1", "hv2")
    # the tunnel to a pinned router's chassis carries traffic once BFD says it is up
    c.send_until("hv1", "vm1", P.icmp_frame(src.mac, "f2:01:0a:0a:01:01", src.ip, "10.10.4.2"), "hv2", "vm2")
    doc = live_json(c, etcd, "-s", f"LS-A/{src.name}", "--dst-ip", "10.10.4.2")
    assert [h["chassis"] for h in doc["hops"]] == ["hv1", "hv2", "hv1", "hv2"]
    assert [h["from_chassis"] for h in doc["hops"]] == [None, "hv1", "hv2", "hv1"]
    routers = [s["datapath"] for s in steps(doc) if s["stage"] == "lr_in_route"]
    assert routers == ["LR-A", "LR-B", "LR-C"]  # LS-D is LR-C's own network
    assert doc["result"] == "delivered" and doc["outcomes"][0]["packet"]["nw_ttl"] == 61
    assert [(o["chassis"], o["port"]) for o in doc["outcomes"]] == [("hv2", "vm2")]


def test_edge_path_leaves_through_the_edge_patch_port(cluster: Cluster, etcd) -> None:
    c = cluster
    edge(c)
    c.host(EDGE).env["GATEWAY"] = "1"  # an edge runs as a gateway (BFD on its tunnels answers the hosts')
    c.start_agents()
    c.wait_converged()
    ping = P.icmp_frame("f2:01:0a:0a:01:02", "f2:01:0a:0a:01:01", "10.10.1.2", INTERNET)
    c.send_until("hv1", "vm1", ping, EDGE, "ext")  # the tunnel to the edge is up (BFD)
    mark = c.host(EDGE).tx_mark("ext")
    doc = live_json(c, etcd, "-s", "LS-A/vm1", "--dst-ip", INTERNET)
    assert [h["chassis"] for h in doc["hops"]] == ["hv1", EDGE]
    assert doc["result"] == "physical"
    assert [(o["chassis"], o["switch"], o["port"]) for o in doc["outcomes"]] == [(EDGE, "LS-out", "phy")]
    routes = [(h["chassis"], s["datapath"], s["owner"]) for h in doc["hops"] for s in h["steps"]
              if s["stage"] == "lr_in_route"]
    assert routes == [("hv1", "LR-central", "lsr LR-central/out"), (EDGE, "LR-edge", "lsr LR-edge/out")]
    out = P.parse(c.host(EDGE).wait_tx_after("ext", mark, 1, timeout=5)[-1])
    assert out.ip_dst == INTERNET  # the traced packet itself left for the outside


def test_on_demand_first_packet_is_traced_through_the_helper(cluster: Cluster, etcd) -> None:
    from test_ondemand import VM2, topology

    c = cluster
    topology(c)  # hv1, hv2 on demand; hv3 the full-mode helper
    doc = live_json(c, etcd, "-s", "LS-A/vm1", "--dst-ip", VM2[1])
    assert [h["chassis"] for h in doc["hops"]] == ["hv1", "hv3", "hv2"]  # the miss went through the helper
    assert ("hv2", "LS-A", "vm2") in [(o["chassis"], o.get("switch"), o.get("port")) for o in doc["outcomes"]]
    assert any(o["result"] == "controller" and o["chassis"] == "hv1" for o in doc["outcomes"])  # the miss


def test_drop_names_the_rule_and_two_traces_at_once(cluster: Cluster, etcd) -> None:
    c = cluster
    tutorial(c)
    c.start_agents()
    c.wait_converged()
    # garbage under the agent's command prefix is ignored (counted, logged once), the next trace works
    c.store.put(W.command_key("hv1", 77), "cmd=pkt_trace,packet=zz,port=vm1")
    c.store.put("communicate/push/hv1/cmd/x", "\x00" * 50)
    doc = live_json(c, etcd, "-s", "LS-A/vm1", "--dst-ip", "8.8.8.8")
    assert doc["result"] == "dropped" and [h["chassis"] for h in doc["hops"]] == ["hv1"]
    assert c.host("hv1").agent.alive()
    stats = c.status_until("hv1", lambda s: s["live_trace"]["bad_commands"] >= 2, "bad commands counted")["live_trace"]
    assert stats["bad_commands"] == 2 and stats["commands"] >= 1 and stats["report_errors"] == 0
    assert doc["outcomes"] == [{"result": "drop", "chassis": "hv1",
                                "reason": "no port with destination MAC 00:00:00:00:00:00 in switch LS-B"}]
    dead = [(s["stage"], e["text"]) for s in steps(doc) for e in s["events"] if e["kind"] == "dead_end"]
    assert dead[0][0] == "ls_mac_bind" and dead[0][1].startswith("next hop 10.10.2.254 is unknown in switch LS-B")
    route = [s for s in steps(doc) if s["stage"] == "lr_in_route"][0]
    assert route["owner"] == "lsr LR-central/outside" and route["rule"].startswith("table=37,")

    # two tpctl processes at once: distinct command ids, each its own path
    cmd = ["-s", "LS-A/vm1", "--json", "--dst-ip"]
    base = [*argv(etcd, c.prefix, "trace"), *cmd]
    procs = [subprocess.Popen([*base, ip], stdout=subprocess.PIPE, text=True) for ip in ("10.10.1.3", "10.10.2.3")]
    docs = [json.loads(p.communicate(timeout=30)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert docs[0]["live"]["cmd_id"] != docs[1]["live"]["cmd_id"]
    assert [(o["chassis"], o["port"]) for d in docs for o in d["outcomes"]] == [("hv2", "vm2"), ("hv3", "vm4")]

    # a flow changed by hand (same cookie, so the walk still trusts it): the drop stage tells what happened
    [flow] = [f for f in c.host("hv2").dump_flows(table=22) if "metadata=0x1" in f and "reg1=0x103" in f]
    c.host("hv2").ofctl("mod-flows", "--strict", "br-int", flow.split(" actions=")[0] + ",actions=resubmit(,101)")
    assert [f for f in c.host("hv2").dump_flows(table=22) if f.startswith(flow.split(",")[0]) and "101" in f]
    doc = live_json(c, etcd, "-s", "LS-A/vm1", "--dst-ip", "10.10.1.3")
    assert doc["result"] == "dropped" and doc["live"]["switch_drops"][0]["chassis"] == "hv2"
    assert doc["outcomes"][0]["reason"].startswith("the switch dropped it in the drop stage (switch LS-A, vm1>vm2) "
                                                   "where the walk of its flows said: delivered to LS-A/vm2 on hv2")


def test_detect_finds_a_broken_pair_and_is_quiet_otherwise(cluster: Cluster, etcd) -> None:
    c = cluster
    tutorial(c)
    c.start_agents()
    c.wait_converged()
    r = run(etcd, c.prefix, "trace", "--detect", "--pairs", "12")  # every pair of the 4 VMs
    assert (r.rc, r.out, r.err) == (0, "", "")
    # a flow removed by hand: hv3 no longer delivers to vm4 (its ls_out_port flow)
    host = c.host("hv3")
    [flow] = [f for f in host.dump_flows(table=22) if "metadata=0x2" in f and "reg1=0x203" in f]
    host.ofctl("del-flows", "--strict", "br-int", re.sub(r"cookie=0x[0-9a-f]+, *", "", flow.split(" actions=")[0]))
    r = run(etcd, c.prefix, "trace", "--detect", "--pairs", "12")
    assert r.rc == 3, r
    lines = r.out.splitlines()
    assert lines and all(" -> LS-B/vm4 (10.10.2.3): " in ln for ln in lines)
    assert all("dropped on hv3: " in ln for ln in lines)


def test_errors(cluster: Cluster, etcd) -> None:
    c = cluster
    tutorial(c)
    fails(etcd, c.prefix, "trace", "-s", "LS-A/nope", "--dst-ip", "1.2.3.4", match="logical port LS-A/nope does not exist")
    fails(etcd, c.prefix, "trace", "-s", "LS-A/vm1", "--dst-ip", "10.10.1.3", "--wait", "0.3",
          match="no report from chassis hv1 within 0.3 s")  # no agent runs
    fails(etcd, c.prefix, "trace", "--detect", "--pairs", "0", match="--pairs must be 1..100")
    fails(etcd, c.prefix, "trace", "--detect", "--simulate", match="drop --simulate")
    assert W.result_prefix(7) == "communicate/cmd_result/7/"
