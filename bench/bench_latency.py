"""Latency from `lsp add` (+ binding by the agent) to flows installed on the owning host and on a peer.

Three simulated hosts with real agents and etcd; `--existing` ports already in the topology; for each of
`--samples` new ports: the VM interface (iface-id) is plugged on hv2 first, then the logical port is added
without a chassis, exactly as `tpctl lsp add` writes it. hv2's agent binds it (CAS write of chassis=hv2),
both agents compute and install. Flows are watched by cookie over a persistent OpenFlow connection.

Usage: python bench/bench_latency.py [--existing 1000] [--samples 100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_dir import bench_dir  # noqa: E402
from scale_topology import mac  # noqa: E402
from tuplenet.agent.flow import ip_int, mac_int  # noqa: E402
from tuplenet.agent.openflow.conn import OpenFlowConnection  # noqa: E402
from tuplenet.agent.pipeline.switching import _local_port, _remote_lookup  # noqa: E402
from tuplenet.model import LSP  # noqa: E402
from tuplenet.sandbox.etcd import EtcdServer  # noqa: E402
from tuplenet.sandbox.procs import wait_for  # noqa: E402
from tuplenet.sandbox.sim import SimNetwork  # noqa: E402
from tuplenet.store import Op, Store  # noqa: E402

HOSTS = {"hv1": "192.168.100.2", "hv2": "192.168.100.3", "hv3": "192.168.100.4"}


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * len(xs))) - 1)]


def run(existing: int, samples: int) -> dict:
    base = bench_dir("tn-bench-lat-")
    etcd = EtcdServer(base + "/etcd").start()
    net = SimNetwork(base + "/sim")
    try:
        for n, ip in HOSTS.items():
            net.add_host(n, ip)
        net.install_arp()
        store = Store(etcd.endpoint, prefix="/tuplenet/")
        store.put("entity_view/LS/bench", "id=1")
        ops = []
        for i in range(existing):
            ip = f"10.0.{i // 250}.{i % 250 + 2}"
            lsp = LSP("bench", f"old{i}", ip, mac(ip), None, f"hv{i % 3 + 1}")
            ops.append(Op.put(lsp.key, lsp.to_value()))
        store.txn_batches(ops)
        for n in HOSTS:
            net[n].start_agent(etcd.endpoint, "/tuplenet/")
        hv1, hv2 = net["hv1"], net["hv2"]
        wait_for(lambda: hv1.vsctl("--bare", "--columns=ofport", "find", "Interface",
                                   "external_ids:chassis-id=hv2").strip(), timeout=30, what="tunnel hv1->hv2")
        c1 = OpenFlowConnection(hv1.rundir + "/br-int.mgmt").start()
        c2 = OpenFlowConnection(hv2.rundir + "/br-int.mgmt").start()
        hv2.add_vm_port("warm", "warm")
        owner_ms, peer_ms = [], []
        for i in range(samples):
            name = f"new{i}"
            ip = f"10.1.{i // 250}.{i % 250 + 2}"
            ofport = hv2.add_vm_port(name, name)
            pid, m = ip_int(ip) & 0xFFFF, mac_int(mac(ip))
            want2 = _local_port(1, pid, m, ofport, LSP("bench", name, ip, mac(ip)))[0].cookie
            want1 = _remote_lookup(1, pid, m, HOSTS["hv2"]).cookie
            t0 = time.perf_counter()
            store.put(LSP("bench", name, ip, mac(ip)).key, f"ip={ip},mac={mac(ip)}")
            done: dict[str, float] = {}
            deadline = t0 + 10
            while len(done) < 2 and time.perf_counter() < deadline:
                if "owner" not in done and c2.dump_flows_raw(want2, (1 << 64) - 1):
                    done["owner"] = time.perf_counter()
                if "peer" not in done and c1.dump_flows_raw(want1, (1 << 64) - 1):
                    done["peer"] = time.perf_counter()
            if len(done) < 2:
                raise RuntimeError(f"flows for {name} not installed within 10 s: {done}")
            owner_ms.append((done["owner"] - t0) * 1000)
            peer_ms.append((done["peer"] - t0) * 1000)
        c1.close()
        c2.close()
        return {"existing": existing, "samples": samples,
                "owner_median": statistics.median(owner_ms), "owner_p99": pct(owner_ms, 99),
                "peer_median": statistics.median(peer_ms), "peer_p99": pct(peer_ms, 99)}
    finally:
        net.destroy()
        etcd.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--existing", type=int, nargs="*", default=[1000, 10])
    ap.add_argument("--samples", type=int, default=100)
    a = ap.parse_args()
    for n in a.existing:
        r = run(n, a.samples)
        print(f"{r['existing']:>5} ports present, {r['samples']} adds: owner host median {r['owner_median']:.1f} ms "
              f"p99 {r['owner_p99']:.1f} ms; peer host median {r['peer_median']:.1f} ms p99 {r['peer_p99']:.1f} ms")


if __name__ == "__main__":
    main()
