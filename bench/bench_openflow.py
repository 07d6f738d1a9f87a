"""OpenFlow connection figures: encoder rate, 100k-flow bundle vs `ovs-ofctl --bundle`, small-apply latency.

Usage: python bench/bench_openflow.py [--flows 100000] [--small 200]

Runs a private ovs-vswitchd (dummy datapath) with two bridges; the same flows go to one bridge through
OpenFlowConnection.apply() and to the other through `ovs-ofctl --bundle add-flows`, in the same run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

from tuplenet.agent.flow import (
    Controller,
    Ct,
    DecTtl,
    Flow,
    Load,
    M,
    Move,
    Nat,
    Output,
    Resubmit,
    SetField,
    match,
)
from tuplenet.agent.openflow import OpenFlowConnection, actions, codec, oxm
from tuplenet.sandbox.dummy_ovs import DummyOvs

IP = 0x0800


def realistic_mix(n: int, seed: int = 0) -> list[Flow]:
    """Shapes a pipeline emits, with the repetition a real topology has (datapaths, ports, tables):
    L2 lookup by MAC, L3 routes, ARP responders, port classification, tunnel egress, NAT, punts."""
    out: list[Flow] = []
    for i in range(seed, seed + n):
        dp, port = 1 + i % 200, 1 + i % 1000
        kind = i % 8
        if kind in (0, 1, 2):  # LS lookup: dl_dst -> output port register
            out.append(Flow(23, 50, match(metadata=dp, dl_dst=0x0A0000000000 + i),
                            (Load("reg15", port), Resubmit(25))))
        elif kind == 3:  # LR route: prefix -> next hop, rewrite MACs, TTL
            prefix = M("nw_dst", (i << 8) & 0xFFFFFFFF, 0xFFFFFF00)
            out.append(Flow(42, 24, match(prefix, metadata=dp, dl_type=IP),
                            (DecTtl(), Load("reg2", 0xC0A80001 + i % 50),
                             SetField("dl_src", 0x0A0000000001 + dp), Resubmit(43))))
        elif kind == 4:  # ARP responder
            out.append(Flow(21, 100, match(metadata=dp, dl_type=0x0806, arp_op=1, arp_tpa=0x0A000000 + i),
                            (Move("dl_src", "dl_dst"), SetField("dl_src", 0x0A0000000000 + i),
                             Load("arp_op", 2), Move("arp_sha", "arp_tha"),
                             SetField("arp_sha", 0x0A0000000000 + i), Move("arp_spa", "arp_tpa"),
                             SetField("arp_spa", 0x0A000000 + i), Output(0xFFFFFFF8))))
        elif kind == 5:  # classification of a local port
            out.append(Flow(0, 100, match(in_port=port, dl_src=0x0A0000000000 + i),
                            (Load("metadata", dp), Load("reg14", port), Resubmit(20))))
        elif kind == 6:  # tunnel egress to a remote chassis
            out.append(Flow(60, 100, match(metadata=dp, reg15=port + i),
                            (SetField("tun_dst", 0xC0A86400 + i % 250), Move("metadata", "tun_id"),
                             Move("reg15", "tun_metadata0", 0, 0, 32), Output(10))))
        else:  # NAT / punt
            if i % 16 == 7:
                out.append(Flow(44, 100, match(metadata=dp, dl_type=IP, nw_src=0x0A000000 + i),
                                (Ct(commit=True, zone=dp, nat=Nat("src", 0xAC100000 + i % 100)),)))
            else:
                out.append(Flow(22, 90, match(metadata=dp, dl_type=IP, nw_dst=0x0A000000 + i),
                                (Controller(b"\x00\x00\x00\x02" + i.to_bytes(4, "big"), pause=True),)))
    assert len({f.key for f in out}) == len(out), "flow keys must be unique or OVS replaces flows"
    return out


def clear_caches() -> None:
    oxm._entry_cache.clear()
    oxm._match_cache.clear()
    actions._list_cache.clear()
    for cache in actions._action_cache.values():
        cache.clear()


def bench_encode(flows: list[Flow], repeat: int = 3) -> None:
    """Best of `repeat` (the VM is shared): cold = empty encode caches, warm = the same flows again."""
    t0 = time.perf_counter()
    for f in flows:
        f.cookie  # noqa: B018 - flow.py computes and keeps it on first use
    t_cookie = time.perf_counter() - t0
    cold = warm = float("inf")
    size = sum(len(codec.bundle_add_flow(1, f, 0)) for f in flows[:1000]) * len(flows) / 1000
    for _ in range(repeat):
        clear_caches()
        t0 = time.perf_counter()
        for i, f in enumerate(flows):
            codec.bundle_add_flow(1, f, i)
        cold = min(cold, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i, f in enumerate(flows):
            codec.bundle_add_flow(1, f, i)
        warm = min(warm, time.perf_counter() - t0)
    n = len(flows)
    print(f"encode   {n:,} flows, {size / n:.0f} B/flow: cold caches {n / cold:,.0f} flows/s, "
          f"warm {n / warm:,.0f} flows/s (cookie computation in flow.py: {n / t_cookie:,.0f} flows/s)")


def bench_install(ovs: DummyOvs, conn: OpenFlowConnection, flows: list[Flow], rounds: int = 3) -> None:
    """Alternate ovs-ofctl and apply() into empty tables `rounds` times (the VM is shared: compare the
    two under the same load), then time a dump, a warm re-apply and a delete of everything."""
    n = len(flows)
    path = os.path.join(ovs.dir, "flows.txt")
    with open(path, "w") as f:
        f.write("\n".join(x.to_text() for x in flows) + "\n")
    t_ofctl, t_apply, t_del = [], [], []
    t_dump = t_again = 0.0
    for r in range(rounds):
        ovs.ofctl("del-flows", "B")
        t0 = time.perf_counter()
        ovs.ofctl("-O", "OpenFlow14", "--bundle", "add-flows", "B", path)
        t_ofctl.append(time.perf_counter() - t0)
        clear_caches()
        t0 = time.perf_counter()
        conn.apply([], flows)
        t_apply.append(time.perf_counter() - t0)
        if r == 0:
            t0 = time.perf_counter()
            cookies = conn.dump_cookies()
            t_dump = time.perf_counter() - t0
            assert len(cookies) == n, (len(cookies), n)
            t0 = time.perf_counter()
            conn.apply([], flows)  # the same flows again: warm caches, OVS replaces each flow
            t_again = time.perf_counter() - t0
        t0 = time.perf_counter()
        conn.apply([f.cookie for f in flows], [])
        t_del.append(time.perf_counter() - t0)
    a, o = statistics.median(t_apply), statistics.median(t_ofctl)
    print(f"install  {n:,} flows in one bundle, median of {rounds}: apply() {a:.2f} s ({n / a:,.0f} flows/s, "
          f"best {min(t_apply):.2f} s); ovs-ofctl --bundle add-flows {o:.2f} s ({n / o:,.0f} flows/s, "
          f"best {min(t_ofctl):.2f} s) -> apply() is {o / a:.2f}x as fast")
    d = statistics.median(t_del)
    print(f"         re-apply (warm caches) {t_again:.2f} s; dump_cookies {t_dump:.2f} s; "
          f"delete all by cookie {d:.2f} s ({n / d:,.0f}/s)")


def bench_small(conn: OpenFlowConnection, rounds: int) -> None:
    base = realistic_mix(10_000, seed=1_000_000)
    conn.apply([], base)
    lat = []
    prev: list[Flow] = []
    for r in range(rounds):
        new = realistic_mix(10, seed=2_000_000 + 10 * r)
        t0 = time.perf_counter()
        conn.apply([f.cookie for f in prev], new)
        lat.append((time.perf_counter() - t0) * 1000)
        prev = new
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(f"latency  apply() of 10 adds + 10 deletes next to 10k flows, {rounds} rounds: "
          f"median {statistics.median(lat):.2f} ms, p99 {p99:.2f} ms, max {lat[-1]:.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=100_000)
    ap.add_argument("--small", type=int, default=200)
    a = ap.parse_args()
    flows = realistic_mix(a.flows)
    bench_encode(flows)
    with DummyOvs() as ovs:
        ovs.add_bridge("A")
        ovs.add_bridge("B")
        conn = OpenFlowConnection(ovs.mgmt("A")).start()
        try:
            bench_install(ovs, conn, flows)
            bench_small(conn, a.small)
        finally:
            conn.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"memory   benchmark process max RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
