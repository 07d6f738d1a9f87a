"""tuplenet-api: serve the management API with uvicorn (bearer tokens required; optional TLS and mTLS).

    tuplenet-api [-e host:port,...] [-p /tuplenet] [--listen 127.0.0.1:8080] --token-file FILE
                 [--read-token-file FILE] [--tls-cert F --tls-key F [--tls-client-ca F]]

Tokens also come from TUPLENET_API_TOKEN / TUPLENET_API_READ_TOKEN. The server starts even when etcd is
down (requests then get 503 until it is back). Bad options: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import sys
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    p = argparse.ArgumentParser(prog="tuplenet-api", description="TupleNet HTTP management API")
    p.add_argument("-e", "--endpoints", default=env.get("ETCD_HOSTS", "localhost:2379"),
                   help="etcd endpoints, comma separated (env ETCD_HOSTS)")
    p.add_argument("-p", "--prefix", default=env.get("ETCD_PREFIX", "/tuplenet"),
                   help="key prefix in etcd (env ETCD_PREFIX)")
    p.add_argument("-t", "--timeout", type=float, default=5.0, help="seconds to wait for etcd per request")
    from tuplenet.store.security import add_arguments as add_etcd_security

    add_etcd_security(p)  # --cacert --cert --key --user --password for a TLS/auth etcd, as etcdctl spells them
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to listen on (default 127.0.0.1:8080)")
    p.add_argument("--token-file", help="tokens allowed everything, one per line (or env TUPLENET_API_TOKEN)")
    p.add_argument("--read-token-file", help="tokens allowed GET only (or env TUPLENET_API_READ_TOKEN)")
    p.add_argument("--tls-cert", help="server certificate (PEM); serves HTTPS")
    p.add_argument("--tls-key", help="server private key (PEM)")
    p.add_argument("--tls-client-ca", help="CA bundle; clients must present a certificate it signed (mTLS)")
    p.add_argument("--threads", type=int, default=40, help="worker threads for blocking etcd calls")
    p.add_argument("--no-cache", action="store_true",
                   help="read every request from etcd instead of the watch-fed cache")
    p.add_argument("--max-body", type=int, default=64 << 20, metavar="BYTES",
                   help="largest request body accepted (default 64 MiB; an import of 20,000 ports is ~1.5 MB)")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p.add_argument("--access-log", action="store_true", help="log every request")
    return p


def split_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen wants HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def tls_options(opts: argparse.Namespace) -> dict[str, Any]:
    if not (opts.tls_cert or opts.tls_key or opts.tls_client_ca):
        return {}
    if not (opts.tls_cert and opts.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    for path in (opts.tls_cert, opts.tls_key, opts.tls_client_ca):
        if path and not os.path.isfile(path):
            raise ValueError(f"{path}: no such file")
    out: dict[str, Any] = {"ssl_certfile": opts.tls_cert, "ssl_keyfile": opts.tls_key}
    if opts.tls_client_ca:
        out.update(ssl_ca_certs=opts.tls_client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
    return out


def serve(opts: argparse.Namespace) -> None:
    import uvicorn

    from tuplenet.store import Store
    from tuplenet.store.security import from_args as etcd_security

    from .app import create_app
    from .auth import Auth

    auth = Auth.from_sources(opts.token_file, opts.read_token_file)
    host, port = split_listen(opts.listen)
    tls = tls_options(opts)
    store = Store(opts.endpoints, prefix=opts.prefix, timeout=opts.timeout,
                  security=etcd_security(opts, os.environ))
    app = create_app(store, auth, threads=opts.threads, cache=not opts.no_cache, max_body=opts.max_body)
    logging.basicConfig(level=opts.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        uvicorn.run(app, host=host, port=port, log_level=opts.log_level, access_log=opts.access_log,
                    server_header=False, **tls)
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    from tuplenet.store import StoreError

    opts = build_parser().parse_args(argv)
    try:
        serve(opts)
    except (ValueError, OSError, ssl.SSLError, StoreError) as exc:
        sys.stderr.write(f"tuplenet-api: {' '.join(str(exc).split())}\n")
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
