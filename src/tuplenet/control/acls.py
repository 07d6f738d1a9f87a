"""ACLs, address sets and port groups (docs/acl.md): validate, then one guarded transaction.

A rule is created only while its switch or port group exists (the parent's revision is compared) and its
key is free. Deleting a port group deletes its rules with it; deleting an address set or port group that
rules still reference is allowed (such rules match nothing until it is back), as in OVN. Hit counters come
from the agents' `communicate/acl_hits/<chassis>` keys (agent/aclhits.py), summed here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from tuplenet.model import ModelError, decode, entity_key, validate_name
from tuplenet.model.acl import ACL, AddressSet, PortGroup, make_acl, parse_net, parse_port_member
from tuplenet.model.entities import ROOT
from tuplenet.store import Compare, Op

from .base import Core, Plan, checked
from .errors import AlreadyExists, ControlError, InvalidArgument, NotFound

HITS_PREFIX = "communicate/acl_hits/"
PARENTS = {"ls": ("LS", "acl"), "pg": ("port_group", "pg_acl")}
MATCH_KEYS = ("src", "dst", "proto", "sport", "dport")


def parent_kind(text: str) -> tuple[str, str]:
    """`ls` or `pg` -> (parent entity kind, rule kind)."""
    try:
        return PARENTS[text]
    except KeyError:
        raise InvalidArgument(f"rules live on a switch (ls) or a port group (pg), not {text!r}") from None


def _missing(kind: str, ident: tuple[str, ...]) -> NotFound:
    what = {"address_set": "address set", "port_group": "port group", "acl": "acl", "pg_acl": "acl",
            "LS": "switch", "lsp": "switch port"}[kind]
    return NotFound(f"unable to get {what} {'/'.join(ident)}: unable to read key /{entity_key(kind, ident)}: "
                    "key not found")


class Acls:
    """Rules, address sets and port groups."""

    def __init__(self, core: Core) -> None:
        self.core = core

    # ---- generic ---------------------------------------------------------------------------------------

    def _create(self, obj: Any, guards: Iterable[tuple[str, str, tuple[str, ...]]] = ()) -> Any:
        """Put `obj` if its key is free and every (what, kind, ident) guard exists."""
        key = obj.key
        guards = list(guards)

        def plan() -> Plan:
            resp, _ = self.core.read(Op.get(key), *(Op.get(entity_key(k, i)) for _, k, i in guards))
            if resp[0] is not None:
                raise AlreadyExists(f"{key[len(ROOT):]} exists")
            compares = [Compare.missing(key)]
            for kv, (_, k, i) in zip(resp[1:], guards, strict=True):
                if kv is None:
                    raise _missing(k, i)
                compares.append(Compare.mod_revision(kv.key, "=", kv.mod_revision))
            return Plan(compares, [Op.put(key, obj.to_value())], obj)

        return self.core.commit(plan)

    def _delete(self, kind: str, ident: tuple[str, ...], children: str | None = None) -> Any:
        key = entity_key(kind, ident)

        def plan() -> Plan:
            kv = self.core.store.get(key)
            if kv is None:
                raise _missing(kind, ident)
            try:
                result: Any = decode(kind, ident, kv.value)
            except ModelError:
                result = ident[-1]  # a bad record can still be deleted
            ops = [Op.delete(key)] + ([Op.delete_prefix(children)] if children else [])
            return Plan([Compare.mod_revision(key, "=", kv.mod_revision)], ops, result)

        return self.core.commit(plan)

    def _change(self, kind: str, name: str, edit) -> Any:
        """Read-modify-write of one record under a revision compare."""
        key = entity_key(kind, (name,))

        def plan() -> Plan:
            kv = self.core.store.get(key)
            if kv is None:
                raise _missing(kind, (name,))
            new = edit(self.core.entity_or_raise(kind, (name,), kv))
            return Plan([Compare.mod_revision(key, "=", kv.mod_revision)], [Op.put(key, new.to_value())], new)

        return self.core.commit(plan)

    def _get(self, kind: str, ident: tuple[str, ...]) -> Any:
        kv = self.core.store.get(entity_key(kind, ident))
        if kv is None:
            raise _missing(kind, ident)
        try:
            return decode(kind, ident, kv.value)
        except ModelError as exc:
            raise ControlError(f"bad record in etcd: {exc}") from None

    # ---- address sets ----------------------------------------------------------------------------------

    def add_address_set(self, name: str, addresses: Iterable[str] = ()) -> AddressSet:
        name = checked(validate_name, name)
        nets = tuple(sorted({checked(parse_net, a) for a in addresses}))
        return self._create(AddressSet(name, nets))

    def change_address_set(self, name: str, add: Iterable[str] = (), remove: Iterable[str] = ()) -> AddressSet:
        plus = {checked(parse_net, a) for a in add}
        minus = {checked(parse_net, a) for a in remove}

        def edit(s: AddressSet) -> AddressSet:
            absent = minus - set(s.addresses)
            if absent:
                raise NotFound(f"address set {name} has no {' '.join(sorted(c.text() for c in absent))}")
            return AddressSet(s.name, tuple(sorted((set(s.addresses) | plus) - minus)), extra=s.extra)

        return self._change("address_set", name, edit)

    def delete_address_set(self, name: str) -> Any:
        return self._delete("address_set", (name,))

    def list_address_sets(self) -> list[AddressSet]:
        return self.core.list_top("address_set")

    def get_address_set(self, name: str) -> AddressSet:
        return self._get("address_set", (name,))

    # ---- port groups -----------------------------------------------------------------------------------

    def add_port_group(self, name: str, ports: Iterable[str] = ()) -> PortGroup:
        name = checked(validate_name, name)
        members = tuple(sorted({checked(parse_port_member, p) for p in ports}))
        return self._create(PortGroup(name, members), [("port", "lsp", m) for m in members])

    def change_port_group(self, name: str, add: Iterable[str] = (), remove: Iterable[str] = ()) -> PortGroup:
        plus = {checked(parse_port_member, p) for p in add}
        minus = {checked(parse_port_member, p) for p in remove}
        if plus:
            resp, _ = self.core.read(*(Op.get(entity_key("lsp", m)) for m in sorted(plus)))
            for kv, m in zip(resp, sorted(plus), strict=True):
                if kv is None:
                    raise NotFound(f"switch port {m[1]} of switch {m[0]} does not exist")

        def edit(g: PortGroup) -> PortGroup:
            absent = minus - set(g.ports)
            if absent:
                raise NotFound(f"port group {name} has no {' '.join(f'{a}/{b}' for a, b in sorted(absent))}")
            return PortGroup(g.name, tuple(sorted((set(g.ports) | plus) - minus)), extra=g.extra)

        return self._change("port_group", name, edit)

    def delete_port_group(self, name: str) -> Any:
        """The group and its rules."""
        return self._delete("port_group", (name,), f"{ROOT}port_group/{name}/")

    def list_port_groups(self) -> list[PortGroup]:
        return self.core.list_top("port_group")

    def get_port_group(self, name: str) -> PortGroup:
        return self._get("port_group", (name,))

    # ---- rules -----------------------------------------------------------------------------------------

    def add_acl(self, on: str, parent: str, name: str, fields: dict[str, str]) -> ACL:
        """Rule `name` on switch (`on`="ls") or port group ("pg") `parent`; `fields` are the record's
        (direction, priority, action, src, dst, proto, sport, dport)."""
        pkind, kind = parent_kind(on)
        parent, name = checked(validate_name, parent), checked(validate_name, name)
        unknown = set(fields) - {"direction", "priority", "action", *MATCH_KEYS}
        if unknown:
            raise InvalidArgument(f"unknown rule field {sorted(unknown)[0]!r} (use {', '.join(MATCH_KEYS)})")
        acl = checked(make_acl, parent, name, fields, kind == "pg_acl")
        return self._create(acl, [("parent", pkind, (parent,))])

    def delete_acl(self, on: str, parent: str, name: str) -> Any:
        return self._delete(parent_kind(on)[1], (parent, name))

    def list_acls(self, on: str, parent: str) -> list[ACL]:
        pkind, kind = parent_kind(on)
        return self.core.list_children(pkind, parent, "acl") if pkind == "LS" else self._pg_rules(parent)

    def _pg_rules(self, pg: str) -> list[ACL]:
        (pkv, kvs), _ = self.core.read(Op.get(entity_key("port_group", (pg,))),
                                       Op.get_prefix(f"{ROOT}port_group/{pg}/acl/"))
        if pkv is None:
            raise _missing("port_group", (pg,))
        return self.core.decode_all(kvs, "pg_acl")

    def get_acl(self, on: str, parent: str, name: str) -> ACL:
        return self._get(parent_kind(on)[1], (parent, name))

    def hits(self) -> dict[str, int]:
        """Packets per rule key (`entity_view/...`), summed over every agent's last report."""
        kvs, _ = self.core.store.get_prefix(HITS_PREFIX)
        total: dict[str, int] = {}
        for kv in kvs:
            try:
                report = json.loads(kv.value)
            except ValueError:
                continue
            if not isinstance(report, dict):
                continue
            for k, v in report.items():
                if isinstance(k, str) and isinstance(v, int) and v >= 0:
                    total[k] = total.get(k, 0) + v
        return total


__all__ = ["HITS_PREFIX", "Acls", "parent_kind"]
