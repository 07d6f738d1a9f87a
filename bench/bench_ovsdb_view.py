"""The OVSDB thread's view of the replica after a port comes or goes (in-process, no OVS).

A port added to or deleted from br-int is one update to the agent's OVSDB replica; before publishing, the
OVSDB thread rebuilds its view (TrackingIdl.view): only the changed port and the bridge's port list, on the
owner's port-up path. The updates are fed through python-ovs's own parser (tuplenet.sandbox.idl_feed), so
the figure is the view alone, without a server or a socket.

Usage: python bench/bench_ovsdb_view.py [--ports 6 1000] [--samples 400]
"""

from __future__ import annotations

import argparse
import statistics
import time

from tuplenet.sandbox.idl_feed import Replica


def run(ports: int, samples: int) -> tuple[float, float]:
    """(median, p90) ms of view() after a port added or deleted on a bridge holding `ports` ports."""
    r = Replica()
    for done in range(0, ports, 50):
        r.batch([(0, j, 0) for j in range(min(50, ports - done))])  # kind 0: a port added to br-int
    r.idl.view()
    times: list[float] = []
    for i in range(samples // 2):
        for kind in (0, 1):  # one port added, then one deleted: the bridge keeps its size
            r.batch([(kind, i, 0)])
            t0 = time.perf_counter()
            r.idl.view()
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ports", type=int, nargs="*", default=[6, 1000])
    ap.add_argument("--samples", type=int, default=400)
    a = ap.parse_args()
    for n in a.ports:
        med, p90 = run(n, a.samples)
        print(f"{n:>5} ports on the bridge: view after a port added or deleted, median {med:.3f} ms, "
              f"p90 {p90:.3f} ms ({a.samples} samples)", flush=True)


if __name__ == "__main__":
    main()
