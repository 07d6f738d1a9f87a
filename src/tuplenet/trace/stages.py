"""What the trace knows about the pipeline's meaning: stage names per table, controller opcodes, owner
labels and the reason a branch dies. The one place to switch to the stage registry when it lands."""

from __future__ import annotations

from functools import cache

from ..agent import tables as T
from ..agent.stages import STAGES, stage_of

# Meanings of the controller() opcodes (first 4 bytes of the userdata); 0.3's are kept for live traces.
_OPCODES = {
    1: "ARP learn",
    2: "ARP generate",
    3: "trace point",
}


@cache
def stage_names() -> dict[int, str]:
    """table number -> the trace point name of its stage in the registry."""
    return {s.table: s.trace_point for s in STAGES}


def stage(table: int) -> str:
    return stage_names().get(table, f"table{table}")


def band(table: int, priority: int | None) -> str:
    """The named priority band of a flow in its stage ('' for a miss or an undeclared priority)."""
    s = stage_of(table)
    return (s.band(priority) or "") if s is not None and priority is not None else ""


@cache
def opcodes() -> dict[int, str]:
    ops = dict(_OPCODES)
    for name, value in vars(T).items():
        if name.startswith("OP_") and isinstance(value, int):
            ops[value] = name[3:].lower().replace("_", " ")
    ops[T.OP_TTL_EXCEEDED] = "TTL exceeded: the agent answers with ICMP time exceeded"
    return ops


def opcode_meaning(userdata: bytes) -> tuple[int | None, str]:
    if len(userdata) < 4:
        return None, "packet-in without opcode"
    op = int.from_bytes(userdata[:4], "big")
    return op, opcodes().get(op, f"opcode {op:#x}")


def owner_label(owner: tuple | None) -> str:
    """('lsp', 'LS-A', 'vm1') -> 'lsp LS-A/vm1'; ('const',) -> 'const'."""
    if owner is None:
        return "-"
    kind, *ident = owner
    if kind == "tun":
        return f"tunnel {ident[0]}"
    return f"{kind} {'/'.join(map(str, ident))}" if ident else kind


def dead_end(table: int, priority: int | None, parent: int | None, empty: bool, ctx: DeadEndContext) -> str:
    """Why a branch of the walk stops in `table` (a miss when `priority` is None, an action-less flow when
    `empty`; `parent` is the table that resubmitted here)."""
    if priority is None:
        return f"no flow matched in table {table} ({stage(table)})"
    if table == T.DROP:
        return _drop_stage_reason(parent, ctx)
    if table == T.CLASSIFY and empty:
        if priority == 0:
            return f"input port {ctx.port_name()} is not bound to a logical port here"
        return (f"port security: {ctx.port_name()} may send only from its own MAC and IP "
                f"(frame from {ctx.src_addrs()})")
    if table == T.TO_CHASSIS:
        return f"no tunnel to chassis {ctx.chassis_name()} (yet)"
    if table == T.LS_MAC_BIND:
        return (f"next hop {ctx.next_hop()} is unknown in switch {ctx.datapath()}: "
                "the destination MAC stays 00:00:00:00:00:00")
    return f"dropped by table {table} ({stage(table)})"


def _drop_stage_reason(parent: int | None, ctx: DeadEndContext) -> str:
    if parent == T.LS_IN_LOOKUP:
        return f"no port with destination MAC {ctx.dl_dst()} in switch {ctx.datapath()}"
    if parent == T.LS_OUT_PORT:
        return f"destination port {ctx.dst_port()} of switch {ctx.datapath()} has no output here"
    if parent == T.LR_IN_ICMP:
        return f"router {ctx.datapath()} forwards only IPv4"
    if parent == T.LR_IN_ROUTE:
        return f"no route to {ctx.nw_dst()} in router {ctx.datapath()}"
    if parent == T.LR_OUT_TO_SWITCH:
        return f"router port {ctx.dst_port()} of {ctx.datapath()} is not linked to a switch here"
    if parent == T.OUTPUT:
        return "no output port was decided"
    via = f" (from table {parent}, {stage(parent)})" if parent is not None else ""
    return f"dropped by the drop stage{via}"


class DeadEndContext:
    """What a reason may mention, resolved lazily (only dead ends pay for the names)."""

    __slots__ = ("pkt", "names", "in_port", "port_label")

    def __init__(self, pkt: dict[str, int], names, in_port: int, port_label) -> None:
        self.pkt, self.names, self.in_port, self.port_label = pkt, names, in_port, port_label

    def datapath(self) -> str:
        return self.names.datapath(self.pkt["metadata"])[1]

    def dst_port(self) -> str:
        return self.names.port(self.pkt["metadata"], self.pkt[T.R_DST_PORT])

    def port_name(self) -> str:
        return self.port_label(self.in_port)

    def dl_dst(self) -> str:
        from ..agent.flow import fmt_mac

        return fmt_mac(self.pkt["dl_dst"])

    def nw_dst(self) -> str:
        from ..agent.flow import fmt_ip

        return fmt_ip(self.pkt["nw_dst"])

    def next_hop(self) -> str:
        from ..agent.flow import fmt_ip

        return fmt_ip(self.pkt[T.R_NEXT_HOP])

    def chassis_name(self) -> str:
        return self.names.chassis_by_ip(self.pkt[T.R_CHASSIS])

    def src_addrs(self) -> str:
        from ..agent.flow import fmt_ip, fmt_mac

        p = self.pkt
        ip = p["nw_src"] if p["dl_type"] == 0x0800 else p["arp_spa"] if p["dl_type"] == 0x0806 else None
        mac = fmt_mac(p["dl_src"])
        if p["dl_type"] == 0x0806:
            mac += f", ARP sender {fmt_mac(p['arp_sha'])}"
        return mac if ip is None else f"{mac} {fmt_ip(ip)}"
