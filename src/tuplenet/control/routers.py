"""Logical router operations: lr (incl. link to a switch), lrp, static routes (lsr) and NAT rules (lnat)."""

from __future__ import annotations

from tuplenet.model import (
    LNAT,
    LR,
    LRP,
    LSP,
    LSR,
    derive_mac,
    normalize_ip,
    normalize_mac,
    parse_cidr,
    validate_name,
)

from .base import Core, checked
from .devices import DevicePlans
from .errors import InvalidArgument
from .switches import _opt_name


def _refuse_router(name: str, present: set[str]) -> str:
    if present & {"lrp", "lsr"}:
        return f'failed to delete {name}: there are remaining ports or static routes, consider using "-r"?'
    return f'failed to delete {name}: there are remaining NAT rules, consider using "-r"?'


class Routers:
    """Logical routers, their ports, static routes and NAT rules, and router-switch links."""

    def __init__(self, core: Core, plans: DevicePlans) -> None:
        self.core, self.plans = core, plans

    def add_router(self, name: str, chassis: str | None = None) -> LR:
        """Create a router; with `chassis` it is pinned (centralised) there."""
        name = checked(validate_name, name)
        chassis = _opt_name(chassis)
        return self.core.commit(lambda: self.plans.plan_device_add("LR", name, lambda i: LR(name, i, chassis)))

    def delete_router(self, name: str, recursive: bool = False) -> LR | str:
        """Delete a router; without `recursive` it must have no ports, static routes or NAT rules.

        0.3 ignored NAT rules here and left orphan lnat keys behind (§7.12); they count now.
        """
        return self.core.commit(lambda: self.plans.plan_device_delete("LR", name, recursive,
                                                           lambda present: _refuse_router(name, present)))

    def list_routers(self) -> list[LR]:
        return self.core.list_top("LR")

    def get_router(self, name: str) -> LR:
        return self.core.get("LR", name)

    def link(self, router: str, switch: str, cidr: str, mac: str | None = None) -> tuple[LSP, LRP]:
        """Connect router and switch: lsp `<switch>_to_<router>` + lrp `<router>_to_<switch>`, peered.

        Both ports take the CIDR's address and one MAC (derived unless given; 0.3 could not take one).
        """
        ip, prefix = checked(parse_cidr, cidr)
        mac = checked(normalize_mac, mac) if mac and mac.strip() else derive_mac(ip)
        sp_name, rp_name = f"{switch}_to_{router}", f"{router}_to_{switch}"
        checked(validate_name, sp_name)
        checked(validate_name, rp_name)
        sp = LSP(switch, sp_name, ip, mac, rp_name)
        rp = LRP(router, rp_name, ip, prefix, mac, sp_name)

        def exists(p: LSP | LRP) -> str:
            return f"switch port {p.name} exists" if p.kind == "lsp" else f"router port {p.name} exists"

        sp_out, rp_out = self.core.commit(lambda: self.plans.plan_ports_add([sp, rp], exists))
        return sp_out, rp_out

    def add_router_port(self, router: str, name: str, cidr: str, mac: str | None = None,
                        peer: str | None = None) -> LRP:
        name = checked(validate_name, name)
        ip, prefix = checked(parse_cidr, cidr)
        mac = checked(normalize_mac, mac) if mac and mac.strip() else derive_mac(ip)
        port = LRP(router, name, ip, prefix, mac, _opt_name(peer))
        return self.core.commit(lambda: self.plans.plan_ports_add([port], lambda p: f"router port {p.name} exists"))[0]

    def delete_router_port(self, router: str, name: str) -> LRP | str:
        return self.core.commit(lambda: self.plans.plan_port_delete("lrp", router, name))

    def list_router_ports(self, router: str) -> list[LRP]:
        return self.core.list_children("LR", router, "lrp")

    def get_router_port(self, router: str, name: str) -> LRP:
        self.get_router(router)
        return self.core.get("lrp", router, name)

    def add_static_route(self, router: str, name: str, cidr: str, next_hop: str, outport: str) -> LSR:
        """Static route; like 0.3 the outport is not checked against existing router ports."""
        name = checked(validate_name, name)
        ip, prefix = checked(parse_cidr, cidr)
        try:
            next_hop = normalize_ip(next_hop)
        except ValueError:
            raise InvalidArgument(f"invalid next_hop: {next_hop}") from None
        route = LSR(router, name, ip, prefix, next_hop, checked(validate_name, outport))
        return self.core.commit(lambda: self.plans.plan_child_add(route, f"router {router} static route {name} exists"))

    def delete_static_route(self, router: str, name: str) -> LSR | str:
        return self.core.commit(lambda: self.plans.plan_child_delete("lsr", router, name))

    def list_static_routes(self, router: str) -> list[LSR]:
        return self.core.list_children("LR", router, "lsr")

    def get_static_route(self, router: str, name: str) -> LSR:
        self.get_router(router)
        return self.core.get("lsr", router, name)

    def add_nat(self, router: str, name: str, cidr: str, xlate_type: str, xlate_ip: str) -> LNAT:
        name = checked(validate_name, name)
        ip, prefix = checked(parse_cidr, cidr)
        xlate_type = (xlate_type or "").strip().lower()
        if xlate_type not in ("snat", "dnat"):
            raise InvalidArgument(f"invalid translate type, must be snat/dnat: {xlate_type}")
        try:
            xlate_ip = normalize_ip(xlate_ip.lower())
        except (ValueError, AttributeError):
            raise InvalidArgument(f"invalid translate IP: {xlate_ip}") from None
        nat = LNAT(router, name, ip, prefix, xlate_type, xlate_ip)
        return self.core.commit(lambda: self.plans.plan_child_add(nat, f"router NAT {name} exists"))

    def delete_nat(self, router: str, name: str) -> LNAT | str:
        return self.core.commit(lambda: self.plans.plan_child_delete("lnat", router, name))

    def list_nats(self, router: str) -> list[LNAT]:
        return self.core.list_children("LR", router, "lnat")

    def get_nat(self, router: str, name: str) -> LNAT:
        self.get_router(router)
        return self.core.get("lnat", router, name)
