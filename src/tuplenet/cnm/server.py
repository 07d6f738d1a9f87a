"""The plugin socket: libnetwork's HTTP-over-unix-socket transport, served by Starlette on uvicorn.

We bind the socket ourselves (mode 0600: whoever can write to it can create networks) and hand uvicorn the
file descriptor; uvicorn would make a socket it binds world-writable. Handlers block (etcd, ip, ovs-vsctl,
waiting for the agent), so they run in Starlette's thread pool and docker's concurrent calls overlap.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .protocol import CONTENT_TYPE, Driver, handle

log = logging.getLogger("tuplenet.cnm")


class SocketBusy(Exception):
    """Another process answers on the plugin socket."""


def make_app(driver: Driver) -> Starlette:
    async def call(request: Request) -> Response:
        body = await request.body()
        # scope["path"], not request.url: on a unix socket the URL is built from (socket path, None), garbled
        status, answer = await run_in_threadpool(handle, driver, request.scope["path"], body)
        return Response(json.dumps(answer), status_code=status, media_type=CONTENT_TYPE)

    return Starlette(routes=[Route("/{method:path}", call, methods=["POST"])])


def bind_socket(path: str) -> socket.socket:
    """A listening unix socket at `path` (mode 0600); a stale file is replaced, a live driver is not."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if os.path.exists(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # nobody listens: left by a crashed driver
        else:
            raise SocketBusy(f"another process answers on {path}; stop it first")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    sock.listen(128)
    return sock


def write_spec(spec: str, sock_path: str) -> None:
    """A plugin spec file (`unix://<socket>`), for sockets outside /run/docker/plugins."""
    os.makedirs(os.path.dirname(spec) or ".", exist_ok=True)
    tmp = spec + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"unix://{os.path.abspath(sock_path)}\n")
    os.replace(tmp, spec)


def serve(driver: Driver, sock_path: str, spec: str | None = None, **uvicorn_opts: Any) -> None:
    """Serve until SIGTERM/SIGINT; the socket (and spec file) are removed on the way out."""
    import uvicorn

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(0)

    # uvicorn shuts down on SIGTERM/SIGINT, then re-raises the signal with the previous handler: make that
    # an exit that runs the clean-up below instead of a kill that leaves the socket behind.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sock = bind_socket(sock_path)
    try:
        if spec:
            write_spec(spec, sock_path)
        config = uvicorn.Config(make_app(driver), fd=sock.fileno(), lifespan="off", access_log=False,
                                log_config=None, **uvicorn_opts)
        log.info("tpcnm listening on %s", sock_path)
        uvicorn.Server(config).run()
    finally:
        sock.close()
        for path in (sock_path, spec):
            if path:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
