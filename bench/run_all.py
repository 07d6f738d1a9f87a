"""`make bench`: every benchmark in turn with its default (budget-sized) arguments, one at a time so their
timings do not disturb each other on a small machine. Prints each one's output and a summary; exits
non-zero if any benchmark failed to run. Figures go to bench/README.md by hand, with the context."""

from __future__ import annotations

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Fast, single-host benchmarks first; the ones that build namespaces or many daemons last.
ORDER = ["bench_watch_decode.py", "bench_engine.py", "bench_ovsdb_view.py", "bench_acl.py", "bench_openflow.py", "bench_tpctl.py", "bench_trace.py",
         "bench_start.py", "bench_latency.py", "bench_port_up.py", "bench_api.py", "bench_cni.py", "bench_e2e.py",
         "bench_lb.py", "bench_lb_health.py", "bench_nat.py", "bench_edge_failover.py", "bench_live_trace.py",
         "bench_ondemand.py"]


def benchmarks(only: list[str]) -> list[str]:
    present = sorted(f for f in os.listdir(HERE) if f.startswith("bench_") and f.endswith(".py"))
    ordered = [f for f in ORDER if f in present] + [f for f in present if f not in ORDER]
    return [f for f in ordered if not only or any(o in f for o in only)]


def main(argv: list[str]) -> int:
    results = []
    for name in benchmarks(argv):
        print(f"\n=== {name}", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, os.path.join(HERE, name)])
        results.append((name, rc, time.monotonic() - t0))
    print("\n=== summary")
    for name, rc, secs in results:
        print(f"{name:28} {'ok' if rc == 0 else f'FAILED (exit {rc})':18} {secs:7.1f} s")
    return 0 if all(rc == 0 for _, rc, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
