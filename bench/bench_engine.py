"""Engine cost at the issue's scale, in-process (no etcd, no OVS): full compute, one port added, and one
chassis added (its flows plus its tunnel wish: the daemon no longer scans the view for tunnels).

Usage: python bench/bench_engine.py [--chassis 2000 --ports 20000 --switches 200 --routers 20]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from scale_topology import add_scale_args, build, mac  # noqa: E402
from tuplenet.agent.engine import Engine  # noqa: E402
from tuplenet.agent.view import View  # noqa: E402
from tuplenet.model import LSP, Chassis  # noqa: E402


def _pct(times: list[float]) -> str:
    times = sorted(times)
    return f"median {statistics.median(times):.3f} ms, p99 {times[max(0, int(len(times) * 0.99) - 1)]:.3f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    add_scale_args(ap)
    ap.add_argument("--adds", type=int, default=200)
    a = ap.parse_args()
    ents = build(a.chassis, a.switches, a.routers, a.ports)
    t0 = time.perf_counter()
    view, changed = View(), set()
    for e in ents:
        view.apply((e.kind, *e.ident), e, changed)
    view.apply(("self",), "hv1", changed)
    view.apply(("selfip",), "10.255.0.1", changed)
    for i in range(50):
        view.apply(("bind", f"p0-{i}"), i + 1, changed)
    for i in range(2, a.chassis + 1):
        view.apply(("tun", f"hv{i}"), 1000 + i, changed)
    t1 = time.perf_counter()
    engine = Engine(view)
    delta = engine.full()
    adds = delta.adds
    t2 = time.perf_counter()
    times = []
    for i in range(a.adds):
        ls = f"ls{i % a.switches}"
        ip = f"10.{(i % a.switches) // 250}.{(i % a.switches) % 250}.{200 + i // a.switches}"
        lsp = LSP(ls, f"new{i}", ip, mac(ip), None, f"hv{2 + i % (a.chassis - 1)}")
        s = time.perf_counter()
        ch: set = set()
        view.apply(("lsp", ls, lsp.name), lsp, ch)
        engine.process(ch)
        times.append((time.perf_counter() - s) * 1000)
    ch_times = []
    for i in range(a.adds):
        s = time.perf_counter()
        ch = set()
        view.apply(("chassis", f"new-hv{i}"), Chassis(f"new-hv{i}", f"10.254.{i // 250}.{i % 250 + 1}", 1), ch)
        d = engine.process(ch)
        ch_times.append((time.perf_counter() - s) * 1000)
        assert d.of("wish", "tunnel"), "a new chassis must produce its tunnel wish"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"topology: {a.chassis} chassis, {a.ports} ports, {a.switches} switches, {a.routers} routers")
    print(f"view build: {t1 - t0:.2f} s; full compute: {t2 - t1:.2f} s for {len(adds)} flows, "
          f"{len(engine.outs.active)} other outputs (meters, tunnel wishes)")
    print(f"one port added (engine only, n={a.adds}): {_pct(times)}")
    print(f"one chassis added, flows + tunnel wish (engine only, n={a.adds}): {_pct(ch_times)}")
    print(f"process max RSS: {rss:.0f} MB")


if __name__ == "__main__":
    main()
