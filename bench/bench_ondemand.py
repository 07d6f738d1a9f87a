"""On-demand mode (ONDEMAND=1): first packets, and what a host holds at scale.

Part 1, simulated hosts (hv1 on-demand with one VM, hv2 full mode with N destination VMs, hv3 the helper: a
pinned router there, full mode): vm1 sends one ping to each of N destinations it never talked to, each
injected exactly once. A first packet is lost if it does not reach its port within 3 s. Latency, from OVS's
own pcap timestamps (vm1's receive queue -> the destination's tx), for first packets (through the helper)
and for a second packet to a sample of them (direct, once learned); the extra latency is the difference of
the medians. It is measured in a second run with 100 destinations: ovs-vswitchd with 1,000 pcap-writing
dummy ports is itself slow (tens of ms per frame whatever the path).

Part 2, the issue's scale view (2,000 chassis, 20,000 ports; 50 local ports): an on-demand agent starts
(cold: no tunnels), its 50 ports then talk to 1 % of the network (200 remote ports, one ping each); reports
its flows against full mode (the same view computed in full mode by the engine, offline), its RSS and its
start time.

Usage: python bench/bench_ondemand.py [--destinations 1000 --sample 100] [--chassis 2000 --ports 20000 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import struct
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_dir import bench_dir  # noqa: E402
from scale_topology import add_scale_args, build, mac  # noqa: E402
from tuplenet.agent.engine import Engine  # noqa: E402
from tuplenet.agent.pipeline.ondemand import MODE_KEY  # noqa: E402
from tuplenet.agent.view import View  # noqa: E402
from tuplenet.model import LR, LS, LSP, parse_key  # noqa: E402
from tuplenet.sandbox import packets as P  # noqa: E402
from tuplenet.sandbox.etcd import EtcdServer  # noqa: E402
from tuplenet.sandbox.procs import wait_for  # noqa: E402
from tuplenet.sandbox.sim import SimNetwork  # noqa: E402
from tuplenet.store import Op, Store  # noqa: E402

PCAP_HEADER = 24


def status(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def arrival(path: str, size0: int, timeout: float) -> float | None:
    """perf_counter() when the pcap at `path` grows past `size0`, or None after `timeout` seconds."""
    end = time.perf_counter() + timeout
    while True:
        try:
            if os.path.getsize(path) > size0:
                return time.perf_counter()
        except OSError:
            pass
        now = time.perf_counter()
        if now > end:
            return None


def probe(src, port: str, frame: bytes, pcap: str, timeout: float = 1.0) -> float | None:
    """Milliseconds from injecting `frame` to its arrival at the port whose tx pcap is `pcap`."""
    try:
        size0 = os.path.getsize(pcap)
    except OSError:
        size0 = PCAP_HEADER
    t0 = time.perf_counter()
    src.inject(port, frame)
    t1 = arrival(pcap, size0, timeout)
    return None if t1 is None else (t1 - t0) * 1000


def pcap_times(path: str) -> list[float]:
    """Timestamps (s) of the records of a pcap file as OVS wrote them (microseconds, wall clock)."""
    with open(path, "rb") as f:
        data = f.read()
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out, off = [], PCAP_HEADER
    while off + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack_from(order + "IIII", data, off)
        out.append(sec + usec / 1e6)
        off += 16 + incl
    return out


def meter_drops(host) -> int:
    """Packets the drop bands of all `host`'s meters have dropped: in this bench only the on-demand packet-in
    meters see traffic."""
    out = host.ofctl("-O", "OpenFlow15", "meter-stats", "br-int")
    return sum(int(m) for m in re.findall(r"\b0: packet_count:(\d+)", out))


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def first_packets(n: int, sample: int) -> None:
    base = bench_dir("tn-bench-ondemand-")
    etcd = EtcdServer(base + "/etcd").start()
    net = SimNetwork(base + "/sim")
    try:
        store = Store(etcd.endpoint, prefix="/tuplenet/")
        hv1, hv2, hv3 = (net.add_host(f"hv{i}", f"192.168.100.{i + 1}") for i in (1, 2, 3))
        ents: list = [LS("LS-A", 1), LR("LR-edge", 9, "hv3")]
        src = LSP("LS-A", "vm1", "10.20.0.2", mac("10.20.0.2"), None, "hv1")
        ents.append(src)
        dests = []
        for i in range(n):
            ip = f"10.20.{1 + i // 250}.{2 + i % 250}"
            dests.append(LSP("LS-A", f"d{i}", ip, mac(ip), None, "hv2"))
        ents += dests
        store.txn_batches([Op.put(e.key, e.to_value()) for e in ents])
        hv1.add_vm_port("vm1", "vm1")
        for chunk in range(0, n, 200):
            args: list[str] = []
            for d in dests[chunk:chunk + 200]:
                args += ["--", "add-port", "br-int", d.name, "--", "set", "Interface", d.name, "type=dummy",
                         f"options:tx_pcap={hv2.pcap_path(d.name, 'tx')}", f"external_ids:iface-id={d.name}"]
            if chunk == 0:
                args = ["--may-exist", "add-br", "br-int", "--", "set", "Bridge", "br-int", "fail-mode=secure",
                        *args]
            hv2.vsctl(*args)
        for h, env in ((hv3, {"ONDEMAND": "0"}), (hv2, {"ONDEMAND": "0"}), (hv1, {"ONDEMAND": "1"})):
            h.start_agent(etcd.endpoint, "/tuplenet/", extra_env=env)
        # ready: every flow in, and the tunnels each host wants are up (hv1, on-demand, only the helper's)
        for h, tunnels in ((hv1, 1), (hv2, 2), (hv3, 2)):
            path = os.path.join(h.dir, "tuplenet", "status.json")
            wait_for(lambda p=path, t=tunnels: (s := status(p)) and s["installed"] == s["flows"]
                     and s["tunnels"] >= t, timeout=120, what=f"{h.name} ready")
        # hv2 has every destination's local flows, and hv3 (the helper) knows them all
        st2 = os.path.join(hv2.dir, "tuplenet", "status.json")
        wait_for(lambda: (s := status(st2)) and s["flows"] > 3 * n and s["installed"] == s["flows"], timeout=120,
                 what="hv2's ports programmed")
        st1 = os.path.join(hv1.dir, "tuplenet", "status.json")
        s1 = wait_for(lambda: status(st1), timeout=10)
        print(f"hv1 (on-demand) before traffic: {s1['flows']} flows; hv2 (full, {n} ports): "
              f"{status(st2)['flows']} flows")
        first, lost = [], []
        for i, d in enumerate(dests):
            ms = probe(hv1, "vm1", P.icmp_frame(src.mac, d.mac, src.ip, d.ip), hv2.pcap_path(d.name, "tx"),
                       timeout=3.0)
            if ms is None:
                lost.append(i)
            else:
                first.append(ms)
        if lost:
            print(f"lost (no arrival within 3 s): destinations #{lost[:20]}")
        try:
            wait_for(lambda: (s := status(st1)) and s["ondemand"]["wanted_ports"] >= n
                     and s["installed"] == s["flows"], timeout=15, interval=0.2, what="hv1 to learn every destination")
        except TimeoutError:  # a copy over the per-source packet-in rate is dropped: learned on its next packet
            print(f"hv1 learned {status(st1)['ondemand']['wanted_ports']} of {n} destinations; its packet-in "
                  f"meters dropped {meter_drops(hv1)} copies over the per-source rate (those frames still went "
                  f"through the helper)")
        learned = {w[1] for w in status(st1)["ondemand"]["wanted"]}
        direct = []
        picked = random.Random(1).sample([d for d in dests if d.name in learned], min(sample, len(learned)))
        for d in picked:
            ms = probe(hv1, "vm1", P.icmp_frame(src.mac, d.mac, src.ip, d.ip, seq=2), hv2.pcap_path(d.name, "tx"))
            if ms is not None:
                direct.append(ms)
        s1 = status(st1)
        # Latency from OVS's own pcap timestamps: vm1's receive queue (injected) -> the destination's tx.
        sent = pcap_times(hv1.pcap_path("vm1", "rx"))
        t_first, t_direct = [], []
        for i, d in enumerate(dests):
            got = pcap_times(hv2.pcap_path(d.name, "tx"))
            if got and i < len(sent):
                t_first.append((got[0] - sent[i]) * 1000)
        for j, d in enumerate(picked):
            got = pcap_times(hv2.pcap_path(d.name, "tx"))
            if len(got) > 1 and n + j < len(sent):
                t_direct.append((got[1] - sent[n + j]) * 1000)
        print(f"first packets to {n} new destinations: {len(lost)} lost; agent copies dropped by the packet-in "
              f"meters: {meter_drops(hv1)}")
        for what, xs in (("first packets (through the helper)", t_first), ("later packets (direct, sampled)", t_direct)):
            print(f"{what}: {len(xs)}, OVS timestamps median {statistics.median(xs):.2f} ms, p90 {pct(xs, 90):.2f} ms, "
                  f"p99 {pct(xs, 99):.2f} ms")
        print(f"first-packet extra latency (median first - median direct, OVS timestamps): "
              f"{statistics.median(t_first) - statistics.median(t_direct):.2f} ms; as the bench saw it (inject -> "
              f"pcap grew): first median {statistics.median(first):.2f} ms, direct {statistics.median(direct):.2f} ms")
        print(f"hv1 after learning {s1['ondemand']['wanted_ports']} destinations: {s1['flows']} flows, "
              f"packet-ins {s1['packet_ins'].get('by_op', {})}, dropped by rate {s1['packet_ins']['dropped_source_rate']}")
        for h in (hv1, hv2, hv3):
            h.stop_agents()
        store.close()
    finally:
        net.destroy()
        etcd.stop()


def full_mode_flows(ents: list, local: list[LSP]) -> int:
    """Flows the same host would have in full mode (the engine, offline: same view, mode fact False)."""
    v, changed = View(), set()
    for e in ents:
        kind, ident = parse_key(e.key)
        v.apply((kind, *ident), e, changed)
    for k, o in {("self",): "hv1", MODE_KEY: False, ("tunfb",): 1,
                 **{("bind", p.name): 100 + i for i, p in enumerate(local)}}.items():
        v.apply(k, o, changed)
    e = Engine(v)
    e.full()
    return len(e.active)


def at_scale(a: argparse.Namespace) -> None:
    base = bench_dir("tn-bench-ondemand-scale-")
    etcd = EtcdServer(base + "/etcd").start()
    net = SimNetwork(base + "/sim")
    try:
        ents = build(a.chassis, a.switches, a.routers, a.ports, "hv1", a.local)
        store = Store(etcd.endpoint, prefix="/tuplenet/")
        store.txn_batches([Op.put(e.key, e.to_value()) for e in ents])
        hv1 = net.add_host("hv1", "172.16.0.3")
        local = [e for e in ents if e.kind == "lsp" and e.chassis == "hv1"]
        args = ["--may-exist", "add-br", "br-int", "--", "set", "Bridge", "br-int", "fail-mode=secure"]
        for e in local:
            args += ["--", "add-port", "br-int", e.name, "--", "set", "Interface", e.name, "type=dummy",
                     f"external_ids:iface-id={e.name}"]
        hv1.vsctl(*args)
        st_path = os.path.join(hv1.dir, "tuplenet", "status.json")
        t0 = time.perf_counter()
        agent = hv1.start_agent(etcd.endpoint, "/tuplenet/", extra_env={"ONDEMAND": "1"})
        s = wait_for(lambda: status(st_path), timeout=120, interval=0.02, what="agent ready")
        t_ready = time.perf_counter() - t0
        s = wait_for(lambda: (x := status(st_path)) and x["installed"] == x["flows"] and x, timeout=120)
        flows0 = s["flows"]
        # Local ports sit in the first switches; talk to remote ports their router reaches (switches of the
        # same router), in their own switch directly, in the others through the (distributed) router.
        lsps = {(e.ls, e.name): e for e in ents if e.kind == "lsp"}
        router_of = {ls: int(ls[2:]) % a.routers for ls in {e.ls for e in local}}
        remote = [e for e in lsps.values() if not e.peer and e.chassis != "hv1"
                  and int(e.ls[2:]) % a.routers in router_of.values()]
        talk = random.Random(2).sample(remote, max(1, a.ports // 100))
        by_router = {}
        for p in local:
            by_router.setdefault(router_of[p.ls], []).append(p)
        for i, d in enumerate(talk):
            srcs = by_router[int(d.ls[2:]) % a.routers]
            src = srcs[i % len(srcs)]
            r = router_of[src.ls]
            dst_mac = d.mac if src.ls == d.ls else lsps[(src.ls, f"{src.ls}_to_lr{r}")].mac
            hv1.inject(src.name, P.icmp_frame(src.mac, dst_mac, src.ip, d.ip))
            time.sleep(0.002)
        want = len(talk)
        s = wait_for(lambda: (x := status(st_path)) and x["ondemand"]["wanted_ports"] >= want
                     and x["installed"] == x["flows"] and x, timeout=120, interval=0.1,
                     what=f"{want} destinations learned")
        settle_from = time.time() + 2.5
        settled = wait_for(lambda: os.path.getmtime(st_path) > settle_from and status(st_path), timeout=30,
                           interval=0.1, what="settled status")
        full = full_mode_flows(ents, local)
        print(f"scale view: {a.chassis} chassis, {a.ports} ports, {len(local)} local; on-demand agent ready in "
              f"{t_ready:.2f} s (agent's own figure {s['ready_ms'] / 1000:.2f} s), {flows0} flows before traffic")
        print(f"after talking to {want} remote ports (1 %): {s['flows']} flows = {100 * s['flows'] / full:.1f} % of "
              f"full mode's {full}; tunnels {s['tunnels']}; RSS {settled['rss_mb']:.0f} MB settled; "
              f"learned {s['ondemand']['learned']}, unknown {s['ondemand']['unknown']}")
        print("start phases (ms since start):", s["start_phases_ms"])
        agent.stop()
        store.close()
    finally:
        net.destroy()
        etcd.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--destinations", type=int, default=1000)
    ap.add_argument("--sample", type=int, default=100)
    ap.add_argument("--latency-destinations", type=int, default=100,
                    help="a second, smaller run for latency: ovs-vswitchd with 1,000 pcap-writing dummy ports "
                         "is itself slow (tens of ms per frame, direct or not)")
    ap.add_argument("--local", type=int, default=50)
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--skip-first", action="store_true")
    add_scale_args(ap)
    a = ap.parse_args()
    if not a.skip_first:
        print(f"--- loss: {a.destinations} new destinations")
        first_packets(a.destinations, a.sample)
        if a.latency_destinations:
            print(f"--- latency: {a.latency_destinations} new destinations (a lighter destination host)")
            first_packets(a.latency_destinations, a.latency_destinations // 2)
    if not a.skip_scale:
        at_scale(a)


if __name__ == "__main__":
    main()
