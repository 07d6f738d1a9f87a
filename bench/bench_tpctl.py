"""tpctl budgets: `ls show` start-to-exit on a small tree, and a 20k-port import.

Starts a private etcd in a temp dir, prints the figures (not a pass/fail test). Budgets:
`tpctl ls show` <= 0.3 s wall (median of 10, process start included); import of 200 LS / 20 LR /
20,000 ports plus router links <= 10 s.

    .venv/bin/python bench/bench_tpctl.py [--runs 10] [--switches 200] [--routers 20] [--ports 100]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

from bench_dir import bench_dir
from tuplenet.control import Controller
from tuplenet.sandbox.etcd import EtcdServer
from tuplenet.store import Store

LAST_CPU = [0.0]  # CPU seconds (user+sys) of the last tpctl child: stable even on a busy machine


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def tpctl(endpoint: str, prefix: str, *args: str) -> tuple[float, str]:
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tuplenet.cli.tpctl", "-e", endpoint, "-p", prefix, *args],
                          capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - t0
    LAST_CPU[0] = _children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"tpctl {' '.join(args)} failed: {proc.stderr.strip()}")
    return elapsed, proc.stdout


def median_runs(endpoint: str, prefix: str, runs: int, *args: str) -> tuple[float, float, float, float]:
    """(median, min, max) wall seconds and median CPU seconds over `runs` runs after one warm-up."""
    tpctl(endpoint, prefix, *args)  # warm the page cache / .pyc files
    times, cpus = [], []
    for _ in range(runs):
        times.append(tpctl(endpoint, prefix, *args)[0])
        cpus.append(LAST_CPU[0])
    return statistics.median(times), min(times), max(times), statistics.median(cpus)


def topology_lines(switches: int, routers: int, ports: int) -> list[str]:
    """LS i: subnet 10.<i/256>.<i%256>.0/24, `ports` VM ports, linked to router i % routers at .1."""
    lines = [f"entity_view/LR/lr{r}\t" for r in range(routers)]
    for i in range(switches):
        net = f"10.{i // 256}.{i % 256}"
        r = i % routers
        lines.append(f"entity_view/LS/ls{i}\t")
        for p in range(ports):
            ip = f"{net}.{p + 2}"
            mac = "f2:01:" + ":".join(f"{int(x):02x}" for x in ip.split("."))
            lines.append(f"entity_view/LS/ls{i}/lsp/vm{p}\tip={ip},mac={mac},chassis=hv{p % 50}")
        gw_mac = "f2:01:" + ":".join(f"{int(x):02x}" for x in f"{net}.1".split("."))
        lines.append(f"entity_view/LS/ls{i}/lsp/ls{i}_to_lr{r}\tip={net}.1,mac={gw_mac},peer=lr{r}_to_ls{i}")
        lines.append(f"entity_view/LR/lr{r}/lrp/lr{r}_to_ls{i}\tip={net}.1,prefix=24,mac={gw_mac},"
                     f"peer=ls{i}_to_lr{r}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--switches", type=int, default=200)
    ap.add_argument("--routers", type=int, default=20)
    ap.add_argument("--ports", type=int, default=100, help="VM ports per switch")
    opts = ap.parse_args()
    base = bench_dir("tn-bench-tpctl-")
    with EtcdServer(os.path.join(base, "etcd")) as etcd:
        ep = etcd.endpoint
        with Store(ep, prefix="/small/") as store:
            ctl = Controller(store)
            for i in range(3):
                ctl.add_switch(f"ls{i}")
                ctl.add_switch_port(f"ls{i}", "vm1", f"10.0.{i}.2")
            ctl.add_router("lr0")
            ctl.link("lr0", "ls0", "10.0.0.1/24")
        med, lo, hi, cpu = median_runs(ep, "/small", opts.runs, "ls", "show")
        print(f"tpctl ls show (small tree), {opts.runs} runs: median {med:.3f} s (min {lo:.3f}, max {hi:.3f}), "
              f"CPU {cpu:.3f} s  budget 0.300 s  {'OK' if med <= 0.3 else 'OVER'}  (load {os.getloadavg()[0]:.1f})")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        print(f"  bare python start: {time.perf_counter() - t0:.3f} s")

        lines = topology_lines(opts.switches, opts.routers, opts.ports)
        path = os.path.join(base, "topology.txt")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        n_ports = opts.switches * (opts.ports + 1) + opts.switches
        took, out = tpctl(ep, "/big", "import", path)
        print(f"tpctl import: {opts.switches} LS, {opts.routers} LR, {opts.switches * opts.ports} VM ports + "
              f"{opts.switches} links ({len(lines)} records, {n_ports} lsp+lrp): {took:.2f} s (tpctl CPU "
              f"{LAST_CPU[0]:.2f} s)  budget 10 s  {'OK' if took <= 10 else 'OVER'}")
        print(f"  {out.strip()}")
        took, out = tpctl(ep, "/big", "export")
        print(f"tpctl export of that tree: {took:.2f} s ({out.count(chr(10)) - 1} records)")
        med, lo, hi, cpu = median_runs(ep, "/big", 3, "ls", "show")
        print(f"tpctl ls show (big tree, {opts.switches} LS over {len(lines)} keys): median {med:.3f} s")
        took, _ = tpctl(ep, "/big", "lsp", "add", "ls0", "extra", "10.0.0.250")
        print(f"tpctl lsp add into a {opts.ports + 1}-port switch of the big tree: {took:.3f} s")


if __name__ == "__main__":
    main()
