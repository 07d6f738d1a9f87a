"""From what an operator types to the packet to trace: a source port and a destination (IP and/or MAC,
the missing MAC filled in from the model: the destination's own MAC in the same switch, the router port's
when routed), or a raw hex frame. Pure: the model comes in as a dict of facts."""

from __future__ import annotations

import ipaddress

from ..model import ModelError, normalize_ip, normalize_mac
from ..records import dataclass
from . import packet as P
from .packet import TraceError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROTOS = ("icmp", "tcp", "udp", "arp")


@dataclass(frozen=True)
class Request:
    """A packet to trace as the user described it (tpctl trace options); checked() validates it."""

    src_port: str                # "LS/PORT" or a port name unique across switches
    dst_ip: str | None = None
    dst_mac: str | None = None
    src_ip: str | None = None
    src_mac: str | None = None
    proto: str = "icmp"
    ttl: int = 64
    sport: int = 12345
    dport: int = 80
    icmp_type: int = 8
    frame: str | None = None     # hex; excludes the address options


def checked(req: Request) -> Request:
    """The request with addresses in canonical form; TraceError names the first bad one."""
    if req.proto not in PROTOS:
        raise TraceError(f"protocol must be one of {', '.join(PROTOS)}, not {req.proto!r}")
    for name, lo, hi in (("ttl", 0, 255), ("sport", 0, 65535), ("dport", 0, 65535), ("icmp_type", 0, 255)):
        v = getattr(req, name)
        if not lo <= v <= hi:
            raise TraceError(f"--{name.replace('_', '-')} must be {lo}..{hi}, not {v}")
    if req.frame is not None:
        given = [n for n in ("dst_ip", "dst_mac", "src_ip", "src_mac") if getattr(req, n) is not None]
        if given:
            raise TraceError(f"--frame gives the whole packet; drop --{given[0].replace('_', '-')}")
        P.parse_hex(req.frame)
        return req
    fixed: dict[str, Any] = {}
    for name in ("dst_ip", "src_ip"):
        v = getattr(req, name)
        if v is not None:
            fixed[name] = _ip(v, name)
    for name in ("dst_mac", "src_mac"):
        v = getattr(req, name)
        if v is not None:
            fixed[name] = _mac(v, name)
    if req.dst_ip is None and req.dst_mac is None:
        raise TraceError("give a destination: --dst-ip and/or --dst-mac (or --frame)")
    if req.proto == "arp" and req.dst_ip is None:
        raise TraceError("arp needs --dst-ip (the address asked for)")
    return Request(**{**req.__dict__, **fixed})


def _ip(text: str, what: str) -> str:
    try:
        return normalize_ip(text)
    except (ModelError, ValueError):
        raise TraceError(f"--{what.replace('_', '-')}: {_one_line(text)!r} is not an IPv4 address") from None


def _mac(text: str, what: str) -> str:
    try:
        return normalize_mac(text)
    except (ModelError, ValueError):
        raise TraceError(f"--{what.replace('_', '-')}: {_one_line(text)!r} is not a MAC address") from None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:64]


def find_port(facts: dict[tuple, Any], spec: str) -> tuple[str, str]:
    """'LS/PORT' or a bare port name (unique across switches) -> (ls, port)."""
    if "/" in spec:
        ls, _, port = spec.partition("/")
        if ("lsp", ls, port) not in facts:
            raise TraceError(f"logical port {_one_line(spec)} does not exist")
        return ls, port
    hits = sorted(k for k in facts if k[0] == "lsp" and k[2] == spec)
    if not hits:
        raise TraceError(f"logical port {_one_line(spec)} does not exist")
    if len(hits) > 1:
        raise TraceError(f"port name {spec} is in several switches ({', '.join(k[1] for k in hits)}): "
                         "give SWITCH/PORT")
    return hits[0][1], hits[0][2]


def build(facts: dict[tuple, Any], req: Request) -> tuple[str, str, dict[str, int]]:
    """(ls, port, packet) for a checked request against the model's facts."""
    ls, port = find_port(facts, req.src_port)
    if req.frame is not None:
        return ls, port, P.decode_frame(req.frame)
    lsp = facts[("lsp", ls, port)]
    src_mac = req.src_mac or lsp.mac
    src_ip = req.src_ip or lsp.ip
    if req.proto == "arp":
        pkt = P.arp_request(src_mac, src_ip, req.dst_ip or "0.0.0.0")
        if req.dst_mac:
            pkt["dl_dst"] = P.mac_int(req.dst_mac)
        return ls, port, pkt
    dst_ip = req.dst_ip or _ip_of_mac(facts, ls, req.dst_mac or "")
    dst_mac = req.dst_mac or _mac_towards(facts, ls, src_ip, dst_ip)
    if req.proto == "icmp":
        pkt = P.icmp(src_mac, dst_mac, src_ip, dst_ip, req.ttl, req.icmp_type)
    else:
        pkt = P.l4(req.proto, src_mac, dst_mac, src_ip, dst_ip, req.ttl, req.sport, req.dport)
    return ls, port, pkt


def _ports_of(facts: dict[tuple, Any], ls: str) -> list[Any]:
    return [facts[k] for k in sorted(k for k in facts if k[0] == "lsp" and k[1] == ls)]


def _ip_of_mac(facts: dict[tuple, Any], ls: str, mac: str) -> str:
    for lsp in _ports_of(facts, ls):
        if lsp.mac == mac:
            return lsp.ip
    raise TraceError(f"no port of {ls} has MAC {mac}: give --dst-ip too")


def _mac_towards(facts: dict[tuple, Any], ls: str, src_ip: str, dst_ip: str) -> str:
    """The destination's MAC when it is in the same switch, else the MAC of the router port the switch
    reaches it through (the one whose network holds the source address, then by name)."""
    ports = _ports_of(facts, ls)
    for lsp in ports:
        if lsp.ip == dst_ip and lsp.ip != "255.255.255.255":
            return lsp.mac
    routers = [lsp for lsp in ports if lsp.peer and lsp.ip != "255.255.255.255"]
    if not routers:
        raise TraceError(f"{dst_ip} is not in {ls} and {ls} has no router: give --dst-mac")
    src = ipaddress.IPv4Address(src_ip)
    for lsp in routers:
        lrp = next((facts[k] for k in facts if k[0] == "lrp" and k[2] == lsp.peer), None)
        if lrp is not None and src in ipaddress.IPv4Network(f"{lrp.ip}/{lrp.prefix}", strict=False):
            return lsp.mac
    return routers[0].mac
