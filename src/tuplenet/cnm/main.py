"""`tpcnm`: run the Docker network driver on this host (next to the tuplenet agent)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

DEFAULT_SOCKET = "/run/docker/plugins/tuplenet.sock"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tpcnm", description="Docker (libnetwork) remote network driver for TupleNet")
    p.add_argument("-e", "--endpoints", default=os.environ.get("ETCD_HOSTS", "localhost:2379"),
                   help="etcd endpoints, comma separated (default localhost:2379)")
    p.add_argument("-p", "--prefix", default=os.environ.get("ETCD_PREFIX", "/tuplenet"),
                   help="key prefix in etcd (default /tuplenet)")
    p.add_argument("--socket", default=DEFAULT_SOCKET,
                   help=f"plugin socket; docker finds sockets in /run/docker/plugins (default {DEFAULT_SOCKET}); "
                        "the file name is the driver name")
    p.add_argument("--spec", help="also write a plugin spec file pointing at the socket (e.g. "
                                  "/etc/docker/plugins/tuplenet.spec when the socket lives elsewhere)")
    p.add_argument("--ovsdb", default=os.environ.get("TUPLENET_OVSDB_PATH"),
                   help="OVSDB socket (default: $TUPLENET_OVSDB_PATH, else ovs-vsctl's default)")
    p.add_argument("--bridge", default="br-int", help="integration bridge (default br-int)")
    p.add_argument("--router", help="router every new network is linked to unless it names one (-o router=)")
    p.add_argument("--mtu", type=int, default=1400, help="container interface MTU unless -o mtu= (default 1400)")
    p.add_argument("--ready-timeout", type=float, default=10.0,
                   help="seconds Join waits for the agent to mark the port ready; 0 = do not wait (default 10)")
    p.add_argument("-t", "--timeout", type=float, default=5.0, help="seconds to wait for etcd (default 5)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request outcome")
    from tuplenet.store.security import add_arguments as add_etcd_security

    add_etcd_security(p)  # --cacert --cert --key --user --password (and ETCDCTL_*), as etcdctl spells them
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    logging.basicConfig(level=logging.INFO if opts.verbose else logging.WARNING,
                        format="%(asctime)s tpcnm %(levelname)s %(message)s")
    from tuplenet.control import ControlError, Controller
    from tuplenet.store import Store, StoreError
    from tuplenet.store.security import from_args as etcd_security

    from .driver import CnmDriver, _parse_mtu
    from .host import HostError, LinuxHost
    from .protocol import DriverError
    from .server import SocketBusy, serve

    try:
        mtu = _parse_mtu(opts.mtu)
        if opts.ready_timeout < 0:
            raise DriverError("--ready-timeout must be >= 0")
        security = etcd_security(opts, os.environ)
        if security.tls:
            security.ssl_context()  # unreadable certificate files: refuse to start now, not on first use
        host = LinuxHost(opts.ovsdb, opts.bridge)
        chassis = host.probe()
        ctl = Controller(Store(opts.endpoints, prefix=opts.prefix, timeout=opts.timeout, security=security))
        ctl.ensure_version()
        if opts.router:
            ctl.get_router(opts.router)
        driver = CnmDriver(ctl, host, chassis, default_router=opts.router, mtu=mtu,
                           ready_timeout=opts.ready_timeout)
        serve(driver, opts.socket, opts.spec, log_level="info" if opts.verbose else "warning")
    except (DriverError, HostError, ControlError, StoreError, SocketBusy, OSError) as exc:
        print(f"tpcnm: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
