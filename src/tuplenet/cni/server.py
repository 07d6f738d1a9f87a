"""`tpcni serve`: an optional per-host helper that keeps the plugin's modules loaded (OVN-Kubernetes' and
Cilium's CNI servers work the same way).

A plugin run costs mostly the import of the control layer and the store, every time. When the network config's
`serverSocket` (default /run/tuplenet/tpcni.sock) exists, the executable only forwards its environment and stdin
over that unix socket and prints the answer: the same `handle` runs in the server, in a thread per request.
If the socket is absent or refuses the connection, the plugin runs in-process as usual; once a request was
sent it is never retried in-process (an ADD must not run twice), a lost answer is a CNI error instead.
"""

from __future__ import annotations

import os
import sys

DEFAULT_SOCKET = "/run/tuplenet/tpcni.sock"
FORWARDED = ("TUPLENET_OVSDB_PATH", "OVS_RUNDIR", "TPCNI_TRACE")  # besides CNI_* and ETCDCTL_*


def socket_path(data: bytes) -> str | None:
    """The server socket named by the config on stdin, if it exists (cheap: no validation here)."""
    from tuplenet.store.jsonlite import loads

    try:
        conf = loads(data)
    except (ValueError, RecursionError):
        return None
    path = conf.get("serverSocket", DEFAULT_SOCKET) if isinstance(conf, dict) else None
    return path if isinstance(path, str) and path and os.path.exists(path) else None


def forward(path: str, environ: dict[str, str], data: bytes) -> tuple[int, str, str] | None:
    """(exit status, stdout, stderr) from the server; None if it cannot be reached (run in-process then)."""
    import json  # only with a server socket present: a plugin run without one must not pay for these
    import socket

    env = {k: v for k, v in environ.items() if k.startswith(("CNI_", "ETCDCTL_")) or k in FORWARDED}
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError:
        s.close()
        return None
    try:
        s.settimeout(660)  # above readinessTimeout's maximum plus etcd retries: the server answers first
        s.sendall(json.dumps({"env": env, "stdin": data.decode("latin-1")}).encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        reply = json.loads(b"".join(chunks))
        return int(reply["status"]), str(reply["stdout"]), str(reply["stderr"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"tpcni server {path} did not answer: {exc}"
        return 1, json.dumps({"cniVersion": "1.0.0", "code": 11, "msg": msg}) + "\n", f"tpcni: {msg}\n"
    finally:
        s.close()


def serve(path: str) -> None:
    """Answer requests on `path` until killed (threads; the plugin's work is I/O and subprocesses)."""
    import json
    import socketserver

    from . import plugin  # noqa: F401  (load everything once, before the first request)
    from .main import render

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            try:
                req = json.loads(self.rfile.read())
                env, data = dict(req["env"]), str(req["stdin"]).encode("latin-1")
            except (ValueError, KeyError, TypeError):
                return
            status, out, err = render(env, data)
            sys.stderr.write(f"tpcni: {env.get('CNI_COMMAND')} {env.get('CNI_CONTAINERID', '')} "
                             f"{env.get('CNI_IFNAME', '')} -> {status}\n")
            self.wfile.write(json.dumps({"status": status, "stdout": out, "stderr": err}).encode())

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    if os.path.exists(path):
        os.unlink(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    old = os.umask(0o077)  # root only: a request can create ports
    try:
        server = Server(path, Handler)
    finally:
        os.umask(old)
    sys.stderr.write(f"tpcni: serving on {path}\n")
    server.serve_forever()
