"""`tpctl trace`: where would this packet go? `--simulate` computes every chassis's flows from the etcd
model with the agent's own engine and walks them (tuplenet.trace); live tracing comes later and will print
the same report. Heavy imports happen only when a trace runs, so `tpctl --help` stays instant."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

LIVE_UNAVAILABLE = "live tracing is not available yet; use --simulate"


def add_parser(groups: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = groups.add_parser("trace", parents=[common], help="trace a packet through the logical and physical path",
                          description="Trace a packet from a logical port, host by host, with the stage, "
                                      "logical object and rule of every step.")
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--simulate", action="store_true",
                   help="compute the flows of every chassis from etcd and walk them (no packet is sent)")
    p.add_argument("-s", "--src-port", metavar="LS/PORT", help="where the packet enters (required)")
    p.add_argument("--dst-ip", help="destination IP (the MAC is filled in: the port's, or the router's)")
    p.add_argument("--dst-mac", help="destination MAC")
    p.add_argument("--src-ip", help="source IP (default: the port's)")
    p.add_argument("--src-mac", help="source MAC (default: the port's)")
    p.add_argument("--proto", default="icmp", help="icmp (echo request), tcp, udp or arp (request)")
    p.add_argument("--ttl", type=int, default=64, help="IP TTL (default 64)")
    p.add_argument("--sport", type=int, default=12345, help="TCP/UDP source port")
    p.add_argument("--dport", type=int, default=80, help="TCP/UDP destination port")
    p.add_argument("--icmp-type", type=int, default=8, help="ICMP type (default 8, echo request)")
    p.add_argument("--frame", "--header", dest="frame", metavar="HEX",
                   help="the whole Ethernet frame in hex instead of addresses")
    p.add_argument("--brief", action="store_true", help="hide pass-through steps of constant flows")


def request_of(opts: argparse.Namespace) -> Any:
    from tuplenet.trace.request import Request, TraceError, checked

    if not opts.src_port:
        raise TraceError("give the source port: --src-port LS/PORT")
    return checked(Request(opts.src_port, opts.dst_ip, opts.dst_mac, opts.src_ip, opts.src_mac,
                           opts.proto.lower(), opts.ttl, opts.sport, opts.dport, opts.icmp_type, opts.frame))


def load_model(endpoints: str, prefix: str, timeout: float, security: Any = None) -> Any:
    """The topology as the agents see it (a half-written import is held back, as they do)."""
    from tuplenet.agent.etcdsync import TopologySync
    from tuplenet.store import Store
    from tuplenet.trace.fabric import Model

    store = Store(endpoints, prefix=prefix, timeout=timeout, security=security)
    try:
        changes, _ = TopologySync(store, lambda *a: None).topology_listing()
    finally:
        store.close()
    return Model.from_changes(changes)


def simulate(model: Any, req: Any) -> dict[str, Any]:
    """The JSON document of a simulated trace of a checked request."""
    from tuplenet.trace.fabric import Fabric
    from tuplenet.trace.report import document
    from tuplenet.trace.request import build

    fabric = Fabric(model)
    ls, port, pkt = build(model.facts, req)
    return document(fabric, fabric.trace(ls, port, pkt))


def run(opts: argparse.Namespace, as_json: bool) -> int:
    if not opts.simulate:
        sys.stderr.write(LIVE_UNAVAILABLE + "\n")
        return 2
    import os

    from tuplenet.store.security import from_args

    req = request_of(opts)
    doc = simulate(load_model(opts.endpoints, opts.prefix, opts.timeout, from_args(opts, os.environ)), req)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        from tuplenet.trace.report import to_text

        sys.stdout.write(to_text(doc, brief=opts.brief))
    return 0
