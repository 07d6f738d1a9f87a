"""tpcnm's HTTP side without a host: routing as dockerd calls it, and the plugin socket's life cycle."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat

import pytest
from test_cnm_driver import make_driver

from tuplenet.cnm.protocol import CONTENT_TYPE
from tuplenet.cnm.server import SocketBusy, bind_socket, make_app, write_spec


def asgi_post(app, path: str, body: bytes, server: tuple) -> tuple[int, dict]:
    """One request as uvicorn hands it over from a unix socket: scope["server"] is (socket path, None)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": [],
             "server": server, "client": None}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert (b"content-type", CONTENT_TYPE.encode()) in start["headers"]
    return start["status"], json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))


def test_routes_by_path_as_served_on_a_unix_socket(tmp_path):
    d, _ = make_driver()
    app = make_app(d)
    server = (str(tmp_path / "tuplenet.sock"), None)  # what made request.url garbled: every call unsupported
    assert asgi_post(app, "/Plugin.Activate", b"", server) == (200, {"Implements": ["NetworkDriver", "IpamDriver"]})
    status, answer = asgi_post(app, "/NetworkDriver.DeleteNetwork", b'{"NetworkID": "abc"}', server)
    assert status == 200 and answer["Err"].startswith("network abc not found")
    assert asgi_post(app, "/NetworkDriver.CreateNetwork", b"{oops", server)[0] == 400
    assert asgi_post(app, "/Nope", b"{}", server)[0] == 404


def test_socket_is_private_replaces_a_stale_file_and_refuses_a_live_one(tmp_path):
    path = str(tmp_path / "plugins" / "tuplenet.sock")
    first = bind_socket(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(SocketBusy, match="another process answers on"):
        bind_socket(path)
    first.close()  # the file stays behind, as after a crash
    second = bind_socket(path)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.connect(path)
    probe.close()
    second.close()


def test_spec_file_points_at_the_socket(tmp_path):
    spec = tmp_path / "etc" / "tuplenet.spec"
    write_spec(str(spec), "/run/tn/tuplenet.sock")
    assert spec.read_text() == "unix:///run/tn/tuplenet.sock\n"
