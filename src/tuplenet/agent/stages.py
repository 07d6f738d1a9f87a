"""The pipeline as one ordered, declarative registry: every stage's table, where it may continue, its trace
point, its named priority bands, and which fields its flows may match and set.

Everything else derives from it: the table constants (`tables.py`), the pass-through and default flows
(`pipeline/const.py` via `default_flows()`), the register and Geneve-option layout (`GENEVE_LAYOUT`), the
trace's stage names, and the contract test (`tests/unit/test_stages.py`) that checks every flow the
pipeline generates against its stage, as Faucet's table checks do. A new feature adds a stage (or fills a
reserved one) and a module that emits flows into it; nothing is renumbered.

Table numbers follow TupleNet 0.3 (reference §3.7-§3.8) where the stage existed there, so operators'
habits and traces carry over; new stages take unused numbers.
"""

from __future__ import annotations

from ..records import dataclass, field

# Fields shared by many stages.
_REGS = frozenset(f"reg{i}" for i in range(16))
_L2 = frozenset({"dl_src", "dl_dst", "dl_type"})
_L3 = frozenset({"nw_src", "nw_dst", "nw_proto", "nw_ttl"})
_L4 = frozenset({"icmp_type", "icmp_code", "tcp_src", "tcp_dst", "udp_src", "udp_dst"})
_ARP = frozenset({"arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha"})
_CT = frozenset({"ct_state", "ct_zone"})
_ANY_MATCH = _REGS | _L2 | _L3 | _L4 | _ARP | _CT | {"metadata", "in_port"}
# ACL verdict stages (pipeline/acl.py): rule priority p is flow priority ACL_RULE_BASE + p.
_ACL_MATCH = frozenset(_REGS | _L2 | _L3 | _L4 | _CT | {"metadata", "ct_mark", "conj_id"})
_ACL_BANDS = (("default", 0, 0), ("commit", 1, 1), ("rules", 100, 100 + 32767), ("conntrack", 65534, 65535))

DEFAULT_BAND = (0, 0)
_LB_MATCH = frozenset({"metadata", "dl_type", "nw_proto", "nw_src", "nw_dst", "tcp_src", "tcp_dst", "udp_src",
                       "udp_dst", "ct_state", "ct_mark"})
_NAT_MATCH = frozenset({"metadata", "dl_type", "nw_src", "nw_dst", "reg10"})


@dataclass(frozen=True)
class Stage:
    name: str
    table: int
    # Stages this one may resubmit to. A stage with no `next` is a subroutine: it returns to its caller.
    next: tuple[str, ...] = ()
    # The priority-0 flow generated for the stage: the name of a stage to pass to, "" for a plain drop /
    # return, or None when the stage writes its own default (its module owns it).
    default: str | None = ""
    doc: str = ""
    matches: frozenset[str] = field(default=frozenset())
    sets: frozenset[str] = field(default=frozenset())
    # Named priority bands (inclusive ranges); every flow of the stage lies in one of them.
    bands: tuple[tuple[str, int, int], ...] = (("default", 0, 0),)
    # Reserved for a feature not built yet: only its pass-through exists.
    reserved: bool = False

    @property
    def trace_point(self) -> str:
        """What a trace reports for a step in this stage."""
        return self.name

    def band(self, priority: int) -> str | None:
        return next((n for n, lo, hi in self.bands if lo <= priority <= hi), None)


def _s(name: str, table: int, next: tuple[str, ...] = (), default: str | None = "", doc: str = "",
       matches: frozenset[str] | set[str] = frozenset(), sets: frozenset[str] | set[str] = frozenset(),
       bands: tuple[tuple[str, int, int], ...] = (("default", 0, 0),), reserved: bool = False) -> Stage:
    return Stage(name, table, next, default, doc, frozenset(matches), frozenset(sets), bands, reserved)


def _reserved(name: str, table: int, nxt: str, doc: str) -> Stage:
    return _s(name, table, (nxt,), nxt, doc, matches=_ANY_MATCH, sets=_REGS | {"ct_zone"},
              bands=(("default", 0, 0), ("rules", 1, 65535)), reserved=True)


_PORT_BANDS = (("default", 0, 0), ("generic", 1, 2), ("port", 3, 5))

STAGES: tuple[Stage, ...] = (
    # ---- physical -> logical
    _s("classify", 0, ("ls_in_start", "extract", "from_tunnel"), "",
       "VM/patch ports and tunnels enter the pipeline; port security; unknown sources drop",
       matches={"in_port", "dl_src", "dl_type", "nw_src", "arp_spa", "arp_sha", "tun_src"},
       sets={"reg0", "reg10", "metadata"}, bands=_PORT_BANDS),
    # ---- logical switch ingress
    _s("ls_in_start", 1, ("ls_in_hook",), None, "clear per-switch registers (a packet may come from a router)",
       sets={"reg1", "reg4", "reg5"}),
    _s("ls_in_hook", 2, ("third_party",), "third_party", "hand-off to third-party flows"),
    _s("third_party", 201, ("ls_in_arp_ctl",), "ls_in_arp_ctl",
       "other software's flows live here (their cookies); ours only pass through"),
    _s("ls_in_arp_ctl", 3, ("ls_in_hc",), "ls_in_hc",
       "ARP to the controller (on-demand, edges): a gateway learns replies from its physical side and "
       "resolves unknown next hops (zero MAC) by ARP",
       matches={"metadata", "dl_type", "dl_dst", "arp_op", "reg0"}, bands=(("default", 0, 0), ("gateway", 2, 2))),
    _s("ls_in_hc", 18, ("ls_in_lb",), "ls_in_lb",
       "load-balancer health-check replies (to the monitor address) go to the agent, metered, before ACLs",
       matches={"metadata", "in_port", "dl_type", "nw_src", "nw_dst", "nw_proto", "tcp_src"},
       bands=(("default", 0, 0), ("monitor", 1, 1))),
    _s("ls_in_lb", 9, ("ls_in_lb_sel", "ls_in_lb_hp", "ls_in_acl"), "ls_in_acl",
       "load balancer: packets to a VIP:port (and hairpin replies to it) of switches with LBs enter conntrack "
       "in the switch's zone, un-NATed by it (pipeline/lb.py); before the ACLs, which then see the backend and "
       "find the connection the DNAT committed (an ACL commit first would leave it without NAT)",
       matches=_LB_MATCH, sets={"dl_src", "reg10"},
       bands=(("default", 0, 0), ("hairpin_reply", 5, 5), ("vip", 10, 10))),
    _s("ls_in_lb_sel", 13, ("ls_in_lb_sel", "ls_in_lb_nat", "drop"), "ls_in_lb_nat",
       "new connections to a VIP pick a backend (select group, or multipath on the source IP for affinity) and "
       "commit nat(dst=backend) in the switch's zone; none in service -> drop (counted)",
       matches=_LB_MATCH | {"reg8"}, sets={"reg8"},
       bands=(("default", 0, 0), ("backend", 5, 5), ("vip", 10, 10))),
    _s("ls_in_lb_nat", 14, ("ls_in_lb_nat", "ls_in_acl"), "ls_in_acl",
       "after DNAT: a backend of this switch gets its own MAC as destination; a backend reaching its own VIP "
       "is SNATed to the VIP (hairpin)", matches=_LB_MATCH, sets={"dl_dst", "dl_src", "reg10"},
       bands=(("default", 0, 0), ("backend", 5, 5), ("hairpin", 10, 10))),
    _s("ls_in_lb_hp", 15, ("ls_in_lb_nat",), "",
       "hairpin replies: after un-SNAT, un-DNAT (a second lookup in the switch's zone)",
       matches={"metadata", "dl_type"}, sets={"dl_src", "reg10"}, bands=(("default", 0, 0), ("switch", 1, 1))),
    _s("ls_in_acl", 8, ("ls_in_acl_eval", "ls_in_qos"), "ls_in_qos",
       "ACLs: IPv4 of switches with ACLs enters conntrack (the switch's zone); others pass (pipeline/acl.py)",
       matches={"metadata", "dl_type"}, bands=(("default", 0, 0), ("conntrack", 1, 1))),
    _s("ls_in_acl_eval", 12, ("ls_in_qos",), "ls_in_qos",
       "ACL verdicts on tracked packets: replies/related of allowed connections pass, rules by priority",
       matches=_ACL_MATCH, sets={"reg11"}, bands=_ACL_BANDS),
    _reserved("ls_in_qos", 10, "ls_in_mirror", "QoS marking and policing, ingress"),
    _reserved("ls_in_mirror", 11, "ls_in_arp", "port mirroring, ingress"),
    _s("ls_in_arp", 4, ("arp_respond", "ls_in_lookup", "ls_in_untunnel"), "ls_in_untunnel",
       "ARP requests go to the responder", matches={"dl_type", "arp_op"}, bands=(("default", 0, 0), ("arp", 2, 2))),
    _s("ls_in_untunnel", 5, ("ls_in_untunnel_known", "ls_in_lookup"), "ls_in_lookup",
       "ENABLE_UNTUNNEL: IPv4 a local VM sends to its router (one with a default route) is checked against the "
       "known subnets; frames from routers, patch ports and redirected frames pass (pipeline/untunnel.py)",
       matches={"metadata", "dl_type", "dl_dst", "reg0", "reg10"},
       bands=(("default", 0, 0), ("to_router", 1, 1), ("from_router", 2, 2), ("skip", 3, 3))),
    _s("ls_in_untunnel_known", 16, ("ls_in_lookup",), None,
       "ENABLE_UNTUNNEL: a destination in any router-port subnet of the topology continues; the rest leaves "
       "through br-int-dsrgw to the host's own stack (DSR; one flow per distinct subnet, any switch)",
       matches={"dl_type", "nw_dst"}, sets={"dl_dst"}, bands=(("dsr", 0, 0), ("known", 1, 33))),
    _s("ls_in_lookup", 6, ("ls_in_output", "ls_out_start", "to_chassis", "ls_in_ondemand", "ls_in_arp", "drop"), "drop",
       "destination port by MAC (here, through a tunnel, or the patch port); on-demand: a miss goes to the agent "
       "and, flagged redirected, to a fully programmed chassis (with none: paused until its flows are in)",
       matches={"metadata", "dl_dst", "dl_type", "arp_op", "reg10"}, sets={"reg1", "reg9", "reg10"},
       bands=(("default", 0, 0), ("miss", 1, 1), ("patch", 2, 2), ("remote", 3, 3), ("local", 4, 5))),
    _s("ls_in_output", 7, ("embed", "output", "ls_out_start"), None,
       "decided (tunnel) outputs leave; the rest go through switch egress",
       matches={"reg5"}, bands=(("default", 0, 0), ("undecided", 1, 1), ("decided", 2, 2))),
    _s("ls_in_ondemand", 19, (), None, "unknown destination to the agent, metered per source bucket (on-demand "
       "hosts; a subroutine)", matches={"dl_type", "nw_src", "arp_spa"},
       bands=(("default", 0, 0), ("source", 1, 1))),
    # ---- logical switch egress
    _s("ls_out_start", 20, ("ls_out_lb",), "ls_out_lb", "switch egress"),
    _s("ls_out_lb", 27, ("ls_out_lb_ct", "ls_out_loopback"), "ls_out_loopback",
       "load balancer replies: traffic from a backend's port of a switch with LBs is un-DNATed (conntrack in "
       "the switch's zone, on the client's chassis)", matches=_LB_MATCH, bands=(("default", 0, 0), ("reply", 5, 5))),
    _s("ls_out_lb_ct", 28, ("ls_out_loopback",), "ls_out_loopback", "after un-DNAT (recirculation target)"),
    _s("ls_out_loopback", 21, ("ls_out_acl",), "ls_out_acl", "a reply may leave through its ingress port",
       matches={"reg10"}, sets={"in_port"}, bands=(("default", 0, 0), ("loopback", 2, 2))),
    _s("ls_out_acl", 24, ("ls_out_acl_eval", "ls_out_mirror"), "ls_out_mirror",
       "ACLs, egress: as ls_in_acl; ACL-generated replies (reject) skip it",
       matches={"metadata", "dl_type", "reg10"}, bands=(("default", 0, 0), ("conntrack", 1, 1), ("skip", 2, 2))),
    _s("ls_out_acl_eval", 26, ("ls_out_mirror",), "ls_out_mirror", "ACL verdicts, egress (as ls_in_acl_eval)",
       matches=_ACL_MATCH, bands=_ACL_BANDS),
    _reserved("ls_out_mirror", 25, "ls_out_port", "port mirroring, egress"),
    _s("ls_out_port", 22, ("ls_out_to_router", "drop"), "drop", "output port (local VM, patch, router)",
       matches={"metadata", "reg1"}, sets={"reg4", "reg5", "reg6", "reg7"},
       bands=(("default", 0, 0), ("router", 2, 2), ("port", 3, 3))),
    _s("ls_out_to_router", 23, ("output", "lr_in_start"), None, "leave, or enter the next router",
       matches={"reg5"}, sets={"metadata", "reg0", "reg6", "reg7"},
       bands=(("default", 0, 0), ("to_router", 1, 1), ("decided", 2, 2))),
    # ---- logical router ingress
    _s("lr_in_start", 30, ("lr_in_icmp",), None, "router ingress", sets={"reg1", "reg10"}),
    _s("lr_in_icmp", 31, ("lr_in_ttl", "drop"), None, "echo replies from any router interface; IPv4 only",
       matches={"metadata", "dl_type", "nw_proto", "nw_dst", "icmp_type", "icmp_code"},
       sets={"reg8", "nw_src", "nw_dst", "icmp_type", "nw_ttl", "reg10"},
       bands=(("default", 0, 0), ("ipv4", 1, 1), ("echo", 3, 3))),
    _s("lr_in_ttl", 32, ("lr_in_unsnat",), None, "TTL: expired packets go to the agent (metered), others -1",
       matches={"dl_type", "nw_ttl", "nw_src"}, sets={"nw_ttl"},
       bands=(("default", 0, 0), ("expired", 2, 2))),
    _s("lr_in_unsnat", 33, ("lr_in_unsnat_ct", "lr_in_lb"), "lr_in_lb",
       "un-SNAT replies through the router's conntrack zone; floating IPs rewritten statelessly",
       matches=_NAT_MATCH, sets={"nw_dst", "reg10"}, bands=(("default", 0, 0), ("unsnat", 1, 1), ("floating", 2, 2))),
    _s("lr_in_unsnat_ct", 40, ("lr_in_lb",), "lr_in_lb",
       "after un-SNAT conntrack: what is still for an SNAT-only address answered no connection and drops",
       matches=_NAT_MATCH, bands=(("default", 0, 0), ("unanswered", 1, 1))),
    _s("lr_in_lb", 34, ("lr_in_lb_sel", "lr_in_lb_nat", "lr_in_lb_hp", "lr_in_dnat"), "lr_in_dnat",
       "load balancer on routers (where the router runs; pinned routers see both directions): VIP:port enters "
       "conntrack in the router's zone, replies from backends are un-DNATed", matches=_LB_MATCH,
       bands=(("default", 0, 0), ("reply", 4, 4), ("hairpin_reply", 5, 5), ("vip", 10, 10))),
    _s("lr_in_lb_sel", 42, ("lr_in_lb_sel", "lr_in_lb_nat", "drop"), "lr_in_lb_nat",
       "as ls_in_lb_sel, in the router's zone", matches=_LB_MATCH | {"reg8"}, sets={"reg8"},
       bands=(("default", 0, 0), ("backend", 5, 5), ("vip", 10, 10))),
    _s("lr_in_lb_nat", 43, ("lr_in_lb_nat", "lr_in_dnat"), "lr_in_dnat",
       "after DNAT: hairpin SNAT to the VIP", matches=_LB_MATCH, bands=(("default", 0, 0), ("hairpin", 10, 10))),
    _s("lr_in_lb_hp", 44, ("lr_in_lb_nat",), "", "hairpin replies: after un-SNAT, un-DNAT",
       matches={"metadata", "dl_type"}, bands=(("default", 0, 0), ("router", 1, 1))),
    _s("lr_in_dnat", 35, ("lr_in_dnat_ct", "lr_in_route"), "lr_in_route",
       "DNAT of new connections to a /32 (commit in the router's zone)",
       matches=_NAT_MATCH, sets={"reg10"}, bands=(("default", 0, 0), ("dnat", 33, 33))),
    _s("lr_in_dnat_ct", 41, ("lr_in_route",), "lr_in_route", "after DNAT conntrack (recirculation target)"),
    _s("lr_in_route", 37, ("lr_in_ecmp", "drop"), "drop", "longest prefix match over connected + static routes",
       matches={"metadata", "dl_type", "nw_dst"}, sets={"reg1", "reg2", "reg3", "reg4", "dl_src"},
       bands=(("default", 0, 0), ("route", 1, 33 << 10))),
    _s("lr_in_ecmp", 38, ("lr_out_start", "drop"), "lr_out_start",
       "equal-cost next hops: the edge bundle_load chose (reg4) -> its route; none alive -> drop (counted)",
       matches={"metadata", "dl_type", "nw_dst", "reg4"}, sets={"reg1", "reg2", "reg3", "dl_src"},
       bands=(("default", 0, 0), ("dead", 1, 33), ("member", 34, 66))),
    # ---- logical router egress
    _s("lr_out_start", 50, ("lr_out_undnat",), "lr_out_undnat", "router egress"),
    _s("lr_out_undnat", 51, ("lr_out_undnat_ct", "lr_out_snat"), "lr_out_snat",
       "un-DNAT replies through the router's zone; floating IPs rewritten statelessly",
       matches=_NAT_MATCH, sets={"nw_src", "dl_src"},
       bands=(("default", 0, 0), ("undnat", 1, 1), ("floating", 2, 2))),
    _s("lr_out_undnat_ct", 52, ("lr_out_snat",), "lr_out_snat",
       "after un-DNAT conntrack: the NAT address's MAC as source", matches=_NAT_MATCH, sets={"dl_src", "reg10"},
       bands=(("default", 0, 0), ("nat_mac", 1, 1))),
    _s("lr_out_snat", 53, ("lr_out_snat_ct", "lr_out_nexthop"), "lr_out_nexthop",
       "SNAT (longest prefix wins; commit in the router's zone)", matches=_NAT_MATCH,
       bands=(("default", 0, 0), ("snat", 1, 33))),
    _s("lr_out_snat_ct", 54, ("lr_out_nexthop",), "lr_out_nexthop",
       "after SNAT conntrack: the NAT address's MAC as source", matches=_NAT_MATCH, sets={"dl_src"},
       bands=(("default", 0, 0), ("nat_mac", 1, 1))),
    _s("lr_out_nexthop", 55, ("lr_out_to_switch",), "lr_out_to_switch", "reserved for next-hop rewrites"),
    _s("lr_out_to_switch", 57, ("ls_mac_bind", "ls_in_start", "drop"), "drop",
       "into the next switch, resolving the next hop's MAC there",
       matches={"metadata", "reg1"}, sets={"dl_dst", "metadata", "reg0"},
       bands=(("default", 0, 0), ("port", 1, 1))),
    _s("ls_mac_bind", 59, (), "",
       "next hop IP in a switch -> MAC (a subroutine; unknown keeps the zero MAC); gateways add learned ones "
       "per router port (reg3)",
       matches={"metadata", "reg2", "reg3"}, sets={"dl_dst"}, bands=(("default", 0, 0), ("binding", 1, 1))),
    # ---- shared
    _s("to_chassis", 93, (), "", "chassis (tunnel IP in reg9) -> its tunnel port (a subroutine)",
       matches={"reg9"}, sets={"reg4", "reg5", "in_port", "tun_dst"},
       bands=(("default", 0, 0), ("chassis", 1, 1))),
    _s("redirect", 95, (), "", "ENABLE_REDIRECT: the tunnel to_chassis chose went down (BFD) -> pick another "
       "edge that can reach the target; a redirected frame never twice (a subroutine)",
       matches={"reg10"}, sets={"reg4", "reg8"}, bands=(("default", 0, 0), ("redirect", 1, 1), ("twice", 2, 2))),
    _s("redirect_pick", 92, (), "", "the edge redirect picked (reg8): flag the frame and send it there; no edge "
       "alive: try the direct tunnel anyway (a subroutine)", matches={"reg8"}, sets={"reg4", "reg10"},
       bands=(("default", 0, 0), ("edge", 1, 1), ("none", 2, 2))),
    _s("output", 94, ("drop",), None, "output to the decided port",
       matches={"reg4"}, bands=(("default", 0, 0), ("none", 1, 1))),
    _s("arp_respond", 96, (), None, "ARP replies from the responder (a subroutine)",
       matches={"metadata", "dl_type", "arp_op", "arp_tpa"},
       sets={"dl_src", "dl_dst", "arp_op", "arp_sha", "arp_spa", "arp_tha", "arp_tpa", "reg1", "reg10"},
       bands=(("address", 1, 1),)),
    _s("embed", 97, (), None, "logical context into the Geneve header (a subroutine)",
       sets={"tun_id", "tun_metadata0"}),
    _s("extract", 98, (), None, "logical context out of the Geneve header (a subroutine)",
       sets={"metadata", "reg0", "reg1", "reg10"}),
    _s("from_tunnel", 99, ("ls_out_start", "ls_in_arp", "ls_mac_bind"), "ls_out_start",
       "tunnel ingress continues in switch egress; a redirected frame (an on-demand host's miss) is looked up again",
       matches={"reg10", "dl_type", "dl_dst"}, sets={"reg2"}, bands=(("default", 0, 0), ("redirect", 1, 2))),
    _s("trace_point", 100, (), "", "live trace: a metered copy of a marked packet to the agent "
       "(a subroutine, run in a clone on tunnel ingress)", matches={"reg10"},
       bands=(("default", 0, 0), ("report", 1, 1))),
    _s("drop", 101, (), "", "explicit drops end here (counted per flow); a live-traced packet reports its drop",
       matches={"reg10"}, bands=(("default", 0, 0), ("trace", 1, 1))),
    _s("acl_deny", 102, (), "", "ACL drop: an established connection is marked blocked (ct_mark bit 0), then dropped",
       matches={"metadata", "dl_type", "ct_state", "reg11"}, bands=(("default", 0, 0), ("blocked", 1, 2))),
    _s("acl_reject", 103, (), None, "ACL reject: to the agent (metered), which answers TCP RST / ICMP unreachable",
       bands=(("default", 0, 0),)),
)

BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}
BY_TABLE: dict[int, Stage] = {s.table: s for s in STAGES}


def table(name: str) -> int:
    return BY_NAME[name].table


def stage_of(table_id: int) -> Stage | None:
    return BY_TABLE.get(table_id)


# ---- registers: the layout, declared once
REGISTERS = {
    "src_port": "reg0",     # source port id (16 bit)
    "dst_port": "reg1",     # destination port id, 0 = unknown
    "next_hop": "reg2",     # IP to resolve (next hop or destination)
    "out_lrp_ip": "reg3",   # IP of the egress router port
    "ofport": "reg4",       # output ofport (0xffff = none)
    "decided": "reg5",      # 1 once the output is decided
    "next_lr": "reg6",      # router id on the LS -> LR hand-off
    "next_lrp": "reg7",     # router port id on the LS -> LR hand-off
    "scratch": "reg8",      # scratch (IP swap in the ICMP responder)
    "chassis": "reg9",      # destination chassis, as its tunnel IP
    "flags": "reg10",       # flags; bits 8-15 trace sequence; 16-31 trace command id
    "acl": "reg11",         # bit 0: an ingress ACL committed the connection here (not carried by tunnels)
}

# ---- Geneve: one option (class, type, length in bytes) mapped to tun_metadata0, and what it carries:
# (register, bit offset in the option, bits). The VNI carries the datapath id.
GENEVE_OPTION = (0xFFEE, 0, 8)
GENEVE_LAYOUT = ((REGISTERS["src_port"], 0, 16), (REGISTERS["dst_port"], 16, 16), (REGISTERS["flags"], 32, 32))
VNI_BITS = 24


def check() -> None:
    """The registry is consistent: unique names and tables, every `next`/default names a stage."""
    names = [s.name for s in STAGES]
    tables = [s.table for s in STAGES]
    if len(set(names)) != len(names) or len(set(tables)) != len(tables):
        raise ValueError("stage names and tables must be unique")
    for s in STAGES:
        for n in (*s.next, *([s.default] if s.default else [])):
            if n not in BY_NAME:
                raise ValueError(f"stage {s.name} continues to unknown stage {n}")
        if s.default and s.default not in s.next:
            raise ValueError(f"stage {s.name}: default {s.default} is not among its next stages")


check()


def markdown() -> str:
    """The layout as a Markdown table (docs/architecture.md embeds it; a test keeps the two equal)."""
    rows = ["| table | stage | continues to | default | bands | job |", "|---|---|---|---|---|---|"]
    for s in STAGES:
        default = "(own flows)" if s.default is None else (s.default or "drop / return")
        bands = ", ".join(f"{n} {lo}" + (f"–{hi}" if hi != lo else "") for n, lo, hi in s.bands)
        job = ("reserved: " if s.reserved else "") + s.doc
        rows.append(f"| {s.table} | `{s.name}` | {', '.join(s.next) or '(returns)'} | {default} | {bands} | {job} |")
    return "\n".join(rows)
