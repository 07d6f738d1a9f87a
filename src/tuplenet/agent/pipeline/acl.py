"""ACLs and security groups: stateful rules on switches and port groups (docs/acl.md).

Only switches with ACLs pay anything. There, IPv4 enters conntrack in the switch's zone (ctzone) in
ls_in_acl / ls_out_acl and continues in the verdict stage (ls_in_acl_eval / ls_out_acl_eval):

- 65535: invalid (`+inv`) packets drop;
- 65534: replies (`+est+rpl`) and related packets (`+rel`) of connections the ACL stage committed
  pass without looking at the rules, unless the connection is marked blocked (ct_mark bit 0);
- 100 + rule priority: the rules. `allow` and `allow-related` commit the connection (clearing the blocked
  mark) and pass, `drop` and `reject` go to acl_deny, which marks an established connection
  blocked (so its replies stop too) and drops; `reject` then asks the agent for a TCP RST or an ICMP
  port unreachable (acl_reject, metered);
- 1: nothing matched: pass (ACLs are a default-allow list; add a low-priority drop for default deny).

Every packet a switch with ACLs lets through is committed (as OVN does on switches with stateful ACLs), on
every host it crosses: conntrack on the receiving host must know the connection too, or a reply would look
invalid there. So `allow` and `allow-related` behave alike; replies of anything allowed pass.

Packets of established connections in the original direction are evaluated against the current rules, so
a rule change keeps every connection the new rules still allow and cuts the ones they no longer allow;
conntrack itself is never flushed.

Matches: a rule's dimensions (its port group's ports on each switch, src, dst, sport, dport) each expand
to one or more values (address sets, port groups' addresses, port ranges as masks). With at most one
dimension of several values a rule is that many flows; with more it is a conjunctive match
(`conjunction(id, k/n)` + `conj_id`), N + M + ... + 1 flows instead of N x M x ....

Owners: one derived owner per rule priority (`("acl_prio", p)`, members: the rules of that priority), so
flows of different rules that coincide (two rules sharing an address set at one priority) are merged in
one place (their conjunction actions concatenated) and a change recomputes only its priority's rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from .. import tables as T
from ..flow import Conjunction, Controller, Ct, Flow, Load, M, Meter, Resubmit, match
from ..openflow.meters import MeterSpec, meter_id
from ..outputs import DerivedKind, Wish
from ..view import Reader
from .common import ls_id
from .const import ETH_IP
from .ctzone import zone

try:  # as flow.py: the C module, hashlib itself loads OpenSSL
    from _blake2 import blake2b
except ImportError:  # pragma: no cover
    from hashlib import blake2b

RULE_BASE = 100  # flow priority of rule priority 0
PRIO_COMMIT = 1  # no rule matched: pass, tracked
PRIO_CT = 65534
PRIO_INVALID = 65535
BLOCKED = 1  # ct_mark bit 0: an ACL dropped this established connection
REJECT_METER = meter_id(0x4143)  # "AC"
REJECT_RATE = 100  # packets/s for every reject on the host; pinctrl limits each source again
HITS = "acl_flow"  # Wish kind: a verdict flow's cookie -> the rule it counts for (aclhits.py)

# ct_state bits
NEW, EST, REL, RPL, INV, TRK = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

_STAGES = {  # direction -> (conntrack stage, verdict stage, next stage, port register)
    "in": (T.LS_IN_ACL, T.LS_IN_ACL_EVAL, T.LS_IN_QOS, T.R_SRC_PORT),
    "out": (T.LS_OUT_ACL, T.LS_OUT_ACL_EVAL, T.LS_OUT_MIRROR, T.R_DST_PORT),
}
_PROTO_PORTS = {6: ("tcp_src", "tcp_dst"), 17: ("udp_src", "udp_dst")}


def _prio_of(key: tuple, acl: Any) -> tuple[tuple, ...]:
    return (("acl_prio", acl.priority),)


def range_masks(lo: int, hi: int, bits: int = 16) -> list[tuple[int, int]]:
    """[lo, hi] as the fewest (value, mask) prefixes (at most 2 * bits - 2)."""
    out = []
    full = (1 << bits) - 1
    while lo <= hi:
        size = lo & -lo if lo else 1 << bits
        while size > hi - lo + 1:
            size >>= 1
        out.append((lo, full ^ (size - 1)))
        lo += size
    return out


def conj_id(rule_key: tuple, dp: int) -> int:
    """A conjunction id per (rule, switch): a stable hash, so every host and run agree."""
    return int.from_bytes(blake2b(repr((rule_key, dp)).encode(), digest_size=4).digest(), "big")


def _addr_values(r: Reader, ref: Any) -> list[tuple[int, int]]:
    """The (network, prefix) list a src/dst reference stands for."""
    if ref.cidr is not None:
        return [(ref.cidr.net, ref.cidr.prefix)]
    if ref.kind == "$":
        s = r.get(("address_set", ref.name))
        return [(c.net, c.prefix) for c in s.addresses] if s is not None else []
    pg = r.get(("port_group", ref.name))
    out = []
    for ls, name in pg.ports if pg is not None else ():
        lsp = r.get(("lsp", ls, name))
        if lsp is not None and not lsp.is_patch:
            out.append((_ip(lsp.ip), 32))
    return sorted(set(out))


def _ip(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def _net_m(field: str, v: tuple[int, int]) -> M:
    net, prefix = v
    return M(field, net) if prefix == 32 else M(field, net, (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF)


def _scopes(r: Reader, key: tuple, acl: Any) -> dict[int, list[int] | None]:
    """Switch datapath -> the port ids the rule applies to (None: every port of a switch ACL)."""
    if key[0] == "acl":
        dp = ls_id(r, key[1])
        return {} if dp is None else {dp: None}
    pg = r.get(("port_group", key[1]))
    out: dict[int, list[int]] = {}
    for ls, name in pg.ports if pg is not None else ():
        lsp = r.get(("lsp", ls, name))
        dp = ls_id(r, ls)
        if lsp is None or dp is None or lsp.is_patch:
            continue
        out.setdefault(dp, []).append(_ip(lsp.ip) & 0xFFFF)
    return {dp: sorted(set(p)) for dp, p in out.items()}


def _commit(dp: int, direction: str) -> tuple:
    """Commit the connection in the switch's zone, clearing the blocked mark (OVS wants ct() flows to match
    dl_type=ip: every flow carrying one does). Ingress also flags the packet: if the egress stage on this host
    (same zone) then denies it, acl_deny must mark the connection it finds committed as blocked."""
    ct = Ct(commit=True, zone=zone(dp), exec=(Load("ct_mark", 0, 0, 1),))
    return (ct, _COMMITTED) if direction == "in" else (ct,)


_COMMITTED = Load(T.R_ACL, 1, 0, 1)


def _verdict(acl: Any, dp: int) -> tuple:
    nxt = _STAGES[acl.direction][2]
    if acl.action in ("allow", "allow-related"):
        return (*_commit(dp, acl.direction), Resubmit(nxt))
    if acl.action == "drop":
        return (Resubmit(T.ACL_DENY),)
    return (Resubmit(T.ACL_DENY), Resubmit(T.ACL_REJECT))


class _Acc:
    """Flows of one priority by OpenFlow identity; clause flows that coincide get their conjunction
    actions merged (OVS keeps one flow per table/priority/match)."""

    def __init__(self) -> None:
        self.flows: dict[tuple, tuple] = {}
        self.conj: dict[tuple, tuple[tuple, list]] = {}
        self.hits: list[Wish] = []

    def add(self, table: int, prio: int, m: tuple, actions: tuple) -> int:
        k = (table, prio, m)
        old = self.flows.get(k)
        if old is None or _rank(actions) < _rank(old):  # same match, two verdicts: a stable choice
            self.flows[k] = actions
        return Flow(table, prio, m, self.flows[k]).cookie

    def clause(self, table: int, prio: int, fixed: tuple, dkey: tuple, vals: tuple, c: Conjunction) -> None:
        """Clause `c` is every value of dimension `dkey` with the `fixed` matches: rules sharing (fixed,
        dimension) share the expansion, so the work grows with rules + addresses too."""
        g = self.conj.get((table, prio, fixed, dkey))
        if g is None:
            self.conj[(table, prio, fixed, dkey)] = (vals, [c])
        else:
            g[1].append(c)

    def result(self) -> list:
        out: list = [Flow(t, p, m, a) for (t, p, m), a in self.flows.items()]
        merged: dict[tuple, tuple] = {}
        for (t, p, fixed, _), (vals, cs) in self.conj.items():
            acts = tuple(sorted(set(cs)))  # once per group: its values usually get exactly these actions
            for v in vals:
                k = (t, p, match(*fixed, v))
                got = merged.get(k)
                merged[k] = acts if got is None else tuple(sorted(set(got) | set(acts)))
        for (t, p, m), acts in merged.items():
            if (t, p, m) not in self.flows:  # a plain rule with the very same match wins (documented)
                out.append(Flow(t, p, m, acts))
        return out + self.hits


def _rank(actions: tuple) -> str:
    return ",".join(a.text() for a in actions)


def _addr_dim(r: Reader, field: str, ref: Any) -> tuple[tuple, tuple[M, ...]]:
    """(identity, match values) of a src/dst reference; computed once per engine run for all rules."""
    dkey = (field, ref.kind, ref.name, ref.cidr)
    return dkey, r.cached(("acl_dim",) + dkey,
                          lambda sub: tuple(_net_m(field, v) for v in _addr_values(sub, ref) or ()))


@lru_cache(maxsize=4096)
def _port_dim(field: str, lo: int, hi: int) -> tuple[M, ...]:
    return tuple(M(field, v, None if mask == 0xFFFF else mask) for v, mask in range_masks(lo, hi))


def _rule_flows(r: Reader, key: tuple, acl: Any, acc: _Acc, dps: set[int]) -> None:
    _, table, _, port_reg = _STAGES[acl.direction]
    prio = RULE_BASE + acl.priority
    base: list[M] = [M("dl_type", ETH_IP)]
    if acl.proto is not None:
        base.append(M("nw_proto", acl.proto))
    dims: list[tuple[tuple, tuple[M, ...]]] = []  # (identity, values): rules sharing a dimension share its work
    for field, ref in (("nw_src", acl.src), ("nw_dst", acl.dst)):
        if ref is not None:
            dims.append(_addr_dim(r, field, ref))
    if acl.proto in _PROTO_PORTS:
        for field, rng in zip(_PROTO_PORTS[acl.proto], (acl.sport, acl.dport), strict=True):
            if rng is not None:
                dims.append(((field, *rng), _port_dim(field, *rng)))
    if any(not d[1] for d in dims):
        return  # an empty address set matches nothing
    for dp, ports in sorted(_scopes(r, key, acl).items()):
        if ports is not None and not ports:
            continue
        dps.add(dp)
        ddims = dims + ([(("port", key[1], dp), tuple(M(port_reg, p) for p in ports))] if ports is not None else [])
        fixed = (M("metadata", dp), *base, *(d[1][0] for d in ddims if len(d[1]) == 1))
        multi = [d for d in ddims if len(d[1]) > 1]
        actions = _verdict(acl, dp)
        cookies: list[int] = []
        if len(multi) <= 1:
            for v in multi[0][1] if multi else [None]:
                cookies.append(acc.add(table, prio, match(*fixed, *([v] if v is not None else [])), actions))
        else:
            cid = conj_id(key, dp)
            for i, (dkey, vals) in enumerate(multi, 1):
                acc.clause(table, prio, fixed, dkey, vals, Conjunction(cid, i, len(multi)))
            cookies.append(acc.add(table, prio, match(M("metadata", dp), M("dl_type", ETH_IP), M("conj_id", cid)),
                                   actions))
        acc.hits += [Wish(HITS, (c,), key) for c in cookies]


def dp_flows(dp: int) -> list[Flow]:
    """What a switch with ACLs needs besides its rules (identical from every owner that has rules there)."""
    z = zone(dp)
    out = []
    for direction, (ct_table, eval_table, nxt, _) in _STAGES.items():
        out += [
            Flow(ct_table, 1, match(metadata=dp, dl_type=ETH_IP), (Ct(zone=z, table=eval_table),)),
            Flow(eval_table, PRIO_COMMIT, match(metadata=dp, dl_type=ETH_IP),
                 (*_commit(dp, direction), Resubmit(nxt))),
            Flow(eval_table, PRIO_INVALID, match(M("metadata", dp), M("ct_state", INV | TRK, INV | TRK)),
                 (Resubmit(T.DROP),)),
            Flow(eval_table, PRIO_CT, match(M("metadata", dp), M("ct_state", EST | RPL | TRK, EST | RPL | INV | TRK),
                                            M("ct_mark", 0, BLOCKED)), (Resubmit(nxt),)),
            Flow(eval_table, PRIO_CT, match(M("metadata", dp), M("ct_state", REL | TRK, NEW | REL | INV | TRK),
                                            M("ct_mark", 0, BLOCKED)), (Resubmit(nxt),)),
        ]
    block = (Ct(commit=True, zone=z, exec=(Load("ct_mark", 1, 0, 1),)),)
    out.append(Flow(T.ACL_DENY, 2, match(M("metadata", dp), M("dl_type", ETH_IP), M("ct_state", EST | TRK, EST | TRK)),
                    block))
    out.append(Flow(T.ACL_DENY, 1, match(M("metadata", dp), M("dl_type", ETH_IP),
                                         M(T.R_ACL, 1, 1)), block))
    return out


def shared_flows() -> list:
    """Independent of any switch: ACL-generated replies skip egress ACLs; reject goes to the agent, metered."""
    return [
        Flow(T.LS_OUT_ACL, 2, match(M(T.R_FLAGS, T.F_ACL_SKIP, T.F_ACL_SKIP)), (Resubmit(T.LS_OUT_MIRROR),)),
        Flow(T.ACL_REJECT, 0, (), (Meter(REJECT_METER), Controller(T.OP_ACL_REJECT.to_bytes(4, "big")))),
        MeterSpec(REJECT_METER, REJECT_RATE, REJECT_RATE),
    ]


def prio_outputs(r: Reader, owner: tuple, members: Iterable[tuple]) -> list:
    """Every flow of the rules with one priority, plus the per-switch and shared ACL flows they need."""
    acc = _Acc()
    dps: set[int] = set()
    for key in members:
        acl = r.get(key)
        if acl is not None:
            _rule_flows(r, key, acl, acc, dps)
    out = acc.result()
    for dp in sorted(dps):
        out += dp_flows(dp)
    return out + shared_flows() if dps else out


ACLS = DerivedKind("acl_prio", ("acl", "pg_acl"), _prio_of, prio_outputs)

__all__ = ["ACLS", "BLOCKED", "HITS", "RULE_BASE", "conj_id", "dp_flows", "prio_outputs", "range_masks"]
