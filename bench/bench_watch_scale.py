"""etcd watch fan-out at scale: what each simulated agent costs etcd via the gateway, gRPC and grpc-proxy.

Many lightweight watchers (simulated agents: one Store, one connection and one whole-prefix watch each, many
per process) watch a 3-member etcd while one writer makes a steady stream of port changes. For every mode and
watcher count it reports:
- etcd CPU per change (the 3 members' utime+stime from /proc/<pid>/stat during the stream, minus their idle
  rate measured with the same watchers connected), and per change per watcher;
- delivery latency: p50/p99 over every (watcher, event) pair, and p50/p99 of the time until the *last* watcher
  has a change;
- what broke first: watchers that never caught up, reconnects, etcd's slow-watcher gauge, the bench's own CPU.
Modes: `gateway` (JSON /v3/watch, today's agent), `grpc` (the agent's gRPC watch), `proxy` (gRPC through
`etcd grpc-proxy`, watchers spread over --proxies proxies). The slope of CPU per change against the number of
watchers is etcd's cost per event per watcher; the budget is grpc <= 0.45 x gateway, and with the proxy tier
etcd's CPU per change must not grow with watchers.

Usage: .venv/bin/python bench/bench_watch_scale.py [--watchers 50,100,200] [--modes gateway,grpc,proxy]
       [--rate 50] [--seconds 8] [--proxies 2] [--json out.json]
Run it alone: it measures CPU on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from bench_dir import bench_dir
from tuplenet.sandbox.etcd import EtcdServer
from tuplenet.sandbox.etcd_proxy import GrpcProxy
from tuplenet.sandbox.procs import wait_for
from tuplenet.store import Store, StoreError

PREFIX = "/tuplenet/"
TICK = os.sysconf("SC_CLK_TCK")
VALUE = "ip=10.10.{a}.{b},mac=f2:01:0a:0a:{a:02x}:{b:02x},chassis=hv{h},parent=LS-A,tick={t}"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def start_cluster(base: str, size: int = 3) -> list[EtcdServer]:
    """A `size`-member etcd cluster on loopback (members must start together to elect a leader)."""
    members = [EtcdServer(os.path.join(base, f"m{i}"), name=f"m{i}") for i in range(size)]
    initial = ",".join(f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in members)
    for m in members:
        m.extra_args = ["--initial-cluster", initial, "--initial-cluster-token", "bench-watch-scale",
                        "--quota-backend-bytes", str(4 << 30)]
    with ThreadPoolExecutor(size) as pool:
        list(pool.map(lambda m: m.start(timeout=60), members))
    return members


class Watcher:
    """One simulated agent: its own Store (connection) and a whole-prefix watch, drained by a thread."""

    def __init__(self, endpoints: list[str], transport: str) -> None:
        self.store = Store(endpoints, prefix=PREFIX, transport=transport, timeout=10)
        self.watch = self.store.watch("")
        self.seen: list[tuple[int, float]] = []
        self.last = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for batch in self.watch:
                now = time.monotonic()
                self.seen.extend((e.kv.mod_revision, now) for e in batch.events)
                self.last = batch.revision
        except BaseException as exc:  # noqa: BLE001 - reported as what broke
            self.error = exc

    def close(self) -> None:
        self.watch.close()
        self.store.close()
        self.thread.join(timeout=5)


def metric(url: str, name: str) -> float:
    try:
        text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    except OSError:
        return float("nan")
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else float("nan")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run_case(members: list[EtcdServer], proxies: list[GrpcProxy], mode: str, n: int, rate: float,
             seconds: float) -> dict:
    eps = [m.endpoint for m in members]
    if mode == "proxy":
        targets = [[proxies[i % len(proxies)].endpoint] for i in range(n)]
    else:  # spread watchers over the members as real agents' endpoint lists would
        targets = [eps[i % len(eps):] + eps[:i % len(eps)] for i in range(n)]
    transport = "json" if mode == "gateway" else "grpc"
    t_setup = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        watchers = list(pool.map(lambda t: Watcher(t, transport), targets))
    writer = Store(eps, prefix=PREFIX, transport="json")
    try:
        wait_for(lambda: all(w.watch.revision > 0 or w.error for w in watchers), timeout=60, interval=0.05,
                 what=f"{n} {mode} watches created")
        setup_s = time.monotonic() - t_setup
        pids = [m.proc.pid for m in members]
        idle_s = 2.0
        c0 = sum(cpu_seconds(p) for p in pids)
        time.sleep(idle_s)  # the idle rate with every watcher connected, subtracted below
        idle_rate = (sum(cpu_seconds(p) for p in pids) - c0) / idle_s
        slow0 = sum(metric(m.url, "etcd_debugging_mvcc_slow_watcher_total") for m in members)
        proxy_c0 = sum(cpu_seconds(p.pid) for p in proxies if p.pid) if mode == "proxy" else 0.0
        me0 = os.times()
        c0, t0 = sum(cpu_seconds(p) for p in pids), time.monotonic()
        sent: dict[int, float] = {}
        changes = int(rate * seconds)
        for i in range(changes):
            due = t0 + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            a, b = divmod(i, 250)
            start = time.monotonic()
            value = VALUE.format(a=a % 250, b=b, h=i % 5000, t=i)
            rev = writer.put(f"entity_view/LS-A/lsp/p{i % 2000}", value)
            sent[rev] = start
        last_rev = max(sent)
        caught_up = True
        try:
            wait_for(lambda: all(w.last >= last_rev or w.error for w in watchers), timeout=30, interval=0.02,
                     what="every watcher to reach the last change")
        except TimeoutError:
            caught_up = False
        window = time.monotonic() - t0
        cpu = sum(cpu_seconds(p) for p in pids) - c0 - idle_rate * window
        me1 = os.times()
        proxy_cpu = (sum(cpu_seconds(p.pid) for p in proxies if p.pid) - proxy_c0) if mode == "proxy" else 0.0
        slow = sum(metric(m.url, "etcd_debugging_mvcc_slow_watcher_total") for m in members) - slow0
    finally:
        writer.close()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(Watcher.close, watchers))
    lat, last_arrival = [], {}
    for w in watchers:
        for rev, t in w.seen:
            if rev in sent:
                d = t - sent[rev]
                lat.append(d)
                last_arrival[rev] = max(last_arrival.get(rev, 0.0), d)
    behind = sum(1 for w in watchers if w.last < last_rev)
    errors = sorted({f"{type(w.error).__name__}: {w.error}"[:120] for w in watchers if w.error})
    reconnects = sum(w.watch.reconnects for w in watchers)
    bench_cpu = (me1.user - me0.user) + (me1.system - me0.system)
    return {
        "mode": mode, "watchers": n, "changes": changes, "window_s": round(window, 2),
        "setup_s": round(setup_s, 2),
        "etcd_idle_cpu_per_s": round(idle_rate, 4),
        "etcd_cpu_per_change_ms": round(1000 * cpu / changes, 3),
        "etcd_cpu_per_1k_events_per_watcher_s": round(cpu / changes / n * 1000, 4),
        "proxy_cpu_per_change_ms": round(1000 * proxy_cpu / changes, 3) if mode == "proxy" else None,
        "lat_p50_ms": round(1000 * pct(lat, 0.5), 2), "lat_p99_ms": round(1000 * pct(lat, 0.99), 2),
        "all_watchers_p50_ms": round(1000 * pct(list(last_arrival.values()), 0.5), 2),
        "all_watchers_p99_ms": round(1000 * pct(list(last_arrival.values()), 0.99), 2),
        "deliveries": len(lat), "expected": changes * n, "caught_up": caught_up, "behind": behind,
        "reconnects": reconnects, "etcd_slow_watchers": slow, "errors": errors,
        "bench_cpu_share": round(bench_cpu / window, 2),
    }


def slope(rows: list[dict]) -> float:
    """Least-squares slope of etcd CPU per change (ms) against watchers: ms per change per watcher."""
    xs = [r["watchers"] for r in rows]
    ys = [r["etcd_cpu_per_change_ms"] for r in rows]
    if len(xs) < 2:
        return ys[0] / xs[0] if xs else float("nan")
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--watchers", default="50,100,200")
    ap.add_argument("--modes", default="gateway,grpc,proxy")
    ap.add_argument("--rate", type=float, default=50.0, help="port changes per second")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of the stream per case")
    ap.add_argument("--proxies", type=int, default=2)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    counts = [int(x) for x in args.watchers.split(",")]
    modes = args.modes.split(",")
    base = bench_dir("tn-bench-watch-scale-")
    members = start_cluster(base)
    proxies: list[GrpcProxy] = []
    rows: list[dict] = []
    try:
        if "proxy" in modes:
            proxies = [GrpcProxy(os.path.join(base, f"proxy{i}"), [m.endpoint for m in members]).start()
                       for i in range(args.proxies)]
        print(f"3-member etcd, {args.rate:g} changes/s for {args.seconds:g}s per case; etcd CPU net of idle")
        print(f"{'mode':8} {'watchers':>8} {'etcd ms/chg':>11} {'per 1k ev/w':>11} {'proxy ms/chg':>12} "
              f"{'p50 ms':>7} {'p99 ms':>7} {'all p50':>7} {'all p99':>7} {'bench cpu':>9}  broke")
        for mode in modes:
            for n in counts:
                try:
                    r = run_case(members, proxies, mode, n, args.rate, args.seconds)
                except (StoreError, TimeoutError, OSError) as exc:
                    r = {"mode": mode, "watchers": n, "failed": f"{type(exc).__name__}: {exc}"[:200]}
                    print(f"{mode:8} {n:8}  FAILED: {r['failed']}", flush=True)
                    rows.append(r)
                    continue
                rows.append(r)
                broke = []
                if not r["caught_up"]:
                    broke.append(f"{r['behind']} behind")
                if r["reconnects"]:
                    broke.append(f"{r['reconnects']} reconnects")
                if r["etcd_slow_watchers"]:
                    broke.append(f"{r['etcd_slow_watchers']:g} slow watchers")
                if r["errors"]:
                    broke.append("; ".join(r["errors"]))
                px_ms = r["proxy_cpu_per_change_ms"]
                px = f"{px_ms:12.3f}" if px_ms is not None else " " * 12
                print(f"{mode:8} {n:8} {r['etcd_cpu_per_change_ms']:11.3f} "
                      f"{r['etcd_cpu_per_1k_events_per_watcher_s']:11.4f} {px} {r['lat_p50_ms']:7.1f} "
                      f"{r['lat_p99_ms']:7.1f} {r['all_watchers_p50_ms']:7.1f} "
                      f"{r['all_watchers_p99_ms']:7.1f} "
                      f"{r['bench_cpu_share']:9.2f}  {', '.join(broke) or '-'}", flush=True)
        summary = {}
        for mode in modes:
            ok = [r for r in rows if r["mode"] == mode and "failed" not in r]
            if ok:
                summary[mode] = round(slope(ok), 5)
        print("slope of etcd CPU per change vs watchers (ms per change per watcher = CPU-s per 1k events per "
              "watcher):")
        for mode, s in summary.items():
            print(f"  {mode:8} {s:.5f}")
        if "gateway" in summary and "grpc" in summary and summary["gateway"] > 0:
            print(f"  grpc / gateway = {summary['grpc'] / summary['gateway']:.2f} (budget <= 0.45)")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"rows": rows, "slopes": summary, "rate": args.rate, "seconds": args.seconds,
                           "proxies": args.proxies}, f, indent=1)
    finally:
        for p in proxies:
            p.stop()
        for m in members:
            m.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
