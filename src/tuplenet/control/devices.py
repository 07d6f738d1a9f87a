"""Plans shared by switches and routers: device create/delete with id allocation, port create/delete.

Each returns a Plan for ControllerBase.commit; all checks read one snapshot and every write is guarded by a
compare, so two writers can never both pass the same check (e.g. two ports taking one port id).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tuplenet.model import (
    CHILD_KINDS,
    DEVICE_IDS_KEY,
    Entity,
    children_prefix,
    entity_key,
    ip_book_key,
    parse_key,
    port_id,
)
from tuplenet.store import Compare, Op

from .base import NOUN, PORT_KIND, Core, Plan, not_found, record_id
from .errors import AlreadyExists, Conflict, NotEmpty

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class DevicePlans:
    """Plans (read, check, one guarded transaction) for LS/LR and their children, shared by switches and
    routers; callers commit them through the core."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def plan_device_add(self, kind: str, name: str, make: Callable[[int], Entity]) -> Plan:
        key = entity_key(kind, (name,))
        (kv, dev_kv), _ = self.core.read(Op.get(key), Op.get(DEVICE_IDS_KEY))
        if kv is not None:
            raise AlreadyExists(f"unable to save {NOUN[kind]} {name}: /{key} already exists")
        book = self.core.device_book(dev_kv)
        entity = make(book.allocate())
        return Plan([Compare.missing(key), book.guard()],
                    [Op.put(key, entity.to_value()), *book.ops(book.ids | {entity.id})], entity)  # type: ignore[union-attr]

    def plan_device_delete(self, kind: str, name: str, recursive: bool,
                           refuse: Callable[[set[str]], str | None]) -> Plan:
        """Delete an LS/LR; `refuse(child kinds present)` gives the error for a non-recursive delete."""
        key = entity_key(kind, (name,))
        book_key = ip_book_key(kind, name)
        (kv, children, book_kv, dev_kv), _ = self.core.read(
            Op.get(key), Op.get_prefix(children_prefix(kind, name)), Op.get(book_key), Op.get(DEVICE_IDS_KEY))
        if kv is None:
            raise not_found(kind, (name,))
        present = {p[0] for c in children if (p := parse_key(c.key)) and p[0] in CHILD_KINDS[kind]}
        if present and not recursive and (msg := refuse(present)):
            raise NotEmpty(msg)
        compares = [Compare.mod_revision(key, "=", kv.mod_revision),
                    Compare.mod_revision(book_key, "=", book_kv.mod_revision) if book_kv
                    else Compare.missing(book_key)]
        # Children are deleted even without -r: the check above found none, and if one raced in since,
        # removing it beats leaving an orphan no tool can reach (the book compare catches racing ports).
        ops = [Op.delete(key), Op.delete_prefix(children_prefix(kind, name)), Op.delete(book_key)]
        dev_id = record_id(kv.value)
        if dev_kv is not None and dev_id is not None:
            book = self.core.device_book(dev_kv)
            compares.append(book.guard())
            ops += book.ops(book.ids - {dev_id})
        return Plan(compares, ops, self.core.decode_kv(kv, kind) or name)

    def plan_ports_add(self, ports: Sequence[Any], exists_msg: Callable[[Any], str],
                       assign: Callable[[Any, set[int]], Any] | None = None) -> Plan:
        """Create ports (lsp/lrp, possibly under different parents) in one transaction.

        `assign(port, used port ids)` may pick the port's address from the same snapshot (IPAM).
        """
        parents = list(dict.fromkeys((p.parent_kind, p.ident[0]) for p in ports))
        reads: list[Op] = [Op.get(entity_key(p.kind, p.ident)) for p in ports]
        for pk, pname in parents:
            reads += [Op.get(entity_key(pk, (pname,))), Op.get(ip_book_key(pk, pname)),
                      Op.get_prefix(children_prefix(pk, pname, PORT_KIND[pk]))]
        responses, _ = self.core.read(*reads)
        parent_reads = {parent: responses[len(ports) + 3 * i: len(ports) + 3 * i + 3]
                        for i, parent in enumerate(parents)}
        for port in ports:  # same check order as 0.3: parent, then name, then port id
            if parent_reads[(port.parent_kind, port.ident[0])][0] is None:
                raise not_found(port.parent_kind, (port.ident[0],))
        for port, kv in zip(ports, responses, strict=False):
            if kv is not None:
                raise AlreadyExists(exists_msg(port))
        compares: list[Compare] = []
        ops: list[Op] = []
        out = list(ports)
        for (pk, pname), (_, book_kv, port_kvs) in parent_reads.items():
            book = self.core.port_book(pk, pname, book_kv, port_kvs)
            ids = set(book.used)
            for i, port in enumerate(out):
                if (port.parent_kind, port.ident[0]) != (pk, pname):
                    continue
                if assign is not None:
                    port = out[i] = assign(port, ids)
                pid = port_id(port.ip)
                if pid in ids:
                    raise Conflict(f"lower 16 bits of {port.ip} conflict with other IP")
                ids.add(pid)
                compares.append(Compare.missing(port.key))
                ops.append(Op.put(port.key, port.to_value()))
            compares += [Compare.exists(entity_key(pk, (pname,))), book.guard()]
            ops += book.ops(ids)
        return Plan(compares, ops, out)

    def plan_port_delete(self, kind: str, parent: str, name: str) -> Plan:
        parent_kind = "LS" if kind == "lsp" else "LR"
        key = entity_key(kind, (parent, name))
        (parent_kv, kv, book_kv, port_kvs), _ = self.core.read(
            Op.get(entity_key(parent_kind, (parent,))), Op.get(key), Op.get(ip_book_key(parent_kind, parent)),
            Op.get_prefix(children_prefix(parent_kind, parent, kind)))
        if parent_kv is None:
            raise not_found(parent_kind, (parent,))
        if kv is None:
            raise not_found(kind, (parent, name))
        book = self.core.port_book(parent_kind, parent, book_kv, [p for p in port_kvs if p.key != key])
        return Plan([Compare.mod_revision(key, "=", kv.mod_revision), book.guard()],
                    [Op.delete(key), *book.ops(book.used)], self.core.decode_kv(kv, kind) or name)

    def plan_child_add(self, child: Any, exists_msg: str) -> Plan:
        """Create a child that holds no bookkeeping (static route, NAT rule) under an existing router."""
        parent_key = entity_key(child.parent_kind, (child.ident[0],))
        (parent_kv, kv), _ = self.core.read(Op.get(parent_key), Op.get(child.key))
        if parent_kv is None:
            raise not_found(child.parent_kind, (child.ident[0],))
        if kv is not None:
            raise AlreadyExists(exists_msg)
        return Plan([Compare.exists(parent_key), Compare.missing(child.key)],
                    [Op.put(child.key, child.to_value())], child)

    def plan_child_delete(self, kind: str, parent: str, name: str) -> Plan:
        parent_key = entity_key("LR", (parent,))
        key = entity_key(kind, (parent, name))
        (parent_kv, kv), _ = self.core.read(Op.get(parent_key), Op.get(key))
        if parent_kv is None:
            raise not_found("LR", (parent,))
        if kv is None:
            raise not_found(kind, (parent, name))
        return Plan([Compare.mod_revision(key, "=", kv.mod_revision)], [Op.delete(key)],
                    self.core.decode_kv(kv, kind) or name)
