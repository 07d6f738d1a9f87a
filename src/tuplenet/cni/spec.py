"""What a CNI runtime sends: environment variables and the network configuration on stdin (pure parsing).

Every problem becomes a CniError with the spec's code and a one-line message naming the field, so the fuzz
test can hold the whole layer to "CNI error JSON out, never a traceback". JSON goes through
tuplenet.store.jsonlite (the stdlib's C codec without the json package) and names are checked without `re`:
this module is on every invocation's path, VERSION included, and those two imports were ~6 ms of it.
"""

from __future__ import annotations

from collections.abc import Mapping

from tuplenet.store.jsonlite import dumps, loads

from .errors import (
    DECODE_FAILURE,
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    INVALID_ENV,
    CniError,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPEC_VERSION = "1.1.0"
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
NEEDS_CONTAINER = ("ADD", "DEL", "CHECK")
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_REST = _ALNUM | {"_", ".", "-"}
DEFAULT_OVSDB = "/var/run/openvswitch/db.sock"
DEFAULT_MTU = 1400  # 1500 underlay minus Geneve with TupleNet's option, with margin
DEFAULT_READINESS_TIMEOUT = 10.0
# etcd TLS and auth (tuplenet.store.security), spelled like the other etcd fields; ETCDCTL_* are the fallbacks.
SECURITY_FIELDS = {"cacert": "etcdCACert", "cert": "etcdCert", "key": "etcdKey", "user": "etcdUser",
                   "password": "etcdPassword"}


class Env:
    """The CNI_* variables of one invocation, validated for its command."""

    __slots__ = ("command", "container_id", "netns", "ifname", "args", "path")

    def __init__(self, command: str, container_id: str, netns: str, ifname: str, args: str, path: str) -> None:
        self.command, self.container_id, self.netns = command, container_id, netns
        self.ifname, self.args, self.path = ifname, args, path


class Route:
    __slots__ = ("dst", "prefix", "gw")

    def __init__(self, dst: int, prefix: int, gw: int | None) -> None:
        self.dst, self.prefix, self.gw = dst, prefix, gw

    def to_json(self) -> dict[str, str]:
        out = {"dst": f"{ip_text(self.dst)}/{self.prefix}"}
        if self.gw is not None:
            out["gw"] = ip_text(self.gw)
        return out


class NetConf:
    """The network configuration (our plugin's object of the list, with name/cniVersion/prevResult)."""

    __slots__ = ("cni_version", "name", "switch", "etcd_endpoints", "etcd_prefix", "etcd_timeout", "subnet",
                 "subnet_net", "prefix_len", "gateway", "routes", "mtu", "bridge", "ovsdb",
                 "readiness_timeout", "tx_offload", "dns", "prev_result", "valid_attachments", "etcd_security", "raw")

    def __init__(self) -> None:
        self.cni_version = "1.0.0"
        self.name = ""
        self.switch = ""
        self.etcd_endpoints: list[str] = ["127.0.0.1:2379"]
        self.etcd_prefix = "/tuplenet/"
        self.etcd_timeout = 5.0
        self.subnet = ""
        self.subnet_net = 0
        self.prefix_len = 0
        self.gateway = 0
        self.routes: list[Route] = []
        self.mtu = DEFAULT_MTU
        self.bridge = "br-int"
        self.ovsdb = DEFAULT_OVSDB
        self.readiness_timeout = DEFAULT_READINESS_TIMEOUT
        self.tx_offload = True
        self.dns: dict[str, Any] = {}
        self.prev_result: dict[str, Any] | None = None
        self.valid_attachments: list[tuple[str, str]] = []
        self.etcd_security: dict[str, str] = {}  # cacert, cert, key, user, password (store.security names)
        self.raw: dict[str, Any] = {}


# ---- addresses (hand-written: the ipaddress module costs start-up time on every container) ----------------

def parse_ip(text: Any, what: str) -> int:
    parts = text.split(".") if isinstance(text, str) else ()
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() and len(p) <= 3 and (p == "0" or p[0] != "0")
                                  for p in parts):
        raise CniError(INVALID_CONFIG, f"{what}: invalid IPv4 address {_show(text)}")
    value = 0
    for p in parts:
        octet = int(p)
        if octet > 255:
            raise CniError(INVALID_CONFIG, f"{what}: invalid IPv4 address {_show(text)}")
        value = (value << 8) | octet
    return value


def parse_cidr(text: Any, what: str) -> tuple[int, int]:
    """'10.1.0.5/24' -> (address as int, prefix length)."""
    ip, sep, plen = text.partition("/") if isinstance(text, str) else ("", "", "")
    if not sep or not plen.isascii() or not plen.isdigit() or len(plen) > 2 or int(plen) > 32:
        raise CniError(INVALID_CONFIG, f"{what}: invalid CIDR {_show(text)} (expected a.b.c.d/len)")
    return parse_ip(ip, what), int(plen)


def ip_text(value: int) -> str:
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def mask(prefix: int) -> int:
    return (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF


def _show(value: Any) -> str:
    text = dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---- environment ------------------------------------------------------------------------------------------

def is_id(text: str) -> bool:
    """The spec's container ID / network name: [A-Za-z0-9][A-Za-z0-9_.-]* (ASCII)."""
    return bool(text) and text[0] in _ALNUM and all(c in _ID_REST for c in text)


def has_bad_name_char(text: str) -> bool:
    """A '/', ',', whitespace (as str.isspace, i.e. regex \\s) or control character (0x00-0x1f, 0x7f)."""
    return any(c in "/," or c.isspace() or c < " " or c == "\x7f" for c in text)


def check_ifname(name: str) -> str:
    """A Linux interface name: 1-15 bytes, not . or .., no '/', ':' or whitespace (and no ',' for etcd)."""
    if not name or len(name.encode("utf-8", "surrogateescape")) > 15 or name in (".", "..") \
            or ":" in name or has_bad_name_char(name):
        raise CniError(INVALID_ENV, f"CNI_IFNAME {_show(name)} is not a valid interface name")
    return name


def parse_env(environ: Mapping[str, str]) -> Env:
    command = environ.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(INVALID_ENV, f"CNI_COMMAND {_show(command)} is not one of {', '.join(COMMANDS)}")
    cid, netns = environ.get("CNI_CONTAINERID", ""), environ.get("CNI_NETNS", "")
    ifname = environ.get("CNI_IFNAME", "")
    if command in NEEDS_CONTAINER:
        if not cid:
            raise CniError(INVALID_ENV, "CNI_CONTAINERID is required")
        if not is_id(cid) or len(cid) > 200:
            raise CniError(INVALID_ENV, f"CNI_CONTAINERID {_show(cid)} is not a valid container id")
        check_ifname(ifname)
        if command != "DEL" and not netns:
            raise CniError(INVALID_ENV, "CNI_NETNS is required")
        if netns and (not netns.startswith("/") or "\x00" in netns):
            raise CniError(INVALID_ENV, f"CNI_NETNS {_show(netns)} is not an absolute path")
    return Env(command, cid, netns, ifname, environ.get("CNI_ARGS", ""), environ.get("CNI_PATH", ""))


# ---- configuration ----------------------------------------------------------------------------------------

def load_json(data: bytes | str) -> dict[str, Any]:
    try:
        obj = loads(data)
    except (ValueError, RecursionError) as exc:
        raise CniError(DECODE_FAILURE, f"network configuration is not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(obj, dict):
        raise CniError(DECODE_FAILURE, "network configuration must be a JSON object")
    return obj


def parse_version(raw: Mapping[str, Any]) -> str:
    version = raw.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise CniError(INVALID_CONFIG, "cniVersion is required")
    if version not in SUPPORTED_VERSIONS:
        raise CniError(INCOMPATIBLE_VERSION, f"cniVersion {_show(version)} is not supported "
                                             f"(supported: {', '.join(SUPPORTED_VERSIONS)})")
    return version


MIN_VERSION = {"CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}  # the spec version that introduced them


def _vtuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _field(raw: Mapping[str, Any], *names: str) -> Any:
    for n in names:
        if n in raw and raw[n] is not None:
            return raw[n]
    return None


def _string(raw: Mapping[str, Any], names: tuple[str, ...], default: str | None = None) -> str:
    value = _field(raw, *names)
    if value is None:
        if default is None:
            raise CniError(INVALID_CONFIG, f"{names[0]} is required")
        return default
    if not isinstance(value, str) or not value.strip():
        raise CniError(INVALID_CONFIG, f"{names[0]} must be a non-empty string, not {_show(value)}")
    return value.strip()


def _number(raw: Mapping[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = raw.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise CniError(INVALID_CONFIG, f"{name} must be a number from {low:g} to {high:g}, not {_show(value)}")
    return float(value)


def _name(value: str, what: str) -> str:
    if has_bad_name_char(value):
        raise CniError(INVALID_CONFIG, f"{what} {_show(value)} must not contain '/', ',' or whitespace")
    return value


def parse_conf(raw: dict[str, Any], environ: Mapping[str, str] | None = None, command: str = "ADD") -> NetConf:
    """Validate the configuration for `command`; field names follow CNI habits, with 0.3's as aliases."""
    environ = environ or {}
    c = NetConf()
    c.raw = raw
    c.cni_version = parse_version(raw)
    need = MIN_VERSION.get(command)
    if need and _vtuple(c.cni_version) < _vtuple(need):
        raise CniError(INCOMPATIBLE_VERSION, f"{command} needs cniVersion {need} or later, not {c.cni_version}")
    name = raw.get("name")
    if not isinstance(name, str) or not is_id(name):
        raise CniError(INVALID_CONFIG, f"name {_show(name)} is not a valid network name")
    c.name = name
    c.switch = _name(_string(raw, ("switch", "switchname")), "switch")
    eps = _field(raw, "etcdEndpoints", "etcd_cluster")
    if eps is not None:
        items = eps.split(",") if isinstance(eps, str) else eps
        if not isinstance(items, list) or not items or not all(isinstance(e, str) and e.strip() for e in items):
            raise CniError(INVALID_CONFIG, f"etcdEndpoints must be 'host:port,...' or a list, not {_show(eps)}")
        c.etcd_endpoints = [e.strip() for e in items]
    c.etcd_prefix = _string(raw, ("etcdPrefix", "data_store_prefix"), "/tuplenet")
    c.etcd_timeout = _number(raw, "etcdTimeout", 5.0, 0.1, 120)
    for key, field in SECURITY_FIELDS.items():
        if raw.get(field) is not None:
            c.etcd_security[key] = _string(raw, (field,))
        elif environ.get(f"ETCDCTL_{key.upper()}"):  # etcdctl's variables, read here so a server uses the caller's
            c.etcd_security[key] = environ[f"ETCDCTL_{key.upper()}"]
    _parse_addressing(raw, c, command)
    c.mtu = int(_number(raw, "mtu", DEFAULT_MTU, 68, 65535))
    if raw.get("mtu") is not None and not isinstance(raw["mtu"], int):
        raise CniError(INVALID_CONFIG, "mtu must be an integer")
    c.bridge = _name(_string(raw, ("bridge",), "br-int"), "bridge")
    default_db = environ.get("TUPLENET_OVSDB_PATH") or (
        environ["OVS_RUNDIR"].rstrip("/") + "/db.sock" if environ.get("OVS_RUNDIR") else DEFAULT_OVSDB)
    c.ovsdb = _string(raw, ("ovsdbSocket",), default_db).removeprefix("unix:")
    c.readiness_timeout = _number(raw, "readinessTimeout", DEFAULT_READINESS_TIMEOUT, 0, 600)
    offload = raw.get("txChecksumOffload", True)
    if not isinstance(offload, bool):
        raise CniError(INVALID_CONFIG, "txChecksumOffload must be true or false")
    c.tx_offload = offload
    dns = raw.get("dns")
    if dns is not None and not isinstance(dns, dict):
        raise CniError(INVALID_CONFIG, "dns must be an object")
    c.dns = dns or {}
    prev = raw.get("prevResult")
    if prev is not None and not isinstance(prev, dict):
        raise CniError(INVALID_CONFIG, "prevResult must be an object")
    c.prev_result = prev
    if command == "GC":
        c.valid_attachments = _attachments(raw.get("cni.dev/valid-attachments"))
    return c


def _parse_addressing(raw: Mapping[str, Any], c: NetConf, command: str) -> None:
    routes = raw.get("routes", [{"dst": "0.0.0.0/0"}])
    if not isinstance(routes, list):
        raise CniError(INVALID_CONFIG, "routes must be a list of {\"dst\": CIDR, \"gw\": IP}")
    for r in routes:
        if not isinstance(r, dict) or "dst" not in r:
            raise CniError(INVALID_CONFIG, f"route {_show(r)} needs a \"dst\"")
        dst, dplen = parse_cidr(r["dst"], "route dst")
        rgw = parse_ip(r["gw"], "route gw") if r.get("gw") is not None else None
        c.routes.append(Route(dst & mask(dplen), dplen, rgw))
    subnet = _field(raw, "subnet")
    gw = _field(raw, "gateway")
    if subnet is None:  # ADD takes it from the router port linked to the switch (plugin.switch_subnet)
        if gw is not None:
            raise CniError(INVALID_CONFIG, "gateway needs subnet")
        return
    set_subnet(c, subnet, parse_ip(gw, "gateway") if gw is not None else None)


def set_subnet(c: NetConf, subnet: str, gateway: int | None) -> None:
    """Subnet and gateway (default: the host part of `subnet`, or network+1 for a plain network)."""
    ip, plen = parse_cidr(subnet, "subnet")
    if plen > 30:
        raise CniError(INVALID_CONFIG, f"subnet {subnet} has no room for containers (prefix must be at most 30)")
    net, bcast = ip & mask(plen), (ip & mask(plen)) | (~mask(plen) & 0xFFFFFFFF)
    c.subnet, c.subnet_net, c.prefix_len = subnet, net, plen
    if gateway is not None:
        c.gateway = gateway
    else:  # 0.3: "10.20.1.1/24" names the gateway by its host part; a plain network means network+1
        c.gateway = ip if ip != net else net + 1
    if not net < c.gateway < bcast:
        raise CniError(INVALID_CONFIG, f"gateway {ip_text(c.gateway)} is not a host address of {subnet}")


def _attachments(value: Any) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CniError(INVALID_CONFIG, "cni.dev/valid-attachments must be a list")
    out = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("containerID"), str) \
                or not isinstance(item.get("ifname"), str):
            raise CniError(INVALID_CONFIG, f"valid attachment {_show(item)} needs containerID and ifname")
        out.append((item["containerID"], item["ifname"]))
    return out


def version_of(data: bytes | str) -> str:
    """The cniVersion to answer an error in: the request's if it is one we speak, else ours."""
    try:
        obj = loads(data)
        v = obj.get("cniVersion") if isinstance(obj, dict) else None
    except (ValueError, RecursionError):
        return "1.0.0"
    return v if isinstance(v, str) and v in SUPPORTED_VERSIONS else "1.0.0"
