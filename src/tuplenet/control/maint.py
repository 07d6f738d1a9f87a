"""Chassis operations and the toolbox: id/port-id bookkeeping repair and conflict finders."""

from __future__ import annotations

from collections import defaultdict

from tuplenet.model import (
    DEVICE_IDS_KEY,
    IP_BOOK_ROOT,
    LIVENESS_PREFIX,
    ROOT,
    Chassis,
    entity_key,
    is_ip,
    normalize_ip,
    parse_key,
    port_id,
)
from tuplenet.model.roaring import decode_bitmap, encode_bitmap
from tuplenet.store import Compare, Op

from .base import PORT_KIND, Core, Plan, checked, not_found
from .errors import Conflict, NotFound

_BOOKS_PER_TXN = 60  # one compare + one op each, under etcd's 128 per txn (plus our version compare)


class Maintenance:
    """Chassis records and the toolbox (bookkeeping repair, conflict finders)."""

    def __init__(self, core: Core) -> None:
        self.core = core

    # ---- chassis -----------------------------------------------------------------------------------------

    def list_chassis(self) -> list[tuple[Chassis, bool]]:
        """Every registered chassis with whether its agent currently holds a liveness key."""
        (kvs, live), _ = self.core.read(Op.get_prefix(f"{ROOT}chassis/"), Op.get_prefix(LIVENESS_PREFIX))
        alive = {kv.key[len(LIVENESS_PREFIX):] for kv in live}
        return [(c, c.name in alive) for c in self.core.decode_all(kvs, "chassis")]

    def get_chassis(self, name: str) -> tuple[Chassis, bool]:
        key = entity_key("chassis", (name,))
        (kv, live), _ = self.core.read(Op.get(key), Op.get(LIVENESS_PREFIX + name))
        return self.core.entity_or_raise("chassis", (name,), kv), live is not None

    def delete_chassis(self, name_or_ip: str) -> list[str]:
        """Delete a chassis by name, or every chassis registered with that IP (0.3 semantics); names deleted.

        An argument that is an IP nobody uses falls back to a chassis of that name.
        """
        def plan() -> Plan:
            kvs, _ = self.core.store.get_prefix(f"{ROOT}chassis/")
            victims = []
            if is_ip(name_or_ip.strip()):
                ip = normalize_ip(name_or_ip)
                victims = [kv for kv in kvs if (c := self.core.decode_kv(kv, "chassis")) and c.ip == ip]
            if not victims:
                victims = [kv for kv in kvs if kv.key == entity_key("chassis", (name_or_ip,))]
            if not victims:
                if is_ip(name_or_ip.strip()):
                    raise NotFound(f"failed to get chassis by ip {name_or_ip}")
                raise not_found("chassis", (name_or_ip,))
            return Plan([Compare.mod_revision(kv.key, "=", kv.mod_revision) for kv in victims],
                        [Op.delete(kv.key) for kv in victims],
                        [parse_key(kv.key)[1][0] for kv in victims])  # type: ignore[index]

        return self.core.commit(plan)

    # ---- toolbox -----------------------------------------------------------------------------------------

    def sync_device_map(self) -> set[int]:
        """Rebuild `globals/device_ids` from the ids of all LS/LR (0.3 toolbox sync-device-map)."""
        def plan() -> Plan:
            kv = self.core.store.get(DEVICE_IDS_KEY)
            ids = set(self.core.scan_device_ids().values()) & set(range(1, 65536))
            guard = Compare.mod_revision(DEVICE_IDS_KEY, "=", kv.mod_revision) if kv else Compare.missing(DEVICE_IDS_KEY)
            ops = [Op.put(DEVICE_IDS_KEY, encode_bitmap(ids))] if ids else ([Op.delete(DEVICE_IDS_KEY)] if kv else [])
            return Plan([guard], ops, ids)

        return self.core.commit(plan)

    def find_ip_conflicts(self) -> list[str]:
        """Ports of one LS/LR with the same IP (0.3 wording), then ports sharing a port id."""
        msgs: list[str] = []
        for kind in ("LR", "LS"):
            kvs, _ = self.core.store.get_prefix(f"{ROOT}{kind}/")
            by_dev: dict[str, list] = defaultdict(list)
            for port in self.core.decode_all(kvs, PORT_KIND[kind]):
                by_dev[port.ident[0]].append(port)
            for dev in sorted(by_dev):
                ips: dict[str, str] = {}
                pids: dict[int, tuple[str, str]] = {}
                for port in by_dev[dev]:
                    if port.ip in ips:
                        msgs.append(f"in {dev}, {ips[port.ip]} use the same IP as {port.name}: {port.ip}")
                        continue
                    ips[port.ip] = port.name
                    pid = port_id(port.ip)
                    if pid in pids:
                        other, other_ip = pids[pid]
                        msgs.append(f"in {dev}, {other} ({other_ip}) and {port.name} ({port.ip}) share "
                                    f"port id {pid}")
                    else:
                        pids[pid] = (port.name, port.ip)
        return msgs

    def find_id_conflicts(self) -> list[str]:
        """LS/LR sharing a datapath id (0.3 wording: '<name> has the same id of <other>: <id>')."""
        seen: dict[int, str] = {}
        msgs = []
        for dev in self.core.list_top("LR") + self.core.list_top("LS"):
            if dev.id in seen:
                msgs.append(f"{dev.name} has the same id of {seen[dev.id]}: {dev.id}")
            else:
                seen[dev.id] = dev.name
        return msgs

    def rebuild_ip_books(self) -> int:
        """Recompute every `ip_book/LS|LR/<name>` from the ports, CAS per book; drop books of gone devices.

        Returns how many books were written or removed. Each book is guarded separately, so a concurrent
        port change makes that batch re-run from fresh data.
        """
        for _ in range(self.core.attempts):
            book_kvs, _ = self.core.store.get_prefix(IP_BOOK_ROOT)  # books before ports: see PortBook
            want: dict[str, set[int]] = {}
            for kind in ("LS", "LR"):
                kvs, _ = self.core.store.get_prefix(f"{ROOT}{kind}/")
                for kv in kvs:
                    parsed = parse_key(kv.key)
                    if parsed and parsed[0] == kind:
                        want.setdefault(f"{IP_BOOK_ROOT}{kind}/{parsed[1][0]}", set())
                    elif parsed and parsed[0] == PORT_KIND[kind]:
                        port = self.core.decode_kv(kv)
                        if port is not None:
                            want.setdefault(f"{IP_BOOK_ROOT}{kind}/{parsed[1][0]}", set()).add(port_id(port.ip))
            have = {kv.key: kv for kv in book_kvs}
            changes: list[tuple[Compare, Op]] = []
            for key in sorted(set(want) | set(have)):
                ids, kv = want.get(key, set()), have.get(key)
                guard = Compare.mod_revision(key, "=", kv.mod_revision) if kv else Compare.missing(key)
                if ids and (kv is None or _bitmap_or_none(kv.value) != ids):
                    changes.append((guard, Op.put(key, encode_bitmap(ids))))
                elif not ids and kv is not None:
                    changes.append((guard, Op.delete(key)))
            retry = False
            for i in range(0, len(changes), _BOOKS_PER_TXN):
                chunk = changes[i:i + _BOOKS_PER_TXN]
                if not self.core.store.txn([c for c, _ in chunk], [o for _, o in chunk]).succeeded:
                    retry = True
                    break
            if not retry:
                return len(changes)
        raise Conflict("gave up rebuilding IP books: ports kept changing concurrently")

    @staticmethod
    def decode_id_string(b64: str) -> list[int]:
        """Members of a 0.3 bookkeeping bitmap (device ids or port ids), sorted."""
        return sorted(checked(decode_bitmap, b64))


def _bitmap_or_none(value: str) -> set[int] | None:
    try:
        return decode_bitmap(value)
    except ValueError:
        return None
