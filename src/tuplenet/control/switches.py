"""Logical switch operations: ls, lsp, patch ports and CNI-style IP allocation."""

from __future__ import annotations

from tuplenet.model import (
    LS,
    LSP,
    PATCH_PORT_IP,
    PATCH_PORT_MAC,
    derive_mac,
    first_free_ip,
    normalize_ip,
    normalize_mac,
    validate_name,
)
from tuplenet.model.ovsnames import check_patch_port

from .base import Core, checked
from .devices import DevicePlans


def _opt_name(value: str | None) -> str | None:
    """Optional peer/chassis reference: empty means none; otherwise it must be a valid name."""
    return checked(validate_name, value) if value and value.strip() else None


class Switches:
    """Logical switches and their ports (incl. patch ports and IPAM)."""

    def __init__(self, core: Core, plans: DevicePlans) -> None:
        self.core, self.plans = core, plans

    def add_switch(self, name: str) -> LS:
        name = checked(validate_name, name)
        return self.core.commit(lambda: self.plans.plan_device_add("LS", name, lambda i: LS(name, i)))

    def delete_switch(self, name: str, recursive: bool = False) -> LS | str:
        """Delete a switch; with `recursive` its ports too. Returns what was deleted."""
        def refuse(_: set[str]) -> str:
            return f'failed to delete {name}: there are remaining ports, consider using "-r"?'

        return self.core.commit(lambda: self.plans.plan_device_delete("LS", name, recursive, refuse))

    def list_switches(self) -> list[LS]:
        return self.core.list_top("LS")

    def get_switch(self, name: str) -> LS:
        return self.core.get("LS", name)

    def add_switch_port(self, switch: str, name: str, ip: str, mac: str | None = None, peer: str | None = None,
                        chassis: str | None = None) -> LSP:
        """Create an lsp; MAC defaults to f2:01:<ip>. Port id (ip & 0xffff) must be unique in the switch."""
        name = checked(validate_name, name)
        ip = checked(normalize_ip, ip)
        mac = checked(normalize_mac, mac) if mac and mac.strip() else derive_mac(ip)
        port = LSP(switch, name, ip, mac, _opt_name(peer), _opt_name(chassis))
        if port.is_patch and port.peer:  # a patch port in disguise: same rules as patchport add
            checked(check_patch_port, port.name, port.peer)
        return self.core.commit(lambda: self.plans.plan_ports_add(
            [port], lambda p: f"switch {switch} port {p.name} exists"))[0]

    def add_patch_port(self, switch: str, name: str, chassis: str, peer_bridge: str) -> LSP:
        """A port bridging the switch to an OVS bridge on one chassis; one per switch (port id 0xffff).

        Names the agent would have to create on OVS are checked here (not br-int, not a tunnel port name...),
        so a bad patch port never reaches etcd and the chassis's agent.
        """
        name = checked(validate_name, name)
        peer_bridge = checked(validate_name, peer_bridge)
        checked(check_patch_port, name, peer_bridge)
        port = LSP(switch, name, PATCH_PORT_IP, PATCH_PORT_MAC, peer_bridge, checked(validate_name, chassis))
        return self.core.commit(lambda: self.plans.plan_ports_add(
            [port], lambda p: f"switch {switch} port {p.name} exists"))[0]

    def delete_switch_port(self, switch: str, name: str) -> LSP | str:
        return self.core.commit(lambda: self.plans.plan_port_delete("lsp", switch, name))

    def list_switch_ports(self, switch: str) -> list[LSP]:
        return self.core.list_children("LS", switch, "lsp")

    def get_switch_port(self, switch: str, name: str) -> LSP:
        self.get_switch(switch)
        return self.core.get("lsp", switch, name)

    def allocate_switch_port(self, switch: str, name: str, subnet: str, gateway: str | None = None,
                             chassis: str | None = None) -> LSP:
        """IPAM (0.3 SaveSwitchPort): first free IP of `subnet` in the switch, derived MAC, one transaction.

        Retried from a fresh read when another writer takes the same address first.
        """
        name = checked(validate_name, name)
        chassis = _opt_name(chassis)
        checked(first_free_ip, subnet, (), gateway)  # validate the subnet before touching etcd

        def assign(port: LSP, used: set[int]) -> LSP:
            ip = checked(first_free_ip, subnet, used, gateway)
            return LSP(switch, name, ip, derive_mac(ip), None, chassis)

        placeholder = LSP(switch, name, "0.0.0.0", "00:00:00:00:00:00", None, chassis)
        return self.core.commit(lambda: self.plans.plan_ports_add(
            [placeholder], lambda p: f"switch {switch} port {p.name} exists", assign))[0]
