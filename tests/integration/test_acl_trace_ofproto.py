"""The offline trace against ovs-vswitchd on ACL flows: conntrack recirculation (a new connection) and
conjunctive matches must visit the same tables, in order, and end in the same place as
`ovs-appctl ofproto/trace` on the same flows."""

from __future__ import annotations

import test_trace_ofproto as tto
from test_trace_ofproto import compare, fabric_of

from agent_cluster import Cluster, tutorial
from tuplenet.model.acl import AddressSet, make_acl, parse_net
from tuplenet.sandbox import packets as P


def _acl(parent: str, name: str, **kw: str):
    return make_acl(parent, name, kw)


def _tcp(src, dst, dport: int) -> bytes:
    return P.eth(dst.mac, src.mac, P.ETH_IP, P.ipv4(src.ip, dst.ip, P.PROTO_TCP,
                                                    P.tcp(40000, dport, src=src.ip, dst=dst.ip)))


def _trace_through_recirculation(host, spec: str, frame: bytes | None = None) -> tuple[list[int], str, str]:
    """ofproto/trace follows ct(table=N) into the recirculated pass (a new connection by default): the
    tables of both passes in order, and the datapath actions of the last pass."""
    tables, _, out = _ORIGINAL(host, spec, frame)
    actions = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Datapath actions:")]
    return tables, actions[-1] if actions else "", out


_ORIGINAL = tto.ofproto_trace


def test_acl_corpus_matches_ofproto_trace(cluster: Cluster, monkeypatch) -> None:
    c = cluster
    monkeypatch.setattr(tto, "ofproto_trace", _trace_through_recirculation)
    vms = tutorial(c)
    vm1, vm2 = vms["vm1"], vms["vm2"]
    c.put(AddressSet("clients", (parse_net(vm1.ip), parse_net("10.99.0.0/16"))),
          _acl("LS-A", "deny", direction="in", priority="1", action="drop"),
          _acl("LS-A", "web", direction="in", priority="100", action="allow-related", src="$clients",
               proto="tcp", dport="80-90"),
          _acl("LS-A", "rej", direction="out", priority="50", action="reject", proto="tcp", dport="23"),
          _acl("LS-A", "udp", direction="in", priority="60", action="allow", proto="udp"))
    c.start_agents("hv1", "hv2")
    c.wait_converged("hv1", "hv2")
    fab = fabric_of(c, "hv1", "hv2")
    corpus = {
        "conjunction allows": (_tcp(vm1, vm2, 85), ["hv1", "hv2"]),
        "outside the range: default-deny rule": (_tcp(vm1, vm2, 91), ["hv1"]),
        "udp: plain allow": (P.eth(vm2.mac, vm1.mac, P.ETH_IP, P.ipv4(vm1.ip, vm2.ip, P.PROTO_UDP,
                                                                       P.udp(5, 53, src=vm1.ip, dst=vm2.ip))),
                             ["hv1", "hv2"]),
        "arp is not filtered": (P.arp_request(vm1.mac, vm1.ip, vm2.ip), ["hv1"]),
    }
    for name, (frame, hosts) in corpus.items():
        hops = compare(c, fab, "hv1", "vm1", frame)
        assert [h.trace.chassis for h in hops] == hosts, name
