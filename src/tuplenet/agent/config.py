"""The agent's command line and environment (the 0.3 contract, reference §3.1), validated up front."""

from __future__ import annotations

import argparse
import fcntl
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass, field

from .. import __version__
from ..store import EtcdSecurity, StoreError
from ..store.endpoints import parse_endpoints
from ..store.security import add_arguments as add_etcd_security
from ..store.security import from_args as etcd_security

HASH_FNS = ("eth_src", "symmetric_l4", "symmetric_l3l4", "symmetric_l3l4+udp", "nw_src", "nw_dst")


class ConfigError(Exception):
    """Bad option or environment: the agent refuses to start with this one-line message."""


@dataclass(frozen=True)
class Config:
    endpoints: str
    prefix: str
    tunnel_ip: str
    logdir: str
    rundir: str
    ovsdb_path: str
    ovs_rundir: str
    bridge: str
    ondemand: bool
    gateway: bool
    redirect: bool
    untunnel: bool
    hash_fn: str
    ipfix_collector: str | None
    ipfix_sampling: int
    datapath_type: str | None
    liveness_ttl: int
    ovsdb_timeout: float = 10.0
    security: EtcdSecurity = field(default_factory=EtcdSecurity)  # etcd TLS files and user
    metrics_address: str | None = None  # host:port of the Prometheus endpoint; None = off
    arp_aging: int = 300  # seconds a gateway keeps a learned outside next hop (TUPLENET_ARP_AGING)
    ondemand_idle: int = 300  # seconds without traffic before flows learned on demand go (ONDEMAND=1)
    bfd_interval_ms: int = 250  # BFD min_tx/min_rx on tunnels to edges (detection ~3 intervals)

    @property
    def mgmt_socket(self) -> str:
        return os.path.join(self.ovs_rundir, f"{self.bridge}.mgmt")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tuplenet", description="TupleNet agent: etcd topology → OVS flows.")
    p.add_argument("-f", "--interface", default="eth0,br0",
                   help="tunnel IPv4 address, or comma list of interfaces whose first IPv4 is used")
    p.add_argument("-a", "--host", default="localhost:2379", help="etcd endpoints host:port[,host:port]")
    p.add_argument("-p", "--prefix", default="/tuplenet/", help="etcd key prefix")
    p.add_argument("-i", "--interval", type=int, default=1, help="accepted for 0.3 compatibility (event driven)")
    p.add_argument("-l", "--log", default="", help="log directory (empty: log to stderr)")
    p.add_argument("-v", "--version", action="version", version=f"tuplenet {__version__}")
    p.add_argument("--metrics-address", default=None, metavar="HOST:PORT",
                   help="serve Prometheus metrics on http://HOST:PORT/metrics (off by default; "
                        "env TUPLENET_METRICS_ADDRESS)")
    add_etcd_security(p)  # --cacert --cert --key --user --password (and ETCDCTL_*), as etcdctl spells them
    return p


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    v = env.get(name)
    if v is None:
        return default
    return v == "1"


def interface_ip(name: str) -> str | None:
    """First IPv4 address of a local interface (SIOCGIFADDR), without spawning `ip`."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            req = struct.pack("256s", name[:15].encode())
            res = fcntl.ioctl(s.fileno(), 0x8915, req)
            return socket.inet_ntoa(res[20:24])
    except OSError:
        return None


def resolve_tunnel_ip(spec: str) -> str:
    try:
        ip = ipaddress.IPv4Address(spec)
    except ValueError:
        pass
    else:
        if ip.is_unspecified or ip.is_multicast or ip.is_loopback:
            raise ConfigError(f"bad tunnel IP {spec}: it must be a unicast address of this host")
        return str(ip)
    if any(c.isdigit() for c in spec.split(",")[0]) and spec.count(".") == 3:
        raise ConfigError(f"bad tunnel IP {spec!r}")
    for name in (n.strip() for n in spec.split(",") if n.strip()):
        found = interface_ip(name)
        if found:
            return found
    raise ConfigError(f"no IPv4 address on interface(s) {spec!r}; pass the tunnel IP with -f")


def load(argv: list[str] | None = None, env: dict[str, str] | None = None) -> Config:
    env = dict(os.environ if env is None else env)
    args = parser().parse_args(argv)
    prefix = args.prefix if args.prefix.endswith("/") else args.prefix + "/"
    try:
        security = etcd_security(args, env)
        if any(e.tls for e in parse_endpoints(args.host, security.tls)):
            security.ssl_context()  # unreadable certificate files: refuse to start now, not on first use
    except StoreError as exc:
        raise ConfigError(str(exc)) from None
    hash_fn = env.get("HASH_FN", "nw_dst")
    if hash_fn not in HASH_FNS:
        hash_fn = "nw_dst"
    collector = env.get("IPFIX_COLLECTOR") or None
    if collector:
        host, _, port = collector.rpartition(":")
        try:
            ipaddress.IPv4Address(host)
            ok = 1 <= int(port) <= 65535
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"bad IPFIX_COLLECTOR {collector!r}: expected ip:port")
    try:
        sampling = int(env.get("IPFIX_SAMPLING_RATE", "64"))
        if sampling <= 0:
            raise ValueError
    except ValueError as exc:
        raise ConfigError("IPFIX_SAMPLING_RATE must be a positive integer") from exc
    ovs_rundir = env.get("OVS_RUNDIR", "/var/run/openvswitch")
    metrics = args.metrics_address or env.get("TUPLENET_METRICS_ADDRESS") or None
    if metrics:
        from .metrics import parse_address

        try:
            parse_address(metrics)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return Config(
        endpoints=args.host,
        prefix=prefix,
        tunnel_ip=resolve_tunnel_ip(args.interface),
        logdir=args.log,
        rundir=env.get("TUPLENET_RUNDIR", "/var/run/tuplenet/"),
        ovsdb_path=env.get("TUPLENET_OVSDB_PATH", os.path.join(ovs_rundir, "db.sock")),
        ovs_rundir=ovs_rundir,
        bridge="br-int",
        ondemand=_flag(env, "ONDEMAND", True),
        gateway=_flag(env, "GATEWAY", False),
        redirect=_flag(env, "ENABLE_REDIRECT", True),
        untunnel=_flag(env, "ENABLE_UNTUNNEL", False),
        hash_fn=hash_fn,
        ipfix_collector=collector,
        ipfix_sampling=sampling,
        datapath_type=env.get("TUPLENET_DATAPATH_TYPE") or None,
        liveness_ttl=_positive(env, "TUPLENET_LIVENESS_TTL", 10),
        ovsdb_timeout=_positive(env, "TUPLENET_OVSDB_TIMEOUT", 10),
        security=security,
        metrics_address=metrics,
        arp_aging=_positive(env, "TUPLENET_ARP_AGING", 300),
        ondemand_idle=_positive(env, "TUPLENET_ONDEMAND_IDLE", 300),
        bfd_interval_ms=_positive(env, "TUPLENET_BFD_INTERVAL_MS", 250),
    )


def _positive(env: dict[str, str], name: str, default: int) -> int:
    try:
        value = int(env.get(name, default))
        if value <= 0:
            raise ValueError
    except ValueError:
        raise ConfigError(f"{name} must be a positive integer") from None
    return value
