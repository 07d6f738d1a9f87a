"""Load balancers: (1) 1,000 VIPs x 10 backends on one host - cold start and per-change latency (simulated
host, real agent and etcd); (2) TCP through a VIP vs directly to the backend, in one run (namespace sandbox,
iperf3).

(1) One switch with 10 backend ports and 1,000 load balancers (VIP 10.1.x.y:80 -> the 10 backends at port
8080) written to etcd before the agent starts. Cold start: agent start -> the last VIP's selection flow on
the switch (watched by cookie over a persistent OpenFlow connection), with the agent's flow and group counts.
Per change: (a) a new load balancer -> its VIP flow installed; (b) a backend added to an existing one -> its
un-DNAT flow installed (the group is modified in the same bundle). Medians and p90 over the samples.
(2) client vm1 (hv1) -> backend vm2 (hv2) running iperf3 -s: directly (10.10.1.3) and through the VIP
(10.10.1.100 -> 10.10.1.3:5201), interleaved rounds, medians compared. Budget: ratio >= 0.8. Needs root.

Usage: python bench/bench_lb.py [--vips 1000] [--backends 10] [--samples 30] [--rounds 3] [--seconds 3] [--no-tcp]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bench_dir import bench_dir
from tuplenet.agent.openflow.conn import OpenFlowConnection
from tuplenet.agent.pipeline import lb as L
from tuplenet.agent.view import Reader, View
from tuplenet.model import LS, LSP
from tuplenet.model.lb import Backend, LoadBalancer
from tuplenet.sandbox.etcd import EtcdServer
from tuplenet.sandbox.procs import wait_for
from tuplenet.sandbox.sim import SimNetwork
from tuplenet.store import Store

LS_ID = 1


def _vip(i: int) -> str:
    return f"10.1.{i // 250}.{i % 250 + 1}"


def _lb(i: int, backends: tuple[Backend, ...]) -> LoadBalancer:
    return LoadBalancer("LS", "LS-A", f"lb{i}", _vip(i), 80, "tcp", backends)


def _flows_of(lb: LoadBalancer, ports: list[LSP]) -> list:
    """The flows the agent computes for `lb` (same code, a private view)."""
    v, ch = View(), set()
    v.apply(("LS", "LS-A"), LS("LS-A", LS_ID), ch)
    for p in ports:
        v.apply(("lsp", "LS-A", p.name), p, ch)
    v.apply((lb.kind, lb.dp, lb.name), lb, ch)
    return L.lb_flows(Reader(v), (lb.kind, lb.dp, lb.name), lb)


def _pick(flows: list, table: int, priority: int, field: str | None = None, value: int | None = None) -> int:
    for f in flows:
        if getattr(f, "table", None) == table and f.priority == priority and (
                field is None or any(m.field == field and m.value == value for m in f.match)):
            return f.cookie
    raise LookupError("flow not found")


def _wait_flow(conn: OpenFlowConnection, cookie: int, t0: float, limit: float = 60) -> float:
    while not conn.dump_flows_raw(cookie, (1 << 64) - 1):
        if time.perf_counter() - t0 > limit:
            raise RuntimeError(f"flow {cookie:#x} not installed within {limit} s")
        time.sleep(0.001)
    return (time.perf_counter() - t0) * 1000


def scale(vips: int, nb: int, samples: int) -> dict:
    base = bench_dir("tn-bench-lb-")
    etcd = EtcdServer(base + "/etcd").start()
    net = SimNetwork(base + "/sim")
    try:
        net.add_host("hv1", "192.168.100.2")
        store = Store(etcd.endpoint, prefix="/tuplenet/")
        ports = [LSP("LS-A", f"b{j}", f"10.10.1.{10 + j}", f"f2:01:0a:0a:01:{10 + j:02x}", None, "hv1")
                 for j in range(nb + samples + 1)]
        backends = tuple(Backend(p.ip, 8080) for p in ports[:nb])
        for e in (LS("LS-A", LS_ID), *ports):
            store.put(e.key, e.to_value())
        for i in range(vips):
            lb = _lb(i, backends)
            store.put(lb.key, lb.to_value())
        last = _flows_of(_lb(vips - 1, backends), ports)
        want = _pick(last, L.LS_TABLES.sel, 10)
        hv1 = net["hv1"]
        t0 = time.perf_counter()
        hv1.start_agent(etcd.endpoint, "/tuplenet/")
        wait_for(lambda: os.path.exists(hv1.rundir + "/br-int.mgmt"), timeout=60, what="br-int on hv1")
        conn = OpenFlowConnection(hv1.rundir + "/br-int.mgmt").start()
        cold_ms = _wait_flow(conn, want, t0, 300)
        flows = len(hv1.dump_flows())
        groups = sum(1 for ln in hv1.ofctl("-O", "OpenFlow14", "dump-groups", "br-int").splitlines()
                     if "group_id=" in ln)
        add_ms, backend_ms = [], []
        for s in range(samples + 1):  # the first one of each warms up
            lb = _lb(vips + s, backends)
            want = _pick(_flows_of(lb, ports), L.LS_TABLES.entry, 10)
            t = time.perf_counter()
            store.put(lb.key, lb.to_value())
            ms = _wait_flow(conn, want, t)
            if s:
                add_ms.append(ms)
            old = _lb(s, backends)
            grown = LoadBalancer("LS", "LS-A", old.name, old.vip, 80, "tcp", (*backends, Backend(ports[nb + s].ip, 8080)))
            want = _pick(_flows_of(grown, ports), L.LS_OUT_LB, 5, "nw_src", int.from_bytes(
                bytes(int(o) for o in ports[nb + s].ip.split(".")), "big"))
            t = time.perf_counter()
            store.put(grown.key, grown.to_value())
            ms = _wait_flow(conn, want, t)
            if s:
                backend_ms.append(ms)
        conn.close()
        add_ms.sort()
        backend_ms.sort()
        return {"vips": vips, "backends": nb, "cold_ms": cold_ms, "flows": flows, "groups": groups,
                "add_median_ms": statistics.median(add_ms), "add_p90_ms": add_ms[int(0.9 * (len(add_ms) - 1))],
                "backend_median_ms": statistics.median(backend_ms),
                "backend_p90_ms": backend_ms[int(0.9 * (len(backend_ms) - 1))]}
    finally:
        net.destroy()
        etcd.stop()


def tcp_ratio(rounds: int, seconds: int) -> dict:
    from tuplenet.sandbox.netns import NetnsSandbox, default_mac

    sb = NetnsSandbox(workdir=bench_dir("tn-bench-lb-ns-"), name_prefix="tblb")

    def tpctl(*args: str) -> None:
        r = subprocess.run([sys.executable, "-m", "tuplenet.cli.tpctl", "-e", sb.etcd_endpoint, "-p", "/tuplenet/",
                            *args], capture_output=True, text=True, timeout=30)
        if r.returncode:
            raise RuntimeError(f"tpctl {' '.join(args)}: {r.stderr.strip()}")

    def iperf(host: str) -> float:
        r = sb.exec("vm1", ["iperf3", "-c", host, "-t", str(seconds), "-J"], check=False, timeout=seconds + 30)
        if r.returncode:
            raise RuntimeError(f"iperf3 failed: {r.stdout[-300:]} {r.stderr[-300:]}")
        return json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"] / 1e6

    try:
        sb.up(hosts=2, prefix="/tuplenet/")
        for args in [("ls", "add", "LS-A"), ("lsp", "add", "LS-A", "vm1", "10.10.1.2"),
                     ("lsp", "add", "LS-A", "vm2", "10.10.1.3"),
                     ("lb", "add", "ls", "LS-A", "perf", "10.10.1.100:5201", "10.10.1.3:5201")]:
            tpctl(*args)
        sb.add_vm("vm1", host="hv1", ip="10.10.1.2/24", mac=default_mac("10.10.1.2"))
        sb.add_vm("vm2", host="hv2", ip="10.10.1.3/24", mac=default_mac("10.10.1.3"))
        srv = sb.spawn("vm2", ["iperf3", "-s"])
        probe = [sys.executable, "-c", "import socket; socket.create_connection(('10.10.1.100', 5201), 2).close()"]
        wait_for(lambda: sb.exec("vm1", probe, check=False).returncode == 0, timeout=60, interval=0.3,
                 what="vm1 reaching the VIP")
        time.sleep(1)  # let iperf3 forget the probe connection
        direct, vip = [], []
        try:
            for _ in range(rounds):
                direct.append(iperf("10.10.1.3"))
                vip.append(iperf("10.10.1.100"))
        finally:
            srv.terminate()
            srv.wait(timeout=5)
        d, v = statistics.median(direct), statistics.median(vip)
        return {"direct_mbps": d, "vip_mbps": v, "ratio": v / d, "direct": direct, "vip": vip}
    finally:
        sb.down()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vips", type=int, default=1000)
    ap.add_argument("--backends", type=int, default=10)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--no-tcp", action="store_true")
    a = ap.parse_args()
    r = scale(a.vips, a.backends, a.samples)
    print(f"{r['vips']} VIPs x {r['backends']} backends on one host: cold start (agent start -> last VIP's flows) "
          f"{r['cold_ms'] / 1000:.2f} s, {r['flows']} flows, {r['groups']} groups")
    print(f"per change: new load balancer -> its VIP flow median {r['add_median_ms']:.1f} ms "
          f"(p90 {r['add_p90_ms']:.1f}); backend added -> its flows median {r['backend_median_ms']:.1f} ms "
          f"(p90 {r['backend_p90_ms']:.1f})")
    if a.no_tcp or os.geteuid() != 0:
        print("TCP through the VIP: skipped (needs root)" if not a.no_tcp else "TCP through the VIP: skipped")
        return
    t = tcp_ratio(a.rounds, a.seconds)
    print(f"TCP vm1 (hv1) -> vm2 (hv2): direct {t['direct_mbps']:.0f} Mbit/s, through the VIP {t['vip_mbps']:.0f} "
          f"Mbit/s, ratio {t['ratio']:.2f} (budget >= 0.8; rounds direct {[round(x) for x in t['direct']]}, "
          f"vip {[round(x) for x in t['vip']]})")


if __name__ == "__main__":
    main()
