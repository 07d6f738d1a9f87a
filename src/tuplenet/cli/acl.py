"""tpctl acl | pg | as: ACLs, port groups and address sets (docs/acl.md).

  tpctl as  add NAME [IP|CIDR...]        as  addr-add|addr-del NAME IP|CIDR...    as  del NAME    as show [NAME]
  tpctl pg  add NAME [SWITCH/PORT...]    pg  port-add|port-del NAME SWITCH/PORT...  pg del NAME   pg show [NAME]
  tpctl acl add ls|pg PARENT NAME in|out PRIORITY allow|allow-related|drop|reject [src=..] [dst=..] [proto=..]
                [sport=..] [dport=..]
  tpctl acl del ls|pg PARENT NAME        acl show ls|pg PARENT [NAME]   (with hits: packets summed over agents)
"""

from __future__ import annotations

from . import output
from .args import key_values
from .context import Ctx, say

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _svc(ctx: Ctx) -> Any:
    from tuplenet.control.acls import Acls

    return Acls(ctx.ctl.core)


def _fields(opts: list[str]) -> dict[str, str]:
    return key_values(opts, "match field")


def as_add(ctx: Ctx, a: list[str]) -> int:
    s = _svc(ctx).add_address_set(a[0], a[1:])
    return say(f"address set {s.name} created ({len(s.addresses)} addresses)")


def as_addr(add: bool):
    def run(ctx: Ctx, a: list[str]) -> int:
        svc = _svc(ctx)
        s = svc.change_address_set(a[0], add=a[1:]) if add else svc.change_address_set(a[0], remove=a[1:])
        return say(f"address set {s.name}: {len(s.addresses)} addresses")
    return run


def as_del(ctx: Ctx, a: list[str]) -> int:
    _svc(ctx).delete_address_set(a[0])
    return say(f"address set {a[0]} deleted")


def as_show(ctx: Ctx, a: list[str]) -> int:
    svc = _svc(ctx)
    output.show([svc.get_address_set(a[0])] if a else svc.list_address_sets(), ctx.as_json)
    return 0


def pg_add(ctx: Ctx, a: list[str]) -> int:
    g = _svc(ctx).add_port_group(a[0], a[1:])
    return say(f"port group {g.name} created ({len(g.ports)} ports)")


def pg_ports(add: bool):
    def run(ctx: Ctx, a: list[str]) -> int:
        svc = _svc(ctx)
        g = svc.change_port_group(a[0], add=a[1:]) if add else svc.change_port_group(a[0], remove=a[1:])
        return say(f"port group {g.name}: {len(g.ports)} ports")
    return run


def pg_del(ctx: Ctx, a: list[str]) -> int:
    _svc(ctx).delete_port_group(a[0])
    return say(f"port group {a[0]} deleted (with its rules)")


def pg_show(ctx: Ctx, a: list[str]) -> int:
    svc = _svc(ctx)
    output.show([svc.get_port_group(a[0])] if a else svc.list_port_groups(), ctx.as_json)
    return 0


def acl_add(ctx: Ctx, a: list[str]) -> int:
    opts = _fields(a[6:])
    fixed = {"direction": a[3], "priority": a[4], "action": a[5]}
    if fixed.keys() & opts.keys():
        from tuplenet.control.errors import InvalidArgument

        raise InvalidArgument(f"{sorted(fixed.keys() & opts.keys())[0]} is an argument of its own, not a KEY=VALUE")
    fields = {**fixed, **opts}
    acl = _svc(ctx).add_acl(a[0], a[1], a[2], fields)
    return say(f"acl {acl.name} created on {a[0]} {acl.parent}")


def acl_del(ctx: Ctx, a: list[str]) -> int:
    _svc(ctx).delete_acl(a[0], a[1], a[2])
    return say(f"acl {a[2]} deleted")


def acl_show(ctx: Ctx, a: list[str]) -> int:
    svc = _svc(ctx)
    rules = [svc.get_acl(a[0], a[1], a[2])] if len(a) > 2 else svc.list_acls(a[0], a[1])
    hits = svc.hits() if rules else {}
    output.show(rules, ctx.as_json, [{"hits": hits.get(r.key, 0)} for r in rules])
    return 0


_RULE = "ls|pg PARENT NAME"
COMMANDS = {
    ("as", "add"): (("a",), 1, 256, "require an address set name and optionally addresses",
                    "NAME [IP|CIDR...]", as_add),
    ("as", "addr-add"): ((), 2, 256, "require an address set name and addresses", "NAME IP|CIDR...",
                         as_addr(True)),
    ("as", "addr-del"): ((), 2, 256, "require an address set name and addresses", "NAME IP|CIDR...",
                         as_addr(False)),
    ("as", "del"): (("d",), 1, 1, "require an address set name", "NAME", as_del),
    ("as", "show"): (("s",), 0, 1, "require at most one address set name", "[NAME]", as_show),
    ("pg", "add"): (("a",), 1, 256, "require a port group name and optionally ports", "NAME [SWITCH/PORT...]",
                    pg_add),
    ("pg", "port-add"): ((), 2, 256, "require a port group name and ports", "NAME SWITCH/PORT...",
                         pg_ports(True)),
    ("pg", "port-del"): ((), 2, 256, "require a port group name and ports", "NAME SWITCH/PORT...",
                         pg_ports(False)),
    ("pg", "del"): (("d",), 1, 1, "require a port group name", "NAME", pg_del),
    ("pg", "show"): (("s",), 0, 1, "require at most one port group name", "[NAME]", pg_show),
    ("acl", "add"): (("a",), 6, 11, "require ls|pg, a switch or port group, a rule name, in|out, a priority, an "
                     "action and optionally KEY=VALUE match fields",
                     f"{_RULE} in|out PRIORITY allow|allow-related|drop|reject [src=IP|CIDR|$SET|@PG] "
                     "[dst=...] [proto=tcp|udp|icmp|N] [sport=N|LO-HI] [dport=N|LO-HI]", acl_add),
    ("acl", "del"): (("d",), 3, 3, "require ls|pg, a switch or port group and a rule name", _RULE, acl_del),
    ("acl", "show"): (("s",), 2, 3, "require ls|pg, a switch or port group and optionally a rule name",
                      "ls|pg PARENT [NAME]", acl_show),
}
