"""tpctl command handlers: thin glue from parsed arguments to tuplenet.control, printing 0.3's messages.

Each handler gets the run context and its positional arguments (already count-checked) and returns the exit
status. Imports of the control layer happen on first use so `tpctl --help` stays instant.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from . import output
from .acl import COMMANDS as _ACL_COMMANDS
from .context import Ctx, confirm, say
from .lb import COMMANDS as _LB_COMMANDS
from .tree_cmds import export_cmd, graph_cmd, import_cmd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _show(ctx: Ctx, objs: list[Any]) -> int:
    output.show(objs, ctx.as_json)
    return 0


# ---- switches ----------------------------------------------------------------------------------------------

def ls_add(ctx: Ctx, a: list[str]) -> int:
    return say(f"switch {ctx.ctl.add_switch(a[0]).name} created")


def ls_del(ctx: Ctx, a: list[str]) -> int:
    confirm(ctx)
    ctx.ctl.delete_switch(a[0], recursive=ctx.recursive)
    return say(f"{a[0]} deleted")


def ls_show(ctx: Ctx, a: list[str]) -> int:
    return _show(ctx, [ctx.ctl.get_switch(a[0])] if a else ctx.ctl.list_switches())


def lsp_add(ctx: Ctx, a: list[str]) -> int:
    port = ctx.ctl.add_switch_port(a[0], a[1], a[2], *a[3:5], requested_chassis=ctx.requested_chassis)
    return say(f"switch {a[0]} port {port.name} created")


def lsp_set_requested(ctx: Ctx, a: list[str]) -> int:
    """Request the port on CHASSIS (the agents move it there, even from a live host) or, --clear, nowhere."""
    from tuplenet.control.errors import InvalidArgument

    if ctx.clear and len(a) > 2:
        raise InvalidArgument("give a chassis name or --clear, not both")
    if not ctx.clear and len(a) < 3:
        raise InvalidArgument(COMMANDS[("lsp", "set-requested")][3])
    port = ctx.ctl.set_requested_chassis(a[0], a[1], None if ctx.clear else a[2])
    where = f" requested on {port.requested_chassis}" if port.requested_chassis else ": requested chassis cleared"
    return say(f"switch {a[0]} port {port.name}{where}")


def lsp_del(ctx: Ctx, a: list[str]) -> int:
    ctx.ctl.delete_switch_port(a[0], a[1])
    return say(f"switch {a[0]} port {a[1]} deleted")


def lsp_show(ctx: Ctx, a: list[str]) -> int:
    from tuplenet.control.readiness import port_states  # ready=true|false|unknown from the agents' reports

    c = ctx.ctl
    ports = [c.get_switch_port(a[0], a[1])] if len(a) > 1 else c.list_switch_ports(a[0])
    states = port_states(c, ports)
    output.show(ports, ctx.as_json, [_port_extra(p, s, ctx.as_json) for p, s in zip(ports, states, strict=True)])
    return 0


def _port_extra(port: Any, ready: str | None, as_json: bool) -> dict[str, Any]:
    """Fields after the 0.3 ones: the requested chassis (always in JSON, in plain text only when set, so a
    0.3-style port prints as before) and readiness (VM ports only)."""
    out: dict[str, Any] = {}
    if as_json or port.requested_chassis:
        out["requested_chassis"] = port.requested_chassis
    if ready is not None:
        out["ready"] = ready
    return out


def patchport_add(ctx: Ctx, a: list[str]) -> int:
    port = ctx.ctl.add_patch_port(a[0], a[1], a[2], a[3])
    return say(f"switch {a[0]} patchport {port.name} created")


# ---- routers -----------------------------------------------------------------------------------------------

def lr_add(ctx: Ctx, a: list[str]) -> int:
    return say(f"router {ctx.ctl.add_router(a[0], a[1] if len(a) > 1 else None).name} created")


def lr_del(ctx: Ctx, a: list[str]) -> int:
    confirm(ctx)
    ctx.ctl.delete_router(a[0], recursive=ctx.recursive)
    return say(f"{a[0]} deleted")


def lr_show(ctx: Ctx, a: list[str]) -> int:
    return _show(ctx, [ctx.ctl.get_router(a[0])] if a else ctx.ctl.list_routers())


def lr_link(ctx: Ctx, a: list[str]) -> int:
    ctx.ctl.link(a[0], a[1], a[2], a[3] if len(a) > 3 else None)
    return say(f"{a[0]} linked to {a[1]}")


def lrp_add(ctx: Ctx, a: list[str]) -> int:
    port = ctx.ctl.add_router_port(a[0], a[1], a[2], *a[3:5])
    return say(f"router {a[0]} port {port.name} created")


def lrp_del(ctx: Ctx, a: list[str]) -> int:
    ctx.ctl.delete_router_port(a[0], a[1])
    return say(f"router {a[0]} port {a[1]} deleted")


def lrp_show(ctx: Ctx, a: list[str]) -> int:
    c = ctx.ctl
    return _show(ctx, [c.get_router_port(a[0], a[1])] if len(a) > 1 else c.list_router_ports(a[0]))


def lsr_add(ctx: Ctx, a: list[str]) -> int:
    route = ctx.ctl.add_static_route(*a[:5])
    return say(f"router {a[0]} static router {route.name} created")


def lsr_del(ctx: Ctx, a: list[str]) -> int:
    ctx.ctl.delete_static_route(a[0], a[1])
    return say(f"router {a[0]} static router {a[1]} deleted")


def lsr_show(ctx: Ctx, a: list[str]) -> int:
    c = ctx.ctl
    return _show(ctx, [c.get_static_route(a[0], a[1])] if len(a) > 1 else c.list_static_routes(a[0]))


def lnat_add(ctx: Ctx, a: list[str]) -> int:
    nat = ctx.ctl.add_nat(*a[:5])
    return say(f"router {a[0]} NAT {nat.name} created")


def lnat_del(ctx: Ctx, a: list[str]) -> int:
    ctx.ctl.delete_nat(a[0], a[1])
    return say(f"router {a[0]} NAT {a[1]} deleted")


def lnat_show(ctx: Ctx, a: list[str]) -> int:
    c = ctx.ctl
    return _show(ctx, [c.get_nat(a[0], a[1])] if len(a) > 1 else c.list_nats(a[0]))


# ---- mirrors ------------------------------------------------------------------------------------------------

def mirror_add(ctx: Ctx, a: list[str]) -> int:
    m = ctx.ctl.add_mirror(a[0], a[1], a[2], a[3] if len(a) > 3 else "both")
    return say(f"mirror {m.name} created")


def mirror_del(ctx: Ctx, a: list[str]) -> int:
    ctx.ctl.delete_mirror(a[0])
    return say(f"mirror {a[0]} deleted")


def mirror_show(ctx: Ctx, a: list[str]) -> int:
    c = ctx.ctl
    return _show(ctx, [c.get_mirror(a[0])] if a else c.list_mirrors())


# ---- chassis, toolbox, export/import -----------------------------------------------------------------------

def ch_show(ctx: Ctx, a: list[str]) -> int:
    rows = [ctx.ctl.get_chassis(a[0])] if a else ctx.ctl.list_chassis()
    output.show([c for c, _ in rows], ctx.as_json, [{"live": live} for _, live in rows])
    return 0


def ch_del(ctx: Ctx, a: list[str]) -> int:
    for name in ctx.ctl.delete_chassis(a[0]):
        say(f"{name} deleted")
    return 0


def tb_sync_device_map(ctx: Ctx, a: list[str]) -> int:
    ctx.ctl.sync_device_map()
    return say("done")


def _report(problems: list[str]) -> int:
    if problems:
        sys.stdout.write("\n".join(problems) + "\n")
        return 1
    return say("looks good!")


def tb_find_ip_conflict(ctx: Ctx, a: list[str]) -> int:
    return _report(ctx.ctl.find_ip_conflicts())


def tb_find_id_conflict(ctx: Ctx, a: list[str]) -> int:
    return _report(ctx.ctl.find_id_conflicts())


def tb_rebuild_ip_book(ctx: Ctx, a: list[str]) -> int:
    ctx.ctl.rebuild_ip_books()
    return say("done")


def tb_decode_id_string(ctx: Ctx, a: list[str]) -> int:
    from tuplenet.control.maint import Maintenance
    from tuplenet.model import int_to_ip

    for member in Maintenance.decode_id_string(a[0]):
        say(f"{member} => {int_to_ip(member)}")
    return 0


Handler = Callable[[Ctx, list[str]], int]


def _edge(action: str) -> Handler:
    """tpctl edge ACTION, imported on use (cli/edge.py)."""
    def run(ctx: Ctx, a: list[str]) -> int:
        from . import edge

        return edge.COMMANDS[action][3](ctx, a)
    return run


# (group, action) -> (aliases, min args, max args, 0.3 usage sentence, ARGS text, handler)
COMMANDS: dict[tuple[str, str], tuple[tuple[str, ...], int, int, str, str, Handler]] = {
    ("ls", "add"): (("a",), 1, 1, "require a name", "SWITCH", ls_add),
    ("ls", "del"): (("d",), 1, 1, "require a name", "SWITCH", ls_del),
    ("ls", "show"): (("s",), 0, 1, "require at most one name", "[SWITCH]", ls_show),
    ("lsp", "add"): (("a",), 3, 5, "require a switch name, a port name, an IP and optionally a MAC, a peer port",
                     "SWITCH PORT IP [MAC] [PEER]", lsp_add),
    ("lsp", "set-requested"): ((), 2, 3, "require a switch name, a port name and a chassis name (or --clear)",
                               "SWITCH PORT [CHASSIS]", lsp_set_requested),
    ("lsp", "del"): (("d",), 2, 2, "require switch name and a port name", "SWITCH PORT", lsp_del),
    ("lsp", "show"): (("s",), 1, 2, "require at least switch name and optionally a port name", "SWITCH [PORT]",
                      lsp_show),
    ("patchport", "add"): (("a",), 4, 4, "require a switch name, a port name, chassis and peer ovs-bridge name",
                           "SWITCH PORT CHASSIS PEER_BRIDGE", patchport_add),
    ("lr", "add"): (("a",), 1, 2, "require a name,  an optional chassis", "ROUTER [CHASSIS]", lr_add),
    ("lr", "del"): (("d",), 1, 1, "require a name", "ROUTER", lr_del),
    ("lr", "show"): (("s",), 0, 1, "require at most one name", "[ROUTER]", lr_show),
    ("lr", "link"): ((), 3, 4, "require a router, a switch name and a CIDR string of: 10.0.0.1/24",
                     "ROUTER SWITCH CIDR [MAC]", lr_link),
    ("lrp", "add"): (("a",), 3, 5, "require a router name, a port name, an CIDR and optionally a MAC, a peer port",
                     "ROUTER PORT CIDR [MAC] [PEER]", lrp_add),
    ("lrp", "del"): (("d",), 2, 2, "require router name and a port name", "ROUTER PORT", lrp_del),
    ("lrp", "show"): (("s",), 1, 2, "require at least router name and optionally a port name", "ROUTER [PORT]",
                      lrp_show),
    ("lsr", "add"): (("a",), 5, 5, "require router name, static route name, CIDR, next_hop and outport",
                     "ROUTER NAME CIDR NEXT_HOP OUTPORT", lsr_add),
    ("lsr", "del"): (("d",), 2, 2, "require router name and a static route name", "ROUTER NAME", lsr_del),
    ("lsr", "show"): (("s",), 1, 2, "require a router name and a static route name", "ROUTER [NAME]",
                      lsr_show),
    ("lnat", "add"): (("a",), 5, 5, "require router, NAT name, CIDR, TRANSLATE_TYPE and TRANSLATE_IP",
                      "ROUTER NAME CIDR snat|dnat XLATE_IP", lnat_add),
    ("lnat", "del"): (("d",), 2, 2, "require router, NAT name", "ROUTER NAME", lnat_del),
    ("lnat", "show"): (("s",), 1, 2, "require router and optionally NAT name", "ROUTER [NAME]", lnat_show),
    ("mirror", "add"): (("a",), 3, 4, "require a mirror name, SWITCH/PORT, a target and optionally a direction",
                        "NAME SWITCH/PORT local:IFACE|erspan:IP[:SESSION]|geneve:IP[:VNI] [in|out|both]",
                        mirror_add),
    ("mirror", "del"): (("d",), 1, 1, "require a mirror name", "NAME", mirror_del),
    ("mirror", "show"): (("s",), 0, 1, "require at most one mirror name", "[NAME]", mirror_show),
    ("edge", "init"): ((), 5, 7, "require a chassis, a physical bridge, the vip CIDR, the virtual space CIDR, "
                       "the physical gateway IP and optionally the transit CIDR and the central router",
                       "CHASSIS PHY_BRIDGE VIP/LEN VIRT/LEN EXT_GW [INNER/LEN] [CENTRAL]", _edge("init")),
    ("edge", "add"): (("a",), 3, 4, "require a chassis, a physical bridge, the vip CIDR and optionally the "
                      "physical gateway IP", "CHASSIS PHY_BRIDGE VIP/LEN [EXT_GW]", _edge("add")),
    ("edge", "remove"): (("del", "d"), 1, 2, "require the vip and optionally the drain time in seconds",
                         "VIP [DRAIN_SECONDS]", _edge("remove")),
    ("edge", "show"): (("s",), 0, 0, "require no argument", "", _edge("show")),
    ("ch", "del"): (("d",), 1, 1, "require a name", "NAME|IP", ch_del),
    ("ch", "show"): (("s",), 0, 1, "require only one name", "[NAME]", ch_show),
    ("toolbox", "sync-device-map"): ((), 0, 0, "require no argument", "", tb_sync_device_map),
    ("toolbox", "find-ip-conflict"): ((), 0, 0, "require no argument", "", tb_find_ip_conflict),
    ("toolbox", "find-id-conflict"): ((), 0, 0, "require no argument", "", tb_find_id_conflict),
    ("toolbox", "rebuild-ip-book"): ((), 0, 0, "require no argument", "", tb_rebuild_ip_book),
    ("toolbox", "decode-id-string"): ((), 1, 1, "require an id string", "B64", tb_decode_id_string),
    ("export", ""): ((), 0, 1, "require at most one file name", "[FILE]", export_cmd),
    ("graph", ""): ((), 0, 1, "require at most one file name", "[FILE.dot|FILE.png|FILE.svg]", graph_cmd),
    ("import", ""): ((), 0, 1, "require a file name (- for stdin)", "FILE", import_cmd),
}

COMMANDS.update(_LB_COMMANDS)
COMMANDS.update(_ACL_COMMANDS)
