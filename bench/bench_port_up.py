"""Port-up latency as a user feels it (issue 9 §1).

Three simulated hosts (real ovs-vswitchd, real agents, real etcd). For each sample the clock starts, then two
threads at once write the logical port to etcd without a chassis (as `tpctl lsp add` or a CMS does) and plug
the VM interface on the owner hv2 (`ovs-vsctl add-port br-int X -- set Interface X type=dummy
external_ids:iface-id=X`, as Nova/CNI do). The clock stops when every flow of the port is installed on the
owner (ARP responder, classify/port security, lookup, egress, next-hop binding) *and* the peer hv1 has its
flow to reach it (the owner's flows are read once its readiness mark is set; only the peer is polled in the
window, as OVN's half does). Expected cookies come from the pipeline itself (`lsp_flows` over a small view
holding what each agent will know), so the bench follows the pipeline. The readiness mark
(`external_ids:tuplenet-installed=true` on the interface, what a CNI plugin waits for) is timed too, by an
OVSDB "wait" started with the clock. After each sample the port and the interface are deleted and their
flows waited out; warm-up samples are excluded.

`--breakdown` also times the interface row's commit (an OVSDB wait) and the claim's arrival at an etcd watcher.
`--cpu` reports the CPU each kind of process spent per sample (port up, then down), from /proc (proc_cpu.py).

`--requested` writes the port with `requested_chassis=hv2` (OVN: `options:requested-chassis=hv2`), as a CMS
that knows where the VM goes does (Neutron sets requested-chassis; our CNI plugin even writes the chassis).

`--bystander ondemand` runs hv3's agent (no port on the switch) in the product's default on-demand mode, as
OVN's hv3 computes nothing for a datapath it has no port on; the owner and the peer stay in full mode.

`--existing` ports are in the topology before: real dummy OVS ports on the owner, bound there. `--router`
links a distributed router to the switch (its router port is then one of the existing ports).

Usage: python bench/bench_port_up.py [--existing 6 1000] [--samples 100] [--warmup 5] [--router both]
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import proc_cpu  # noqa: E402
from bench_dir import bench_dir  # noqa: E402
from scale_topology import mac  # noqa: E402
from tuplenet.agent.openflow import codec as oc  # noqa: E402
from tuplenet.agent.openflow.conn import OpenFlowConnection  # noqa: E402
from tuplenet.agent.pipeline.switching import lsp_flows  # noqa: E402
from tuplenet.agent.view import Reader, View  # noqa: E402
from tuplenet.cni.ovsdb import Ovsdb  # noqa: E402
from tuplenet.model import LR, LRP, LS, LSP, Chassis  # noqa: E402
from tuplenet.sandbox.etcd import EtcdServer  # noqa: E402
from tuplenet.sandbox.procs import wait_for  # noqa: E402
from tuplenet.sandbox.sim import SimNetwork  # noqa: E402
from tuplenet.store import Op, Store  # noqa: E402

HOSTS = {"hv1": "192.168.100.2", "hv2": "192.168.100.3", "hv3": "192.168.100.4"}
OWNER, PEER, BYSTANDER = "hv2", "hv1", "hv3"
LSNAME, LRNAME = "bench", "R1"
NEW_OFPORT = 60000  # ofport_request of the port under test: known before the clock starts
ALL = (1 << 64) - 1
POLL = 0.01  # s between two looks at the switches during the window (times come from flow ages)
_AGE = struct.Struct("!HBxII")  # ofp_flow_stats: length, table_id, pad, duration_sec, duration_nsec


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * len(xs))) - 1))]


def topology(existing: int, router: bool, where: str = OWNER) -> list:
    """The switch (10.1.0.0/16), optionally a distributed router on it, and `existing` ports bound on
    chassis `where` (the router port counts as one of them)."""
    out: list = [LS(LSNAME, 1)]
    n = existing
    if router:
        out += [LR(LRNAME, 2), LRP(LRNAME, f"{LRNAME}_to_{LSNAME}", "10.1.0.1", 16, mac("10.1.0.1"),
                                   f"{LSNAME}_to_{LRNAME}"),
                LSP(LSNAME, f"{LSNAME}_to_{LRNAME}", "10.1.0.1", mac("10.1.0.1"), f"{LRNAME}_to_{LSNAME}")]
        n -= 1
    for i in range(max(0, n)):
        ip = f"10.1.{1 + i // 250}.{i % 250 + 2}"
        out.append(LSP(LSNAME, f"old{i}", ip, mac(ip), None, where))
    return out


def expected(entities: Iterable, lsp: LSP, self_id: str, ofport: int | None, chassis: str | None = OWNER) -> set[int]:
    """Cookies of the flows `lsp` owns on `self_id` once it is bound to `chassis`, from the pipeline."""
    v, changed = View(), set()
    for e in entities:
        v.apply(_fkey(e), e, changed, 1)
    bound = LSP(lsp.ls, lsp.name, lsp.ip, lsp.mac, None, chassis)
    v.apply(_fkey(bound), bound, changed, 2)
    for n, ip in HOSTS.items():
        v.apply(("chassis", n), Chassis(n, ip, 1), changed, 1)
    v.apply(("self",), self_id, changed)
    if ofport is not None:
        v.apply(("bind", lsp.name), ofport, changed)
    flows = lsp_flows(Reader(v), _fkey(bound), bound)
    return {f.cookie for f in flows}


def _fkey(e) -> tuple:
    """The agent's fact key of an entity (etcdsync: kind + identity)."""
    return (e.kind, *e.ident)


class FlowWatch:
    """Looks at one switch, cookie by cookie, over a persistent OpenFlow connection. When a flow went in is
    read afterwards from its age in the flow statistics (ovs-vswitchd's `duration`, 1 ms resolution), so
    the bench polls only slowly during the window and does not compete with what it measures."""

    def __init__(self, path: str) -> None:
        self.conn = OpenFlowConnection(path).start()

    def present(self, cookie: int) -> bool:
        return bool(self.conn.dump_flows_raw(cookie, ALL))

    def installed_at(self, cookie: int) -> float:
        """perf_counter() time at which the flow with `cookie` was installed."""
        ages: list[float] = []

        def sink(body: bytes) -> None:
            off = 8
            while off + 48 <= len(body):
                length, _table, dsec, dnsec = _AGE.unpack_from(body, off)
                ages.append(dsec + dnsec / 1e9)
                off += max(length, 48)

        self.conn.request(lambda x: oc.flow_stats_request(cookie, ALL, xid=x), 5.0, "flow dump", sink=sink)
        now = time.perf_counter()
        if len(ages) != 1:
            raise RuntimeError(f"cookie {cookie:#x}: {len(ages)} flows")
        return now - ages[0]

    def close(self) -> None:
        self.conn.close()


class ClaimWatch:
    """When the owner's claim (the lsp rewritten with `chassis=<owner>`) reached a watcher of etcd: the moment
    peers can start their part. A watch of the switch's lsps on a thread of its own."""

    def __init__(self, store: Store, ls: str) -> None:
        self.seen: dict[str, float] = {}
        self.watch = store.watch(f"entity_view/LS/{ls}/lsp/", progress_notify=False)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for batch in self.watch:
                now = time.perf_counter()
                for ev in batch.events:
                    if ev.type == "PUT" and f"chassis={OWNER}" in ev.value:
                        self.seen.setdefault(ev.key.rsplit("/", 1)[1], now)
        except Exception:  # noqa: BLE001 - closed at the end of the run
            pass

    def close(self) -> None:
        self.watch.close()


def run(existing: int, router: bool, samples: int, warmup: int, placement: str = "owner",
        breakdown: bool = False, cpu: bool = False, requested: bool = False, bystander: str = "full") -> dict:
    base = bench_dir("tn-bench-portup-")
    etcd = EtcdServer(base + "/etcd").start()
    net = SimNetwork(base + "/sim")
    pool = ThreadPoolExecutor(max_workers=5)
    try:
        for n, ip in HOSTS.items():
            net.add_host(n, ip)
        net.install_arp()
        store = Store(etcd.endpoint, prefix="/tuplenet/")
        where = OWNER if placement == "owner" else "hv3"
        ents = topology(existing, router, where)
        store.txn_batches([Op.put(e.key, e.to_value()) for e in ents])
        owner, peer = net[OWNER], net[PEER]
        olds = [e for e in ents if isinstance(e, LSP) and e.name.startswith("old")]
        host = net[where]
        host.vsctl("--may-exist", "add-br", "br-int", "--", "set", "Bridge", "br-int", "fail-mode=secure",
                   "other-config:disable-in-band=true")
        for i in range(0, len(olds), 250):  # real OVS ports on their chassis, bound there
            cmd: list[str] = []
            for e in olds[i:i + 250]:
                cmd += ["--", "add-port", "br-int", e.name, "--", "set", "Interface", e.name, "type=dummy",
                        f"external_ids:iface-id={e.name}"]
            host.vsctl(*cmd[1:])
        for n in HOSTS:  # the bystander (hv3: no port on the switch) in the mode asked for
            env = {"ONDEMAND": "1"} if n == BYSTANDER and bystander == "ondemand" else None
            net[n].start_agent(etcd.endpoint, "/tuplenet/", extra_env=env)
        wait_for(lambda: peer.vsctl("--bare", "--columns=ofport", "find", "Interface",
                                    f"external_ids:chassis-id={OWNER}").strip(), timeout=60, what="tunnel")
        ow, pw = FlowWatch(owner.rundir + "/br-int.mgmt"), FlowWatch(peer.rundir + "/br-int.mgmt")
        if olds:  # the existing ports' flows are in before we measure
            last = olds[-1]
            want = expected(ents, last, OWNER, int(host.ofport(last.name)), chassis=where)
            wait_for(lambda: all(ow.present(c) for c in want), timeout=120, what="existing ports installed")
        db, dbp = Ovsdb(owner.db_sock), Ovsdb(owner.db_sock)
        # --breakdown: two more observers (an OVSDB wait, an etcd watch); they cost the daemons a little CPU
        extra = (ClaimWatch(Store(etcd.endpoint, prefix="/tuplenet/", transport="grpc"), LSNAME),
                 Ovsdb(owner.db_sock)) if breakdown else None
        rows: list[dict] = []
        before: dict = {}
        for i in range(warmup + samples):
            if i == warmup:
                before = proc_cpu.snapshot(base) if cpu else {}
            rows.append(sample(store, owner, ow, pw, db, dbp, pool, ents, i, extra, requested))
        spent = proc_cpu.per_op(before, proc_cpu.snapshot(base), samples) if cpu else None
        for c in (ow, pw, db, dbp, *(extra or ())):
            c.close()
        rows = rows[warmup:]
        for r in rows:
            r["after_ofport"] = r["total"] - r["ofport"]
            r["owner_after_ofport"] = r["owner"] - r["ofport"]
        out = {"existing": existing, "router": router, "placement": placement, "samples": len(rows),
               "requested": requested, "bystander": bystander}
        if spent is not None:
            out["cpu_ms"] = spent
        for k in ("total", "owner", "peer", "mark", "write", "plug", "ofport", "after_ofport",
                  "owner_after_ofport", *(("row", "claim") if breakdown else ())):
            xs = [r[k] for r in rows]
            out[f"{k}_median"], out[f"{k}_p99"] = round(statistics.median(xs), 1), round(pct(xs, 99), 1)
        return out
    finally:
        pool.shutdown(wait=False)
        net.destroy()
        etcd.stop()


def sample(store: Store, owner, ow: FlowWatch, pw: FlowWatch, db: Ovsdb, dbp: Ovsdb, pool: ThreadPoolExecutor,
           ents: list, i: int, extra: tuple[ClaimWatch, Ovsdb] | None = None, requested: bool = False) -> dict:
    name = f"new{i}"
    ip = f"10.1.200.{i % 250 + 2}"
    lsp = LSP(LSNAME, name, ip, mac(ip), None, None, OWNER if requested else None)
    want_owner = expected(ents, lsp, OWNER, NEW_OFPORT)
    # The peer's flow to reach the port: what it has once the port is bound and not while it is unbound and
    # requested nowhere (with --requested it may go in before the claim).
    want_peer = expected(ents, lsp, PEER, None) - expected(ents, lsp, PEER, None, chassis=None)
    marked: dict[str, float] = {}

    def mark_wait() -> None:
        if db.wait_ready(name, 10.0):
            marked["at"] = time.perf_counter()

    def until(key: str, conn: Ovsdb, column: str, value: object) -> None:
        """marked[key]: when the interface's `column` equals `value` (an OVSDB wait, not ours to speed up)."""
        conn.transact({"op": "wait", "timeout": 10000, "table": "Interface", "where": [["name", "==", name]],
                       "columns": [column], "until": "==", "rows": [{column: value}]}, timeout=15)
        marked[key] = time.perf_counter()

    def begun(fn, *args):
        """fn(*args) on the pool, once it is running (every waiter is in place before the clock starts)."""
        started = threading.Event()

        def run() -> None:
            started.set()
            fn(*args)

        fut = pool.submit(run)
        started.wait()
        return fut

    waiters = [begun(mark_wait), begun(until, "ofport", dbp, "ofport", NEW_OFPORT)]  # ovs-vswitchd's ofport
    if extra:  # ovs-vsctl's transaction (the interface row with its iface-id) committed
        waiters.append(begun(until, "row", extra[1], "name", name))
    t0 = time.perf_counter()
    def timed(fn, *args):
        fn(*args)
        return time.perf_counter()

    writes = [pool.submit(timed, store.put, lsp.key, lsp.to_value()),
              pool.submit(timed, owner.vsctl, "add-port", "br-int", name, "--", "set", "Interface", name, "type=dummy",
                          f"ofport_request={NEW_OFPORT}", f"external_ids:iface-id={name}")]
    done: dict[str, float] = {}
    pend_p = set(want_peer)
    deadline = t0 + 10
    # During the window only the peer is polled; the owner's end is its readiness mark, which promises that
    # every flow of the port is in (checked below). As OVN's half does: polling the owner's switch cookie by
    # cookie loaded the very ovs-vswitchd that is adding the port.
    while (pend_p or "at" not in marked) and time.perf_counter() < deadline:
        time.sleep(POLL)  # leave ovs-vswitchd time for its own work: polling must not slow what it measures
        pend_p = {c for c in pend_p if not pw.present(c)}
    pend_o = {c for c in want_owner if not ow.present(c)}
    if "at" in marked and pend_o:
        raise RuntimeError(f"{name}: readiness mark set with {len(pend_o)} of its flows missing on the owner")
    if not pend_o and not pend_p:
        done["owner"] = max(ow.installed_at(c) for c in want_owner)
        done["peer"] = max(pw.installed_at(c) for c in want_peer)
    wrote, plugged = (f.result() for f in writes)
    for w in waiters:
        w.result()
    if extra:
        wait_for(lambda: name in extra[0].seen, timeout=5, interval=0.001, what=f"{name}'s claim watched")
    if pend_o or pend_p or "at" not in marked:
        raise RuntimeError(f"{name}: not complete within 10 s: owner missing {len(pend_o)}, peer missing "
                           f"{len(pend_p)}, marked {'at' in marked}")
    # Clean up: delete the port and the interface, and wait until the owner's local flows are gone.
    store.delete(lsp.key)
    owner.vsctl("del-port", "br-int", name)
    wait_for(lambda: not any(ow.present(c) for c in want_owner), timeout=10, interval=0.001,
             what=f"{name} flows removed")
    ms = lambda t: (t - t0) * 1000  # noqa: E731
    out = {"owner": ms(done["owner"]), "peer": ms(done["peer"]), "total": ms(max(done.values())),
           "mark": ms(marked["at"]), "write": ms(wrote), "plug": ms(plugged), "ofport": ms(marked["ofport"])}
    if extra:
        out.update(row=ms(marked["row"]), claim=ms(extra[0].seen[name]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--existing", type=int, nargs="*", default=[6, 1000])
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--router", choices=("no", "yes", "both"), default="both")
    ap.add_argument("--placement", choices=("owner", "remote"), default="owner",
                    help="existing ports as OVS ports on the owner (default) or bound on hv3")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--breakdown", action="store_true",
                    help="also time when the interface row is committed and when the claim reaches an etcd "
                         "watcher (two more observers: off for the headline figures)")
    ap.add_argument("--bystander", choices=("full", "ondemand"), default="full",
                    help="the agent of hv3, which has no port on the switch: every flow everywhere (full, as every "
                         "host in the tests) or the product's default on-demand mode (like OVN, where a chassis "
                         "without a port on a datapath computes nothing for it)")
    ap.add_argument("--requested", action="store_true",
                    help="the CMS writes the port with the chassis it is requested on (hv2), for OVN too")
    ap.add_argument("--cpu", action="store_true",
                    help="also report the CPU each kind of process spent per sample (/proc, between the first "
                         "and the last measured sample)")
    ap.add_argument("--ovn", action="store_true",
                    help="then measure OVN 23.03 the same way (bench/ovn_port_up.py) and print the ratio")
    a = ap.parse_args()
    routers = {"no": [False], "yes": [True], "both": [False, True]}[a.router]
    for n in a.existing:
        for r in routers:
            res = run(n, r, a.samples, a.warmup, a.placement, a.breakdown, a.cpu, a.requested, a.bystander)
            ovn = None
            if a.ovn:  # after ours, in the same invocation; imported here: OVN is not needed otherwise
                import ovn_port_up
                ovn = ovn_port_up.run_ovn(n, r, a.samples, a.warmup, a.cpu, a.requested, a.placement)
            if a.json:
                print(json.dumps(res), flush=True)
                if ovn:
                    print(json.dumps(ovn), flush=True)
                continue
            print(f"{n:>5} ports ({a.placement}){' + router' if r else '         '}"
                  f"{', requested on the owner' if a.requested else ''}"
                  f"{', bystander on demand' if a.bystander == 'ondemand' else ''}, {res['samples']} port-ups: "
                  f"all flows median {res['total_median']:.1f} ms p99 {res['total_p99']:.1f} ms "
                  f"(owner {res['owner_median']:.1f}/{res['owner_p99']:.1f}, peer {res['peer_median']:.1f}/"
                  f"{res['peer_p99']:.1f}); readiness mark median {res['mark_median']:.1f} ms "
                  f"p99 {res['mark_p99']:.1f} ms; etcd write returned {res['write_median']:.1f}, ovs-vsctl add-port "
                  f"returned {res['plug_median']:.1f} ms, "
                  + (f"interface row committed {res['row_median']:.1f} ms, claim watched {res['claim_median']:.1f} "
                     "ms, " if a.breakdown else "")
                  + f"ofport assigned {res['ofport_median']:.1f} ms (medians); ofport -> all flows median "
                  f"{res['after_ofport_median']:.1f} ms p99 {res['after_ofport_p99']:.1f} ms (owner only "
                  f"{res['owner_after_ofport_median']:.1f} / {res['owner_after_ofport_p99']:.1f} ms)", flush=True)
            if "cpu_ms" in res:
                print(f"      CPU per port up and down: {proc_cpu.describe(res['cpu_ms'])}", flush=True)
            if ovn:
                print(ovn_port_up.summary(ovn, res), flush=True)


if __name__ == "__main__":
    main()
