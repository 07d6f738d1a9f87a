"""Edges: 0.3's edge-operate as one transactional operation per step (reference §4.1, §7.16).

An edge *road* joins the virtual network to a physical one through a router pinned to an edge chassis:

    physical bridge ==patch== tp_LS_outside<n> --(vip)-- tp_LR_edge<n> --(inner)-- tp_LS_m<n> --(central ip)-- central LR

with three static routes: the edge's default route to the physical gateway, the edge's route for the whole
virtual space back to the central router, and the central router's default route to the edge. Several
roads give the central router equal-cost default routes, which every compute host spreads over the edges
(agent/pipeline/ecmp.py) with BFD deciding which edges are alive.

`init` and `add` write a whole road in one etcd transaction (nothing or everything). A new edge gets ECMP
traffic only once BFD to it is up - the data plane's own check, no fixed sleep. `remove` drains first: it
deletes the central route to the edge (computes move that edge's flows to the others), waits `drain`
seconds, then deletes the rest of the road in one transaction; re-running it finishes a half-done removal.
Roads are recognised by structure (a pinned router between a switch with a patch port and a switch it
shares with an unpinned router), not by name, so roads made by 0.3's tool are found too.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from tuplenet.model import (
    DEVICE_IDS_KEY,
    IP_BOOK_ROOT,
    LR,
    LRP,
    LS,
    LSP,
    LSR,
    PATCH_PORT_IP,
    PATCH_PORT_MAC,
    ROOT,
    ModelError,
    derive_mac,
    entity_key,
    int_to_ip,
    ip_book_key,
    network_of,
    normalize_ip,
    parse_cidr,
    port_id,
    validate_name,
)
from tuplenet.model.ovsnames import check_patch_port
from tuplenet.store import Compare, Op

from .base import Core, Plan, checked
from .errors import AlreadyExists, Conflict, InvalidArgument, NotFound

DEFAULT_INNER = "100.64.88.100/24"


@dataclass(frozen=True)
class Road:
    """One edge road as found in the tree."""

    edge: str  # the pinned edge router
    chassis: str
    outside: str  # switch with the patch port
    patch_port: str
    phy_bridge: str
    transit: str  # switch shared with the central router
    central: str
    vip: str  # edge address on the outside, CIDR
    inner: str  # edge address on the transit switch, CIDR
    central_ip: str
    ext_gw: str | None  # next hop of the edge's default route
    virt: str | None  # the virtual space routed back to the central router, CIDR
    in_ecmp: bool  # the central router's route to this edge exists (False: draining, or half removed)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_DECODED: dict[tuple[str, str], Any] = {}  # (key, value) -> entity: records are immutable values


class _Tree:
    """One snapshot of entity_view/ and the port books, decoded enough for the edge plans."""

    def __init__(self, core: Core) -> None:
        (kvs, books, dev_kv), self.revision = core.read(Op.get_prefix(ROOT), Op.get_prefix(IP_BOOK_ROOT),
                                                         Op.get(DEVICE_IDS_KEY))
        self.dev_kv = dev_kv
        self.kvs = {kv.key: kv for kv in kvs}
        self.books = {kv.key: kv for kv in books}
        self.ents: dict[tuple, Any] = {}
        self._by_kind: dict[str, list[Any]] | None = None
        self._by_parent: dict[tuple[str, str], list[Any]] | None = None
        self.by_name: dict[tuple[str, str], list[Any]] = {}  # (kind, port name) -> ports
        for kv in kvs:
            e = _DECODED.get((kv.key, kv.value))
            if e is None:
                e = core.decode_kv(kv)
                if e is not None and len(_DECODED) < 4096:  # callers plan again after a lost race
                    _DECODED[(kv.key, kv.value)] = e
            if e is not None:
                self.ents[(e.kind, *e.ident)] = e
                if e.kind in ("lsp", "lrp"):
                    self.by_name.setdefault((e.kind, e.name), []).append(e)

    def of(self, kind: str) -> list[Any]:
        return self._index()[0].get(kind, [])

    def children(self, kind: str, parent: str) -> list[Any]:
        return self._index()[1].get((kind, parent), [])

    def _index(self) -> tuple[dict[str, list[Any]], dict[tuple[str, str], list[Any]]]:
        """Entities by kind and by (kind, parent), in key order; built once (trees may be large)."""
        if self._by_kind is None:
            by_kind: dict[str, list[Any]] = {}
            by_parent: dict[tuple[str, str], list[Any]] = {}
            for k, e in sorted(self.ents.items()):
                by_kind.setdefault(k[0], []).append(e)
                if len(k) > 2:
                    by_parent.setdefault((k[0], k[1]), []).append(e)
            self._by_kind, self._by_parent = by_kind, by_parent
        return self._by_kind, self._by_parent  # type: ignore[return-value]

    def used_ips(self) -> dict[str, str]:
        """Address -> the port holding it, over every switch and router port (0.3's global check)."""
        out: dict[str, str] = {}
        for e in self.of("lsp") + self.of("lrp"):
            if e.ip != PATCH_PORT_IP:
                out.setdefault(e.ip, f"{e.kind} {e.ident[0]}/{e.name}")
        return out

    def kv_of(self, kind: str, *ident: str) -> Any:
        return self.kvs.get(entity_key(kind, ident))

    def book(self, core: Core, kind: str, name: str) -> Any:
        return core.port_book(kind, name, self.books.get(ip_book_key(kind, name)), [])

    def peer(self, port: Any) -> Any:
        """The port `port` is linked to (both name each other), or None."""
        kind = "lsp" if port.kind == "lrp" else "lrp"
        return next((p for p in self.by_name.get((kind, port.peer or ""), ()) if p.peer == port.name), None)


def find_roads(t: _Tree) -> list[Road]:
    roads = []
    routers = {lr.name: lr for lr in t.of("LR")}
    for lr in routers.values():
        if not lr.chassis:
            continue
        outside = transit = vip = inner = patch = central_lrp = None
        for lrp in t.children("lrp", lr.name):
            lsp = t.peer(lrp)
            if lsp is None:
                continue
            ports = t.children("lsp", lsp.ls)
            patches = [p for p in ports if p.ip == PATCH_PORT_IP and p.peer]
            if patches and outside is None:
                outside, vip, patch = lsp.ls, lrp, patches[0]
                continue
            for o in ports:
                other = t.peer(o) if o.peer and o.ip != PATCH_PORT_IP and o.name != lsp.name else None
                if other is not None and other.lr != lr.name and not getattr(routers.get(other.lr), "chassis", 1):
                    transit, inner, central_lrp = lsp.ls, lrp, other
        if outside is None or transit is None or central_lrp is None:
            continue
        routes = t.children("lsr", lr.name)
        ext = next((r.next_hop for r in routes if r.prefix == 0 and r.outport == vip.name), None)
        virt = next((f"{r.ip}/{r.prefix}" for r in routes if r.outport == inner.name
                     and r.next_hop == central_lrp.ip), None)
        in_ecmp = any(r.outport == central_lrp.name for r in t.children("lsr", central_lrp.lr))
        roads.append(Road(lr.name, lr.chassis, outside, patch.name, patch.peer, transit, central_lrp.lr,
                          f"{vip.ip}/{vip.prefix}", f"{inner.ip}/{inner.prefix}", central_lrp.ip, ext, virt, in_ecmp))
    return roads


def _cidr(text: str, what: str, min_prefix: int = 0, max_prefix: int = 32) -> tuple[str, int]:
    try:
        ip, prefix = parse_cidr(text)
    except ModelError:
        raise InvalidArgument(f"invalid {what}: {text!r} (expected A.B.C.D/N)") from None
    if not min_prefix <= prefix <= max_prefix:
        raise InvalidArgument(f"invalid {what}: {text!r} (prefix must be {min_prefix}-{max_prefix})")
    return ip, prefix


def _ip(text: str, what: str) -> str:
    try:
        return normalize_ip(text)
    except (ModelError, ValueError, AttributeError):
        raise InvalidArgument(f"invalid {what}: {text!r}") from None


def route_name(lr: str, ip: str, prefix: int, next_hop: str, outport: str) -> str:
    """0.3's naming: <lr>_<ip>-<prefix>_to_<next_hop>_<outport>."""
    return f"{lr}_{ip}-{prefix}_to_{next_hop}_{outport}"


@dataclass(frozen=True)
class EdgeSpec:
    chassis: str
    phy_bridge: str
    vip: str
    virt: str | None = None
    ext_gw: str | None = None
    inner: str = DEFAULT_INNER
    central: str | None = None


class Edges:
    """`tpctl edge init|add|remove|show`."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def list_roads(self) -> list[Road]:
        return find_roads(_Tree(self.core))

    def init(self, spec: EdgeSpec) -> Road:
        """The first road: needs the virtual space and the physical gateway."""
        if not spec.virt or not spec.ext_gw:
            raise InvalidArgument("edge init needs --virt (the whole virtual space) and --ext-gw (physical gateway)")
        return self.core.commit(lambda: self._plan_add(spec, first=True))

    def add(self, spec: EdgeSpec) -> Road:
        """Another road like the existing ones (same virtual space, transit address and central router)."""
        return self.core.commit(lambda: self._plan_add(spec, first=False))

    def _plan_add(self, spec: EdgeSpec, first: bool) -> Plan:
        chassis = checked(validate_name, spec.chassis)
        phy = checked(validate_name, spec.phy_bridge)
        vip, vprefix = _cidr(spec.vip, "vip", 1, 31)
        for text, what in ((spec.virt, "virt"), (spec.inner, "inner")):  # bad input fails before any read
            if text:
                _cidr(text, what, 2 if what == "inner" else 0, 30 if what == "inner" else 32)
        if spec.ext_gw:
            _ip(spec.ext_gw, "ext_gw")
        central_name = checked(validate_name, spec.central) if spec.central else None
        t = _Tree(self.core)
        roads = find_roads(t)
        if first and roads:
            raise AlreadyExists(f"an edge road exists already ({roads[0].edge}): use `tpctl edge add`")
        if not first and not roads:
            raise NotFound("no edge road yet: create the first one with `tpctl edge init`")
        tpl = roads[0] if roads else None
        virt = spec.virt or (tpl.virt if tpl else None)
        ext_gw = _ip(spec.ext_gw, "ext_gw") if spec.ext_gw else (tpl.ext_gw if tpl else None)
        if not virt or not ext_gw:
            raise InvalidArgument(f"road {tpl.edge if tpl else '?'} has no virtual-space or default route: "
                                  "give --virt and --ext-gw")
        virt_ip, virt_prefix = _cidr(virt, "virt")
        inner_ip, inner_prefix = _cidr(tpl.inner if tpl and spec.inner == DEFAULT_INNER else spec.inner,
                                       "inner", 2, 30)
        central = self._central(t, central_name or (tpl.central if tpl else None))
        if ("chassis", chassis) not in t.ents:
            raise NotFound(f"chassis {chassis} unknown: it registers when its agent starts (tpctl ch show)")
        used = t.used_ips()
        inner_holders = {r.inner.partition("/")[0] for r in roads}
        # The gateway a road inherits may meanwhile be modelled as a port (a lab's stand-in): only new ones count.
        for ip, what in ((vip, "vip"), (ext_gw if spec.ext_gw else None, "ext_gw")):
            if ip is not None and ip in used:
                raise Conflict(f"{what} address {ip} in use by {used[ip]}")
        if inner_ip in used and inner_ip not in inner_holders:
            raise Conflict(f"inner address {inner_ip} in use by {used[inner_ip]}")
        if network_of(vip, vprefix) == network_of(inner_ip, inner_prefix):
            raise InvalidArgument(f"vip {spec.vip} and the transit network {inner_ip}/{inner_prefix} overlap")
        n = 1
        while any((k, name) in t.ents
                  for k, name in (("LS", f"tp_LS_outside{n}"), ("LR", f"tp_LR_edge{n}"), ("LS", f"tp_LS_m{n}"))):
            n += 1
        out_ls, edge, transit = f"tp_LS_outside{n}", f"tp_LR_edge{n}", f"tp_LS_m{n}"
        patch = f"{out_ls}-patch"
        checked(check_patch_port, patch, phy)
        central_ports = t.children("lrp", central)
        central_ip = self._central_ip(inner_ip, inner_prefix, used, {port_id(p.ip) for p in central_ports})
        ids = self.core.device_book(t.dev_kv)
        new_ids: list[int] = []
        for _ in range(3):
            new_ids.append(ids.allocate(set(new_ids)))
        ents: list[Any] = [LS(out_ls, new_ids[0]), LR(edge, new_ids[1], chassis), LS(transit, new_ids[2]),
                           LSP(out_ls, patch, PATCH_PORT_IP, PATCH_PORT_MAC, phy, chassis)]
        links = ((edge, out_ls, vip, vprefix), (edge, transit, inner_ip, inner_prefix),
                 (central, transit, central_ip, inner_prefix))
        for lr, ls, ip, prefix in links:
            mac = derive_mac(ip)
            ents += [LSP(ls, f"{ls}_to_{lr}", ip, mac, f"{lr}_to_{ls}"), LRP(lr, f"{lr}_to_{ls}", ip, prefix, mac,
                                                                               f"{ls}_to_{lr}")]
        for lr, ip, prefix, nh, outport in ((edge, "0.0.0.0", 0, ext_gw, f"{edge}_to_{out_ls}"),
                                            (edge, virt_ip, virt_prefix, central_ip, f"{edge}_to_{transit}"),
                                            (central, "0.0.0.0", 0, inner_ip, f"{central}_to_{transit}")):
            ents.append(LSR(lr, route_name(lr, ip, prefix, nh, outport), ip, prefix, nh, outport))
        for e in ents:
            checked(validate_name, e.name)
        compares = [Compare.missing(e.key) for e in ents]
        ops = [Op.put(e.key, e.to_value()) for e in ents]
        central_kv = t.kv_of("LR", central)
        compares += [Compare.mod_revision(central_kv.key, "=", central_kv.mod_revision), ids.guard(),
                     Compare.exists(entity_key("chassis", (chassis,)))]
        ops += ids.ops(ids.ids | set(new_ids))
        books: dict[tuple[str, str], set[int]] = {("LR", central): {port_id(p.ip) for p in central_ports}}
        for e in ents:
            if e.kind in ("lsp", "lrp"):
                books.setdefault(("LS" if e.kind == "lsp" else "LR", e.ident[0]), set()).add(port_id(e.ip))
        for (pk, name), pids in books.items():
            book = t.book(self.core, pk, name)
            compares.append(book.guard())
            ops += book.ops(pids)
        road = Road(edge, chassis, out_ls, patch, phy, transit, central, f"{vip}/{vprefix}",
                    f"{inner_ip}/{inner_prefix}", central_ip, ext_gw, f"{virt_ip}/{virt_prefix}", True)
        return Plan(compares, ops, road)

    def _central(self, t: _Tree, name: str | None) -> str:
        if name:
            lr = t.ents.get(("LR", name))
            if lr is None:
                raise NotFound(f"no central router: router {name} does not exist")
            if lr.chassis:
                raise InvalidArgument(f"router {name} is pinned to {lr.chassis}: the central router must be "
                                      "distributed")
            return name
        cands = [lr.name for lr in t.of("LR") if not lr.chassis]
        if not cands:
            raise NotFound("no central router: create a distributed router first (tpctl lr add NAME)")
        if len(cands) > 1:
            raise InvalidArgument(f"several routers could be the central one ({', '.join(cands[:5])}): name it "
                                  "with --central")
        return cands[0]

    @staticmethod
    def _central_ip(inner_ip: str, prefix: int, used: dict[str, str], central_ids: set[int]) -> str:
        """Highest free address below the transit network's broadcast (0.3), unique on the central router."""
        net = network_of(inner_ip, prefix)
        bcast = net | (0xFFFFFFFF >> prefix)
        for cand in range(bcast - 1, net, -1):
            ip = int_to_ip(cand)
            if ip != inner_ip and ip not in used and port_id(cand) not in central_ids:
                return ip
        raise Conflict(f"no free address left in the transit network {int_to_ip(net)}/{prefix}")

    # ---- remove -------------------------------------------------------------------------------------------

    def remove(self, vip: str, drain: float = 1.0, sleep: Any = time.sleep) -> Road:
        """Drain (central route first), then delete the road in one transaction."""
        ip = _ip(vip.partition("/")[0], "vip")
        road = self._road_by_vip(ip)
        if road.in_ecmp:
            self.core.commit(lambda: self._plan_drain(ip))
            if drain > 0:
                sleep(drain)
        return self.core.commit(lambda: self._plan_remove(ip))

    def _road_by_vip(self, ip: str, t: _Tree | None = None) -> Road:
        for r in find_roads(t or _Tree(self.core)):
            if r.vip.partition("/")[0] == ip:
                return r
        raise NotFound(f"no edge road with vip {ip}")

    def _plan_drain(self, ip: str) -> Plan:
        t = _Tree(self.core)
        road = self._road_by_vip(ip, t)
        routes = [r for r in t.children("lsr", road.central) if r.outport == f"{road.central}_to_{road.transit}"
                  or t.ents.get(("lrp", road.central, r.outport)) is not None
                  and t.ents[("lrp", road.central, r.outport)].ip == road.central_ip]
        keys = [r.key for r in routes]
        return Plan([Compare.mod_revision(k, "=", t.kvs[k].mod_revision) for k in keys],
                    [Op.delete(k) for k in keys], road)

    def _plan_remove(self, ip: str) -> Plan:
        t = _Tree(self.core)
        road = self._road_by_vip(ip, t)
        compares: list[Compare] = []
        ops: list[Op] = []
        central_lrps = [p for p in t.children("lrp", road.central) if p.ip == road.central_ip
                        and (lsp := t.peer(p)) is not None and lsp.ls == road.transit]
        gone_keys = [p.key for p in central_lrps]
        gone_keys += [r.key for r in t.children("lsr", road.central)
                      if r.outport in {p.name for p in central_lrps}]
        remaining = [p for p in t.children("lrp", road.central) if p not in central_lrps]
        for k in gone_keys:
            compares.append(Compare.mod_revision(k, "=", t.kvs[k].mod_revision))
            ops.append(Op.delete(k))
        book = t.book(self.core, "LR", road.central)
        compares.append(book.guard())
        ops += book.ops({port_id(p.ip) for p in remaining})
        ids = self.core.device_book(t.dev_kv)
        freed = set()
        for kind, name in (("LR", road.edge), ("LS", road.transit), ("LS", road.outside)):
            key = entity_key(kind, (name,))
            kv = t.kvs[key]
            compares.append(Compare.mod_revision(key, "=", kv.mod_revision))
            ops += [Op.delete(key), Op.delete_prefix(key + "/"), Op.delete(ip_book_key(kind, name))]
            freed.add(t.ents[(kind, name)].id)
        compares.append(ids.guard())
        ops += ids.ops(ids.ids - freed)
        return Plan(compares, ops, road)


__all__ = ["DEFAULT_INNER", "EdgeSpec", "Edges", "Road", "find_roads", "route_name"]
