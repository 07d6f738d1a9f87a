"""Offline trace budgets: the interpreter's single-host packet walks per second on one core, and one
`tpctl trace --simulate` across 3 routers and 2 hosts, process start to exit.

Budgets (issue 8): >= 10,000 single-host walks/s; <= 50 ms for the tpctl trace. Prints figures, not a
pass/fail test. Part C starts a private etcd in a temp dir.

    .venv/bin/python bench/bench_trace.py [--seconds 2] [--runs 10] [--no-scale] [--no-tpctl]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from bench_dir import bench_dir

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "unit"))
from scale_topology import build as scale_build  # noqa: E402
from scale_topology import mac  # noqa: E402
from tuplenet.model import LR, LRP, LS, LSP, LSR, Chassis  # noqa: E402
from tuplenet.trace import packet as P  # noqa: E402
from tuplenet.trace.fabric import Fabric, Model  # noqa: E402


def walks_per_second(cp, cases: list[tuple[str, dict, int]], seconds: float) -> dict[str, float]:
    """Walk each case repeatedly for `seconds` (CPU time); walks per CPU-second per case and overall."""
    out: dict[str, float] = {}
    total_n, total_t = 0, 0.0
    for name, pkt, in_port in cases:
        cp.walk(pkt, in_port)  # warm
        n, t0 = 0, time.process_time()
        while True:
            for _ in range(200):
                cp.walk(pkt, in_port)
            n += 200
            dt = time.process_time() - t0
            if dt >= seconds / len(cases):
                break
        out[name] = n / dt
        total_n, total_t = total_n + n, total_t + dt
    out["mix"] = total_n / total_t
    return out


def tutorial_cases(fab: Fabric) -> list[tuple[str, dict, int]]:
    cp = fab.pipeline("hv1")
    vm1 = next(o for o, p in cp.ports.items() if p.name == "vm1")
    a = ("f2:01:0a:0a:01:02", "10.10.1.2")
    return [
        ("switch, local", P.icmp(a[0], "f2:01:0a:0a:01:05", a[1], "10.10.1.5"), vm1),
        ("switch, to tunnel", P.icmp(a[0], "f2:01:0a:0a:01:03", a[1], "10.10.1.3"), vm1),
        ("routed, local", P.icmp(a[0], "f2:01:0a:0a:01:01", a[1], "10.10.2.2"), vm1),
        ("arp responder", P.arp_request(a[0], a[1], "10.10.1.3"), vm1),
        ("port security drop", P.icmp("f2:01:0a:0a:01:99", "f2:01:0a:0a:01:03", a[1], "10.10.1.3"), vm1),
    ]


def part_a(seconds: float) -> None:
    from topo_helpers import tutorial_facts

    facts = tutorial_facts()
    facts[("lsp", "LS-A", "vm5")] = LSP("LS-A", "vm5", "10.10.1.5", "f2:01:0a:0a:01:05", None, "hv1")
    fab = Fabric(Model(facts))
    cp = fab.pipeline("hv1")
    print(f"A. tutorial topology, hv1 ({cp.tables.size} flows), walks per CPU-second:")
    for name, rate in walks_per_second(cp, tutorial_cases(fab), seconds).items():
        print(f"   {name:<20} {rate:>10,.0f}")


def part_b(seconds: float) -> None:
    ents = scale_build(2000, 200, 20, 20000)
    facts = {(e.kind, *e.ident): e for e in ents}
    t0 = time.perf_counter()
    fab = Fabric(Model(facts))
    cp = fab.pipeline("hv1")
    t1 = time.perf_counter()
    flows = cp.tables.size
    local = sorted((o, p) for o, p in cp.ports.items() if p.kind == "vif")
    src_port, src = local[0][0], facts[("lsp", local[0][1].switch, local[0][1].name)]
    same_ls = [k for k in facts if k[0] == "lsp" and k[1] == src.ls and facts[k].chassis not in (None, "hv1")]
    remote = facts[same_ls[-1]]
    other = facts[next(k for k in facts if k[0] == "lsp" and k[1] != src.ls and facts[k].chassis == "hv999")]
    gw = next(facts[k] for k in facts if k[0] == "lsp" and k[1] == src.ls and facts[k].peer)
    cases = [("switch, to tunnel", P.icmp(src.mac, remote.mac, src.ip, remote.ip), src_port),
             ("routed, to tunnel", P.icmp(src.mac, gw.mac, src.ip, other.ip), src_port),
             ("unknown MAC drop", P.icmp(src.mac, mac("10.99.99.99"), src.ip, "10.99.99.99"), src_port)]
    print(f"B. 2,000 chassis / 20,000 ports / 200 LS / 20 LR, hv1: {flows:,} flows, engine + compile "
          f"{(t1 - t0):.1f} s; walks per CPU-second:")
    for name, rate in walks_per_second(cp, cases, seconds).items():
        print(f"   {name:<20} {rate:>10,.0f}")


def chain_entities() -> list:
    """LS-A - LR-A(hv1) - LS-B - LR-B(hv2) - LS-C - LR-C(hv1) - LS-D; vma on hv1, vmd on hv2."""
    ents: list = [Chassis("hv1", "192.168.100.2", 1), Chassis("hv2", "192.168.100.3", 1)]
    ents += [LS(ls, i) for i, ls in enumerate(("LS-A", "LS-B", "LS-C", "LS-D"), 1)]
    ents += [LR("LR-A", 11, "hv1"), LR("LR-B", 12, "hv2"), LR("LR-C", 13, "hv1")]
    for lr, ls, ip in (("LR-A", "LS-A", "10.10.1.1"), ("LR-A", "LS-B", "10.10.2.1"), ("LR-B", "LS-B", "10.10.2.2"),
                       ("LR-B", "LS-C", "10.10.3.2"), ("LR-C", "LS-C", "10.10.3.3"), ("LR-C", "LS-D", "10.10.4.3")):
        ents += [LRP(lr, f"{lr}_to_{ls}", ip, 24, mac(ip), f"{ls}_to_{lr}"), LSP(ls, f"{ls}_to_{lr}", ip, mac(ip), f"{lr}_to_{ls}")]
    ents += [LSR("LR-A", "fwd", "10.10.4.0", 24, "10.10.2.2", "LR-A_to_LS-B"),
             LSR("LR-B", "fwd", "10.10.4.0", 24, "10.10.3.3", "LR-B_to_LS-C"),
             LSP("LS-A", "vma", "10.10.1.10", mac("10.10.1.10"), None, "hv1"),
             LSP("LS-D", "vmd", "10.10.4.10", mac("10.10.4.10"), None, "hv2")]
    return ents


def part_c(runs: int) -> None:
    from tuplenet.sandbox.etcd import EtcdServer
    from tuplenet.store import Store

    base = bench_dir("tn-bench-trace-")
    server = EtcdServer(base).start()
    try:
        prefix = "/bench-trace/"
        with Store(server.endpoint, prefix=prefix) as s:
            for e in chain_entities():
                s.put(e.key, e.to_value())
        tpctl = os.path.join(os.path.dirname(sys.executable), "tpctl")
        cmd = [tpctl if os.path.exists(tpctl) else sys.executable, *([] if os.path.exists(tpctl) else
                                                                     ["-m", "tuplenet.cli.tpctl"]),
               "-e", server.endpoint, "-p", prefix, "trace", "--simulate", "-s", "LS-A/vma", "--dst-ip", "10.10.4.10"]
        # As installed, bytecode is cached (pip compiles it; docs/install.md): the warm-up run writes it here.
        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = os.path.join(base, "pyc")
        walls, cpus, out = timed(cmd, runs, cached)
        bare = [timed([sys.executable, "-c", "pass"], 1, cached)[0][0] for _ in range(5)]
        floor, floor_cpu, _ = timed([*cmd[:cmd.index("-e")], "--version"], runs, cached)
        hosts = [ln.split(":")[0] for ln in out.splitlines() if ln.startswith("hv")]
        print(f"C. tpctl trace --simulate, 3 routers / 2 hosts (path {' -> '.join(hosts)}; {out.splitlines()[-1]}):")
        print(f"   bytecode cached: wall ms median {statistics.median(walls):.1f}, min {min(walls):.1f}, max "
              f"{max(walls):.1f}; child CPU ms median {statistics.median(cpus):.1f}; load {os.getloadavg()[0]:.1f}")
        print(f"   floor: bare python start min {min(bare):.1f} ms; `tpctl --version` median "
              f"{statistics.median(floor):.1f} ms wall, {statistics.median(floor_cpu):.1f} ms CPU")
        in_process(server.endpoint, prefix)
        served(server.endpoint, prefix, cmd, runs, cached, base)
    finally:
        server.stop()


def served(endpoint: str, prefix: str, cmd: list[str], runs: int, env: dict[str, str], base: str) -> None:
    """The same trace answered by a running tuplenet-api (`--api`), in four kinds of run taken in turn (the
    machine's load drifts; interleaved, the kinds see the same): warm (the model of this revision is kept, and
    so is the document of a trace asked before); warm with a trace not asked before (another TTL each run: it
    is walked); right after a topology change (an unrelated switch changes and tpctl starts as soon as the
    API's cache has it: the background rebuild and tpctl's start overlap); after a change once its background
    rebuild is done."""
    from tuplenet.api.proc import ApiProcess
    from tuplenet.sandbox.procs import wait_for
    from tuplenet.store import Store

    api = ApiProcess(os.path.join(base, "api"), endpoint, prefix).start()
    kinds = {"warm model": None, "warm model, a trace not asked before": "new",
             "first trace right after a topology change": False,
             "first trace after a change, its background rebuild done": True}
    try:
        env = {**env, "TUPLENET_API_TOKEN": api.read_token}
        scmd = [*cmd, "--api", api.base_url]
        _, _, out = timed(scmd, 1, env)  # warm-up: bytecode cache, the API's first model
        rebuilds0 = health(api)["trace"]["rebuilds"]
        figures: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in kinds}
        touches = 0
        with Store(endpoint, prefix=prefix) as s:
            for _ in range(runs):
                for label, rebuilt in kinds.items():
                    run_cmd = scmd
                    if rebuilt == "new":
                        run_cmd = [*scmd, "--ttl", str(63 - len(figures[label][0]) % 50)]
                    elif rebuilt is not None:
                        touches += 1
                        rev = s.put("entity_view/LS/bench-touch", f"id={100 + touches % 2}")
                        wait_for(lambda rev=rev, rebuilt=rebuilt: model_ready(api, rev, rebuilt), timeout=10,
                                 interval=0.002, what="the API cache" + (" and its trace model" if rebuilt else ""))
                    walls, cpus, _ = timed(run_cmd, 1, env, warmup=False)
                    figures[label][0].extend(walls)
                    figures[label][1].extend(cpus)
            s.delete("entity_view/LS/bench-touch")
            rev = s.txn([], []).revision
            wait_for(lambda: model_ready(api, rev, True), timeout=10, what="the last rebuild")
        changes = health(api)["trace"]["rebuilds"] - rebuilds0
        print(f"D. the same through a running tuplenet-api (`--api`; {out.splitlines()[-1]}), {runs} runs of each "
              f"kind in turn:")
        for label, (walls, cpus) in figures.items():
            print(f"   {label}: wall ms median {statistics.median(walls):.1f}, min {min(walls):.1f}, max "
                  f"{max(walls):.1f}; tpctl CPU ms median {statistics.median(cpus):.1f}")
        print(f"   background rebuilds for the {touches + 1} topology changes: {changes}")
    finally:
        api.stop()


def health(api) -> dict:
    """The API's /health document (cache and trace model revisions)."""
    conn = api.connection()
    try:
        conn.request("GET", "/api/v2/health", headers={"Authorization": f"Bearer {api.token}"})
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def model_ready(api, revision: int, rebuilt: bool) -> bool:
    """The API's cache has applied `revision` (and, if `rebuilt`, its trace model was rebuilt from it)."""
    h = health(api)
    if (h.get("cache") or {}).get("revision", 0) < revision:
        return False
    return not rebuilt or (h["trace"]["revision"] >= revision and not h["trace"]["building"])


def timed(cmd: list[str], runs: int, env: dict[str, str], warmup: bool = True) -> tuple[list[float], list[float], str]:
    """Wall and child CPU ms of `runs` runs, after one warm-up run (which also fills the bytecode cache)."""
    walls, cpus, out = [], [], ""
    for i in range(runs + 1 if warmup else runs):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[:3])}... failed: {p.stderr.strip()}")
        out = p.stdout
        if i or not warmup:
            walls.append(wall * 1000)
            cpus.append((r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1000)
    return walls, cpus, out


def in_process(endpoint: str, prefix: str) -> None:
    """Where the time goes inside one trace (imports excluded: already loaded here)."""
    from tuplenet.cli.trace import load_model, simulate
    from tuplenet.trace.report import to_text
    from tuplenet.trace.request import Request, checked

    req = checked(Request("LS-A/vma", dst_ip="10.10.4.10"))
    t0 = time.perf_counter()
    model = load_model(endpoint, prefix, 5.0)
    t1 = time.perf_counter()
    doc = simulate(model, req)
    t2 = time.perf_counter()
    to_text(doc)
    t3 = time.perf_counter()
    print(f"   in-process: etcd listing {1000 * (t1 - t0):.1f} ms, flows of 2 chassis + walk "
          f"{1000 * (t2 - t1):.1f} ms, text {1000 * (t3 - t2):.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per walk measurement")
    ap.add_argument("--runs", type=int, default=10, help="tpctl runs")
    ap.add_argument("--no-scale", action="store_true")
    ap.add_argument("--no-tpctl", action="store_true")
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    part_a(a.seconds)
    if not a.no_scale:
        part_b(a.seconds)
    if not a.no_tpctl:
        part_c(a.runs)


if __name__ == "__main__":
    main()
