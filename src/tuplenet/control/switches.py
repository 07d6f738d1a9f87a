"""Logical switch operations: ls, lsp, patch ports and CNI-style IP allocation."""

from __future__ import annotations

from tuplenet.model import (
    LS,
    LSP,
    PATCH_PORT_IP,
    PATCH_PORT_MAC,
    ModelError,
    derive_mac,
    entity_key,
    first_free_ip,
    normalize_ip,
    normalize_mac,
    validate_name,
)
from tuplenet.model.ovsnames import check_patch_port
from tuplenet.records import replace
from tuplenet.store import Compare, Op

from .base import Core, Plan, checked, not_found
from .devices import DevicePlans
from .errors import InvalidArgument


def _opt_name(value: str | None) -> str | None:
    """Optional peer/chassis reference: empty means none; otherwise it must be a valid name."""
    return checked(validate_name, value) if value and value.strip() else None


def _chassis_name(value: str) -> str:
    """A requested chassis, by validate_name's rules; the message names the argument (it has no position)."""
    try:
        return validate_name(value)
    except ModelError as exc:
        raise InvalidArgument(f"invalid requested chassis {value!r}: {exc}") from None


def _opt_requested(value: str | None) -> str | None:
    """At creation, as the other optional references: empty means not requested anywhere."""
    return _chassis_name(value) if value and value.strip() else None


def _check_requestable(port: LSP) -> LSP:
    """A requested chassis only means something for a VM port: the agents bind (and peers tunnel to) those
    alone, so on a patch or router-facing port it would be a silent no-op; refuse it instead."""
    if port.requested_chassis and port.is_patch:
        raise InvalidArgument(f"a requested chassis is for VM ports: {port.name} is a patch port")
    if port.requested_chassis and port.peer:
        raise InvalidArgument(f"a requested chassis is for VM ports: {port.name} faces router port {port.peer}")
    return port


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
                        chassis: str | None = None, requested_chassis: str | None = None) -> LSP:
        """Create an lsp; MAC defaults to f2:01:<ip>. Port id (ip & 0xffff) must be unique in the switch.

        `requested_chassis` (a CMS that knows the host sets it): peers reach the port there before any claim.
        """
        name = checked(validate_name, name)
        ip = checked(normalize_ip, ip)
        mac = checked(normalize_mac, mac) if mac and mac.strip() else derive_mac(ip)
        requested = _opt_requested(requested_chassis)
        port = LSP(switch, name, ip, mac, _opt_name(peer), _opt_name(chassis), requested)
        if port.is_patch and port.peer:  # a patch port in disguise: same rules as patchport add
            checked(check_patch_port, port.name, port.peer)
        _check_requestable(port)
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
                             chassis: str | None = None, requested_chassis: str | None = None) -> LSP:
        """IPAM (0.3 SaveSwitchPort): first free IP of `subnet` in the switch, derived MAC, one transaction.

        Retried from a fresh read when another writer takes the same address first.
        """
        name = checked(validate_name, name)
        chassis = _opt_name(chassis)
        requested = _opt_requested(requested_chassis)
        checked(first_free_ip, subnet, (), gateway)  # validate the subnet before touching etcd

        def assign(port: LSP, used: set[int]) -> LSP:
            ip = checked(first_free_ip, subnet, used, gateway)
            return LSP(switch, name, ip, derive_mac(ip), None, chassis, requested)

        placeholder = LSP(switch, name, "0.0.0.0", "00:00:00:00:00:00", None, chassis, requested)
        return self.core.commit(lambda: self.plans.plan_ports_add(
            [placeholder], lambda p: f"switch {switch} port {p.name} exists", assign))[0]

    def set_requested_chassis(self, switch: str, name: str, chassis: str | None) -> LSP:
        """Set the chassis an existing VM port is requested on, or clear it with None: how a port moves
        between live chassis (the agents never take a port from a live holder otherwise). Only that field
        changes; `chassis` stays as the agents wrote it, the new host's claim rewrites it. An empty name is
        refused rather than read as "clear", so an unset variable in a script never unpins a port."""
        switch, name = checked(validate_name, switch), checked(validate_name, name)
        wanted = None if chassis is None else _chassis_name(chassis)
        return self.core.commit(lambda: self._plan_requested(switch, name, wanted))

    def _plan_requested(self, switch: str, name: str, wanted: str | None) -> Plan:
        """Rewrite the port's record with `wanted`, guarded by the revision read (an agent's claim or another
        writer in between re-plans from the new record); nothing is written when it already says so."""
        key = entity_key("lsp", (switch, name))
        (ls_kv, kv), _ = self.core.read(Op.get(entity_key("LS", (switch,))), Op.get(key))
        if ls_kv is None:
            raise not_found("LS", (switch,))
        port = self.core.entity_or_raise("lsp", (switch, name), kv)
        new = _check_requestable(replace(port, requested_chassis=wanted))
        if new.requested_chassis == port.requested_chassis:
            return Plan([], [], port)
        return Plan([Compare.mod_revision(key, "=", kv.mod_revision)], [Op.put(key, new.to_value())], new)
