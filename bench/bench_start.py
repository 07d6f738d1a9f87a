"""Agent start at scale: a host whose view holds N chassis and M ports (the other chassis exist only as
etcd records; some ports are bound locally). Reports time to the first reconcile, time until every
tunnel exists and every flow is installed, the flow count and the agent's RSS.

Usage: python bench/bench_start.py [--chassis 2000 --ports 20000 --switches 200 --routers 20 --local 50]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_dir import bench_dir  # noqa: E402
from scale_topology import add_scale_args, build  # noqa: E402
from tuplenet.sandbox.etcd import EtcdServer  # noqa: E402
from tuplenet.sandbox.procs import wait_for  # noqa: E402
from tuplenet.sandbox.sim import SimNetwork  # noqa: E402
from tuplenet.store import Op, Store  # noqa: E402


def status(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def proc_memory(pid: int) -> str:
    """RSS split into anonymous (heap) and file-backed (libraries) pages, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        rows = dict(line.split(":", 1) for line in f if line.startswith(("VmRSS", "RssAnon", "RssFile")))
    return ", ".join(f"{k} {int(v.split()[0]) / 1024:.0f} MB" for k, v in rows.items())


def main() -> None:
    ap = argparse.ArgumentParser()
    add_scale_args(ap)
    ap.add_argument("--local", type=int, default=50)
    a = ap.parse_args()
    base = bench_dir("tn-bench-start-")
    etcd = EtcdServer(base + "/etcd").start()
    net = SimNetwork(base + "/sim")
    try:
        ents = build(a.chassis, a.switches, a.routers, a.ports, "hv1", a.local)
        store = Store(etcd.endpoint, prefix="/tuplenet/")
        t = time.perf_counter()
        store.txn_batches([Op.put(e.key, e.to_value()) for e in ents])
        print(f"wrote {len(ents)} records to etcd in {time.perf_counter() - t:.1f} s")
        hv1 = net.add_host("hv1", "172.16.0.3")
        local = [e for e in ents if e.kind == "lsp" and e.chassis == "hv1"]
        hv1.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "fail-mode=secure")
        args = []
        for e in local:
            args += ["--", "add-port", "br-int", e.name, "--", "set", "Interface", e.name, "type=dummy",
                     f"external_ids:iface-id={e.name}"]
        hv1.vsctl(*args)
        st_path = os.path.join(hv1.dir, "tuplenet", "status.json")
        t0 = time.perf_counter()
        agent = hv1.start_agent(etcd.endpoint, "/tuplenet/")
        s = wait_for(lambda: status(st_path), timeout=120, interval=0.02, what="agent ready")
        t_ready = time.perf_counter() - t0
        want_tunnels = a.chassis - 1
        s = wait_for(lambda: (x := status(st_path)) and x["tunnels"] >= want_tunnels
                     and x["installed"] == x["flows"] and x, timeout=300, interval=0.05, what="all flows")
        t_all = time.perf_counter() - t0
        print(f"topology: {a.chassis} chassis, {a.ports} ports in {a.switches} switches, {a.routers} routers, "
              f"{len(local)} bound here")
        print(f"agent process start -> first reconcile done, every flow needed to reach every port installed "
              f"(via the flow-based tunnel where a chassis's own port is not up yet): {t_ready:.2f} s "
              f"(agent's own figure {s['ready_ms'] / 1000:.2f} s)")
        print(f"agent process start -> OVS has created all {want_tunnels} per-chassis tunnel ports and their flows "
              f"are in ({s['flows']} flows): {t_all:.2f} s")
        # Settled: the agent rewrites its status every 2 s when idle; one written 2.5 s after the last tunnel
        # shows the steady-state RSS (after the agent returned the start-up burst's heap to the OS).
        settle_from = time.time() + 2.5
        settled = wait_for(lambda: os.path.getmtime(st_path) > settle_from and status(st_path), timeout=30,
                           interval=0.1, what="settled status")
        print("agent memory (settled):", proc_memory(agent.pid))
        print(f"agent RSS: {s['rss_mb']:.0f} MB when the last tunnel's flows are in, {settled['rss_mb']:.0f} MB "
              f"settled (idle 2.5 s later); engine full runs {s['engine']['full_runs']}, "
              f"incremental runs {s['engine']['incremental_runs']}")
        print("start phases (ms since start):", s["start_phases_ms"])
        agent.stop()
        t0 = time.perf_counter()
        agent = hv1.start_agent(etcd.endpoint, "/tuplenet/")
        s = wait_for(lambda: (x := status(st_path)) and x["pid"] == agent.pid and x, timeout=120, interval=0.02,
                     what="restarted agent ready")
        t_restart = time.perf_counter() - t0
        print(f"restart of the agent on that host (tunnels exist): ready and reconciled in {t_restart:.2f} s "
              f"(agent's own figure {s['ready_ms'] / 1000:.2f} s); flows changed by the reconcile: "
              f"{s['openflow']['flows_added']} added, {s['openflow']['flows_deleted']} deleted; "
              f"RSS {s['rss_mb']:.0f} MB")
        print("start phases (ms since start):", s["start_phases_ms"])
        agent.stop()
    finally:
        net.destroy()
        etcd.stop()


if __name__ == "__main__":
    main()
