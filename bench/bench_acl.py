"""ACLs at scale: 1,000 rules over address sets of 1,000 addresses - flow count and agent compute time.

One switch with 50 ports; `--sets` address sets of `--addresses` addresses each; `--rules` rules, rule i
matching `src=$set(i % sets)`, `proto=tcp`, a 5-port `dport` range of its own, at priority
100 + i % priorities (with sets == priorities every set is used at one priority). An address
set x port range is a conjunctive match: its addresses are clause flows shared by every rule of that
priority using the set (their conjunction actions merged), the port range a few prefix flows, plus one
conj_id flow per rule - flows grow with rules + addresses, not rules x addresses. (Clause flows exist per
priority, as in OVS/OVN: a set used at P priorities costs P x its size.)

Measured with the agent's own engine (pipeline/acl.py, incremental engine), no OVS: the full computation
(cold start of the ACL part), then per-change recomputation: an address added to a set, a rule added, a rule
deleted (medians over --samples). Flow count against the product rules x addresses-per-set.

With --agent, the same records go to a private etcd and a real agent programs a simulated host: agent start
-> the last rule's conj_id flow installed (cold start), and per change an address added to a set -> its
clause flow installed (the agent's compute, its bundle to OVS and OVS's own work), medians.

Usage: python bench/bench_acl.py [--rules 1000] [--addresses 1000] [--sets 10] [--priorities 10] [--samples 20]
                                 [--agent]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from bench_dir import bench_dir
from tuplenet.agent import tables as T
from tuplenet.agent.engine import Engine
from tuplenet.agent.view import View
from tuplenet.model import LS, LSP, Chassis
from tuplenet.model.acl import AddressSet, make_acl, parse_net

ACL_TABLES = {T.LS_IN_ACL, T.LS_IN_ACL_EVAL, T.LS_OUT_ACL, T.LS_OUT_ACL_EVAL, T.ACL_DENY, T.ACL_REJECT}


def _addr(s: int, i: int) -> str:
    return f"10.{100 + s}.{i // 250}.{i % 250 + 1}"


def _aset(s: int, n: int, extra: int = 0) -> AddressSet:
    return AddressSet(f"set{s}", tuple(sorted(parse_net(_addr(s, i)) for i in range(n + extra))))


def _rule(i: int, sets: int, priorities: int):
    lo = 1000 + 5 * i
    return make_acl("LS-A", f"r{i}", {"direction": "in", "priority": str(100 + i % priorities),
                                      "action": "allow-related", "src": f"$set{i % sets}", "proto": "tcp",
                                      "dport": f"{lo}-{lo + 4}"})


def facts(rules: int, addresses: int, sets: int, priorities: int) -> dict[tuple, object]:
    f: dict[tuple, object] = {("self",): "hv1", ("LS", "LS-A"): LS("LS-A", 1),
                              ("chassis", "hv1"): Chassis("hv1", "192.168.100.2", 1)}
    for p in range(50):
        ip = f"10.10.{p // 250}.{p % 250 + 2}"
        f[("lsp", "LS-A", f"vm{p}")] = LSP("LS-A", f"vm{p}", ip, "f2:01:" + ":".join(
            f"{int(b):02x}" for b in ip.split(".")), None, "hv1")
        f[("bind", f"vm{p}")] = 10 + p
    for s in range(sets):
        f[("address_set", f"set{s}")] = _aset(s, addresses)
    for i in range(rules):
        f[("acl", "LS-A", f"r{i}")] = _rule(i, sets, priorities)
    f[("acl", "LS-A", "default-deny")] = make_acl("LS-A", "default-deny", {"direction": "in", "priority": "1",
                                                                          "action": "drop"})
    return f


def _change(e: Engine, key: tuple, obj: object) -> float:
    changed: set = set()
    t0 = time.perf_counter()
    e.view.apply(key, obj, changed)
    e.process(changed)
    return (time.perf_counter() - t0) * 1000


def run(rules: int, addresses: int, sets: int, priorities: int, samples: int) -> dict:
    f = facts(rules, addresses, sets, priorities)
    base = View()
    ch: set = set()
    for k, o in f.items():
        if k[0] not in ("acl", "address_set"):
            base.apply(k, o, ch)
    e0 = Engine(base)
    e0.full()
    plain = len(e0.active)
    v = View()
    for k, o in f.items():
        v.apply(k, o, ch)
    e = Engine(v)
    t0 = time.perf_counter()
    e.full()
    full_ms = (time.perf_counter() - t0) * 1000
    acl_flows = sum(1 for k in e.active if k[0] in ACL_TABLES)
    conj = sum(1 for fl in e.active.values() if any(m.field == "conj_id" for m in fl.match))
    add_addr, add_rule, del_rule = [], [], []
    for j in range(samples):
        add_addr.append(_change(e, ("address_set", "set0"), _aset(0, addresses, j + 1)))
        add_rule.append(_change(e, ("acl", "LS-A", f"new{j}"), _rule(rules + j, sets, priorities)))
        del_rule.append(_change(e, ("acl", "LS-A", f"new{j}"), None))
    return {
        "rules": rules, "addresses_per_set": addresses, "sets": sets, "priorities": priorities,
        "flows_total": len(e.active), "flows_without_acls": plain, "acl_flows": acl_flows,
        "conj_id_flows": conj, "product_rules_x_addresses": rules * addresses,
        "full_compute_ms": round(full_ms), "owners": len(e.owner_flows),
        "add_address_ms_median": round(statistics.median(add_addr), 1),
        "add_rule_ms_median": round(statistics.median(add_rule), 1),
        "delete_rule_ms_median": round(statistics.median(del_rule), 1),
    }


def agent(rules: int, addresses: int, sets: int, priorities: int, samples: int) -> dict:
    """Cold start and per-change install latency with a real agent on a simulated host."""
    from tuplenet.agent.flow import M
    from tuplenet.agent.openflow.conn import OpenFlowConnection
    from tuplenet.agent.pipeline.acl import conj_id
    from tuplenet.sandbox.etcd import EtcdServer
    from tuplenet.sandbox.procs import wait_for
    from tuplenet.sandbox.sim import SimNetwork
    from tuplenet.store import Store

    f = facts(rules, addresses, sets, priorities)
    e = Engine(View())
    ch: set = set()
    for k, o in f.items():
        e.view.apply(k, o, ch)
    e.full()
    cid = conj_id(("acl", "LS-A", f"r{rules - 1}"), 1)
    want = next(fl.cookie for fl in e.active.values() if M("conj_id", cid) in fl.match)
    base = bench_dir("tn-bench-acl-")
    etcd = EtcdServer(base + "/etcd").start()
    net = SimNetwork(base + "/sim")
    try:
        hv1 = net.add_host("hv1", "192.168.100.2")
        store = Store(etcd.endpoint, prefix="/tuplenet/")
        for k, o in f.items():
            if k[0] in ("LS", "lsp", "acl", "address_set"):
                store.put(o.key, o.to_value())
        t0 = time.perf_counter()
        hv1.start_agent(etcd.endpoint, "/tuplenet/")
        wait_for(lambda: os.path.exists(hv1.rundir + "/br-int.mgmt"), timeout=60, what="br-int on hv1")
        conn = OpenFlowConnection(hv1.rundir + "/br-int.mgmt").start()

        def installed(cookie: int, since: float, limit: float = 300) -> float:
            while not conn.dump_flows_raw(cookie, (1 << 64) - 1):
                if time.perf_counter() - since > limit:
                    raise RuntimeError(f"flow {cookie:#x} not installed within {limit} s")
                time.sleep(0.001)
            return (time.perf_counter() - since) * 1000

        cold = installed(want, t0)
        flows = len(hv1.dump_flows())
        per: list[float] = []
        for j in range(samples + 1):
            s = _aset(0, addresses, j + 1)
            changed: set = set()
            e.view.apply(("address_set", "set0"), s, changed)
            e.process(changed)
            net_ = parse_net(_addr(0, addresses + j))
            cookie = next(fl.cookie for fl in e.active.values()
                          if fl.table == T.LS_IN_ACL_EVAL and M("nw_src", net_.net) in fl.match)
            t = time.perf_counter()
            store.put(s.key, s.to_value())
            ms = installed(cookie, t)
            if j:
                per.append(ms)
        conn.close()
        return {"agent_cold_start_ms": round(cold), "agent_flows_installed": flows,
                "agent_address_added_ms_median": round(statistics.median(per), 1),
                "agent_address_added_ms_p90": round(sorted(per)[int(0.9 * (len(per) - 1))], 1)}
    finally:
        net.destroy()
        etcd.stop()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--addresses", type=int, default=1000)
    ap.add_argument("--sets", type=int, default=10)
    ap.add_argument("--priorities", type=int, default=10)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--agent", action="store_true", help="also a real agent on a simulated host (etcd, OVS)")
    a = ap.parse_args(argv)
    res = run(a.rules, a.addresses, a.sets, a.priorities, a.samples)
    if a.agent:
        res.update(agent(a.rules, a.addresses, a.sets, a.priorities, a.samples))
    print(json.dumps(res, indent=1))
    # Expected: addresses once per (set, priority) it is used at, <= 4 prefix flows per 5-port range and one
    # conj_id flow per rule, and a handful per switch.
    pairs = len({(i % a.sets, i % a.priorities) for i in range(a.rules)})
    bound = pairs * a.addresses + 5 * a.rules + 20
    ok = res["acl_flows"] <= bound
    print(f"ACL flows {res['acl_flows']} (bound {bound} = {pairs} set/priority pairs x {a.addresses} + 5 x "
          f"{a.rules} rules + 20) vs product {res['product_rules_x_addresses']}: "
          f"{'grows with rules + addresses' if ok else 'TOO MANY'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
