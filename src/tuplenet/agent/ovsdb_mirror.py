"""Pure planning of port mirrors on br-int: the OVS Mirror rows and the tunnel ports towards collectors.

Wishes come from the engine (pipeline/mirror.py): mirror name -> (iface-id, ofport, direction, target kind,
local port name or collector IP, session id / VNI). Our Mirror rows carry `external_ids:tuplenet-mirror=<name>`
and our collector ports `external_ids:tuplenet-role=mirror`; rows and ports without those marks are never
edited or deleted. A collector port is shared by every mirror with the same target (OVS refuses two tunnel
ports with one type, remote IP and key).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

D_MIRROR = "mirror"
MIRROR_KEY = "tuplenet-mirror"  # on Mirror rows: the mirror's name
ROLE_MIRROR = "mirror"  # tuplenet-role of collector tunnel ports
PORT_PREFIX = "tpm"
ERSPAN_INDEX = "1"  # ERSPAN v1 index field: the collector tells sessions apart by the session id (key)

MirrorWish = tuple  # (iface_id, ofport, direction, kind, iface_or_ip, key)


@dataclass(frozen=True)
class MirrorView:
    """One Mirror row of a bridge: port sets by port name, output port name (None: none)."""

    uuid: str
    name: str
    select_src: frozenset[str] = frozenset()
    select_dst: frozenset[str] = frozenset()
    output: str | None = None
    external_ids: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AddMirror:
    bridge: str
    name: str  # our mirror's name (the row is named tuplenet-<name>)
    select_src: tuple[str, ...]
    select_dst: tuple[str, ...]
    output: str
    domain: str = D_MIRROR


@dataclass(frozen=True)
class FixMirror:
    uuid: str
    select_src: tuple[str, ...]
    select_dst: tuple[str, ...]
    output: str
    domain: str = D_MIRROR


@dataclass(frozen=True)
class DelMirror:
    bridge: str
    uuid: str
    domain: str = D_MIRROR


def collector_port(kind: str, ip: str, key: int) -> tuple[str, str, dict[str, str]]:
    """(port name, interface type, options) of the tunnel port towards a collector."""
    name = f"{PORT_PREFIX}{kind[0]}-{int(ipaddress.IPv4Address(ip)):08x}-{key}"
    opts = {"remote_ip": ip, "key": str(key)}
    if kind == "erspan":
        opts |= {"erspan_ver": "1", "erspan_idx": ERSPAN_INDEX}
    return name, kind, opts


def output_name(w: MirrorWish) -> str:
    """Name of the port a wish's copies leave through."""
    kind, where, key = w[3], w[4], w[5]
    return where if kind == "local" else collector_port(kind, where, key)[0]


def collector_specs(mirrors: Mapping[str, MirrorWish] | None,
                    chassis_ips: frozenset[str] = frozenset()) -> list[tuple[str, str, dict[str, str]]]:
    """Collector tunnel ports the mirrors need, one per target, sorted by name (none for a Geneve collector
    at a chassis tunnel IP: see plan_mirrors)."""
    out: dict[str, tuple[str, str, dict[str, str]]] = {}
    for w in (mirrors or {}).values():
        if w[3] != "local" and not (w[3] == "geneve" and w[4] in chassis_ips):
            spec = collector_port(w[3], w[4], w[5])
            out[spec[0]] = spec
    return [out[k] for k in sorted(out)]


def _vm_port(ports: Mapping[str, tuple[str, int]], iface_id: str, ofport: int) -> str | None:
    """The br-int port whose interface stands for iface_id at that ofport (the one the engine saw)."""
    hit = ports.get(iface_id)
    return hit[0] if hit is not None and hit[1] == ofport else None


def plan_mirrors(bridge: str, port_names: set[str], vm_ports: Mapping[str, tuple[str, int]],
                 rows: tuple[MirrorView, ...], mirrors: Mapping[str, MirrorWish] | None,
                 reserved: set[str], foreign: set[str] | frozenset[str] = frozenset(),
                 problems: dict[str, str] | None = None, chassis_ips: frozenset[str] = frozenset(),
                 ) -> tuple[list, bool]:
    """Edits of our Mirror rows on `bridge`, and whether some mirror waits for a port being created.

    port_names: ports on the bridge now; vm_ports: iface-id -> (port name, ofport); reserved: names the
    agent uses for other purposes (tunnels, patch ports) that a local target must not take over; foreign:
    collector port names taken by ports we did not create (copies must never go there); chassis_ips: tunnel
    IPs of other chassis (a Geneve port to one with a fixed VNI would take over that chassis's tunnel traffic
    of the datapath with that id, and OVS drops what arrives on a mirror output).
    A mirror whose VM port or local output port is not there (yet) gets no row; `problems` (if given) gets
    why, per mirror, for what will not fix itself without an operator (shown in `tuplenet status`).
    """
    problems = {} if problems is None else problems
    if mirrors is None:
        return [], False
    # OVS reserves a mirror's output port for copies (nothing else is forwarded to it), so a port that
    # stands for a logical port (it has an iface-id) is never made one: a typo must not cut a VM off.
    bound = {name for name, _ in vm_ports.values()}
    want: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {}
    waiting = False
    for name, w in sorted(mirrors.items()):
        iface_id, ofport, direction = w[0], w[1], w[2]
        vm = _vm_port(vm_ports, iface_id, ofport)
        out = output_name(w)
        if w[3] == "local" and (out == bridge or out in reserved or out in bound):
            # never turn br-int itself, our tunnels or a VM's port into a mirror output
            problems[name] = f"local target {out} is {'a VM port' if out in bound else 'not usable'}"
            continue
        if w[3] == "geneve" and w[4] in chassis_ips:
            problems[name] = f"collector {w[4]} is a chassis tunnel IP (use ERSPAN or another address)"
            continue
        if w[3] != "local" and out in foreign:
            problems[name] = f"collector port name {out} is taken by a port tuplenet did not create"
            continue
        if vm is None or out not in port_names:
            waiting |= w[3] != "local" and vm is not None  # our collector port is on its way
            if w[3] == "local" and out not in port_names:
                problems[name] = f"local target {out} is not on {bridge}"
            continue
        src = (vm,) if direction in ("in", "both") else ()
        dst = (vm,) if direction in ("out", "both") else ()
        want[name] = (src, dst, out)
    actions: list = []
    seen: set[str] = set()
    for row in sorted(rows, key=lambda r: r.uuid):
        ours = row.external_ids.get(MIRROR_KEY)
        if ours is None:
            continue
        spec = want.get(ours)
        if spec is None or ours in seen:
            actions.append(DelMirror(bridge, row.uuid))
            continue
        seen.add(ours)
        if (row.select_src, row.select_dst, row.output) != (frozenset(spec[0]), frozenset(spec[1]), spec[2]):
            actions.append(FixMirror(row.uuid, *spec))
    for name, spec in want.items():
        if name not in seen:
            actions.append(AddMirror(bridge, name, *spec))
    return actions, waiting
