"""Live trace budget (issue 11 §3): `tpctl trace` of a real marked packet across 3 simulated hosts answers
in <= 1 s, clocked from the tpctl process start to the printed path (its exit).

Topology: LS-A (vm1 on hv1) and LS-B (vm2 on hv3) behind LR-AB pinned to hv2, so the packet crosses
hv1 -> hv2 -> hv3 and three agents report. Real etcd and agents, dummy-datapath OVS. Prints figures.

    .venv/bin/python bench/bench_live_trace.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from bench_dir import bench_dir
from tuplenet.model import LR, LRP, LS, LSP
from tuplenet.sandbox.etcd import EtcdServer
from tuplenet.sandbox.procs import wait_for
from tuplenet.sandbox.sim import SimNetwork
from tuplenet.store import Store

HOSTS = {"hv1": "192.168.100.2", "hv2": "192.168.100.3", "hv3": "192.168.100.4"}
PREFIX = "/tuplenet/"


def mac(ip: str) -> str:
    return "f2:01:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


def topology(store: Store) -> None:
    ents: list = [LS("LS-A", 1), LS("LS-B", 2), LR("LR-AB", 3, "hv2")]
    for ls, ip in (("LS-A", "10.10.1.1"), ("LS-B", "10.10.2.1")):
        ents += [LRP("LR-AB", f"LR-AB_to_{ls}", ip, 24, mac(ip), f"{ls}_to_LR-AB"),
                 LSP(ls, f"{ls}_to_LR-AB", ip, mac(ip), f"LR-AB_to_{ls}")]
    ents += [LSP("LS-A", "vm1", "10.10.1.2", mac("10.10.1.2"), None, "hv1"),
             LSP("LS-B", "vm2", "10.10.2.2", mac("10.10.2.2"), None, "hv3")]
    for e in ents:
        store.put(e.key, e.to_value())


def tpctl(endpoint: str, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "tuplenet.cli.tpctl", "-e", endpoint, "-p", PREFIX, "trace", *args],
                       capture_output=True, text=True, timeout=30)
    return time.perf_counter() - t0, p


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    opts = ap.parse_args()
    base = bench_dir("tn-bench-livetrace-")
    etcd = EtcdServer(base + "/etcd").start()
    net = SimNetwork(base + "/sim")
    try:
        for n, ip in HOSTS.items():
            net.add_host(n, ip)
        net.install_arp()
        store = Store(etcd.endpoint, prefix=PREFIX)
        topology(store)
        net["hv1"].add_vm_port("vm1", "vm1")
        net["hv3"].add_vm_port("vm2", "vm2")
        for n in HOSTS:
            net[n].start_agent(etcd.endpoint, PREFIX)
        args = ("--json", "-s", "LS-A/vm1", "--dst-ip", "10.10.2.2", "--wait", "2")

        def delivered() -> bool:
            _t, p = tpctl(etcd.endpoint, *args)
            return p.returncode == 0 and json.loads(p.stdout)["result"] == "delivered"

        wait_for(delivered, timeout=60, interval=0.5, what="a first live trace delivered to vm2")
        secs, hosts = [], None
        for _ in range(opts.runs):
            t, p = tpctl(etcd.endpoint, *args)
            doc = json.loads(p.stdout)
            assert doc["result"] == "delivered", doc["outcomes"]
            hosts = [h["chassis"] for h in doc["hops"]]
            secs.append(t)
        start = statistics.median(tpctl(etcd.endpoint, "--help")[0] for _ in range(5))
        secs.sort()
        print(f"live trace across {' -> '.join(hosts or [])}, {opts.runs} runs, tpctl start to printed path:")
        print(f"   median {1000 * statistics.median(secs):.0f} ms, p90 {1000 * secs[int(0.9 * len(secs)) - 1]:.0f} ms, "
              f"max {1000 * secs[-1]:.0f} ms (budget 1000 ms); tpctl trace --help alone {1000 * start:.0f} ms")
        return 0
    finally:
        net.destroy()
        etcd.stop()


if __name__ == "__main__":
    sys.exit(main())
