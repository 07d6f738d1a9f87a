"""Auth of the HTTP API: bearer token on every operation (401), read-only tokens (403 on writes), refused
requests change nothing; TLS and mTLS (client certificate required); start-up option errors."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys

import pytest
from test_api_helpers import (  # noqa: F401  (fixtures)
    Client,
    api_fixture,
    api_server,
    client_fixture,
    err,
    make_ca,
    make_cert,
    ok,
    prefix_fixture,
)

from tuplenet.api.proc import ApiProcess

SAMPLE = {"switch": "ls1", "router": "lr1", "port": "p1", "name": "n1", "chassis": "hv1", "mirror": "m1",
          "device": "ls1", "lb": "lb1", "parent": "ls1", "acl": "a1"}


def operations(client: Client) -> list[tuple[str, str]]:
    """(method, path under /api/v2) of every operation in the served OpenAPI document."""
    doc = ok(client.get("/openapi.json"))
    out = []
    for path, item in doc["paths"].items():
        concrete = re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], path).removeprefix("/api/v2")
        out += [(method.upper(), concrete) for method in item]
    assert len(out) == 73
    return out


def test_every_operation_needs_a_valid_token(client, api):
    ops = operations(client)
    anon = Client(api, token=None)
    try:
        for method, path in ops + [("GET", "/openapi.json"), ("GET", "/no/such/path"), ("PUT", "/switches")]:
            for token in (None, "wrong", api.token + "x", api.token[:-1], " ", "Bearer"):
                r = anon.request(method, path, body={"name": "x"}, token=token)
                err(r, 401, "missing or invalid bearer token", "unauthorized")
                assert r.headers["www-authenticate"].startswith("Bearer")
        # Another scheme with the right secret is refused too.
        anon.conn.request("GET", "/api/v2/switches", headers={"Authorization": f"Basic {api.token}"})
        resp = anon.conn.getresponse()
        assert (resp.status, resp.read()) == (401, b'{"error": "missing or invalid bearer token", '
                                                   b'"kind": "unauthorized"}')
    finally:
        anon.close()
    assert client.get("/export").text.count("\n") == 1  # header only: nothing was written


def test_read_only_token(client, api):
    reader = Client(api, token=api.read_token)
    try:
        for method, path in operations(client):
            r = reader.request(method, path, body={"name": "x"})
            if method == "GET":
                assert r.status not in (401, 403), (method, path, r.body)
            else:
                err(r, 403, "this token may only read", "forbidden")
        ok(client.post("/switches", {"name": "ls1"}), 201)
        assert ok(reader.get("/switches")) == [{"name": "ls1", "id": 1}]
        err(reader.delete("/switches/ls1"), 403)
        assert ok(reader.get("/switches")) == [{"name": "ls1", "id": 1}]
    finally:
        reader.close()
    # Every refused write left the tree as it was: only ls1 exists.
    assert [ln.split("\t")[0] for ln in client.get("/export").text.splitlines()[1:]] == ["entity_view/LS/ls1"]


def _run_main(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TUPLENET_API_")}
    return subprocess.run([sys.executable, "-m", "tuplenet.api.main", *args], capture_output=True, text=True,
                          timeout=60, env={**base, **(env or {})})


def test_start_up_option_errors_are_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("# no tokens here\n\n")
    cases = [
        ((), "no API token configured"),
        (("--token-file", str(tmp_path / "missing")), "No such file"),
        (("--token-file", str(empty)), "no token in the file"),
        (("--listen", "localhost"), "--listen wants HOST:PORT"),
        (("--tls-cert", str(empty)), "--tls-cert and --tls-key go together"),
        (("--tls-cert", str(tmp_path / "a"), "--tls-key", str(tmp_path / "b")), "no such file"),
    ]
    for args, message in cases:
        env = {"TUPLENET_API_TOKEN": "t"} if args and args[0] != "--token-file" else {}
        proc = _run_main(*args, env=env)
        assert proc.returncode == 2 and proc.stdout == "", (args, proc)
        assert len(proc.stderr.splitlines()) == 1 and message in proc.stderr, (args, proc.stderr)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, str]:
    d = str(tmp_path_factory.mktemp("api-pki"))
    ca = make_ca(d, "ca")
    other_ca = make_ca(d, "other-ca")
    server = make_cert(d, "server", ca, server=True)
    good = make_cert(d, "client", ca, server=False)
    stranger = make_cert(d, "stranger", other_ca, server=False)
    return {"ca": ca[0], "cert": server[0], "key": server[1], "client_cert": good[0], "client_key": good[1],
            "stranger_cert": stranger[0], "stranger_key": stranger[1]}


def _tls_get(api: ApiProcess, pki: dict[str, str], cert: str | None, key: str | None, token: str | None) -> int:
    ctx = ssl.create_default_context(cafile=pki["ca"])
    if cert:
        ctx.load_cert_chain(cert, key)
    import http.client

    conn = http.client.HTTPSConnection("127.0.0.1", api.port, timeout=10, context=ctx)
    try:
        conn.request("GET", "/api/v2/switches", headers={"Authorization": f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_tls_without_client_certificates(etcd, pki, tmp_path):
    tls = {"cert": pki["cert"], "key": pki["key"], "ca": pki["ca"]}
    api = ApiProcess(str(tmp_path / "api"), etcd.endpoint, "/tls-test/", tls=tls).start()
    try:
        assert _tls_get(api, pki, None, None, api.token) == 200
        assert _tls_get(api, pki, None, None, None) == 401
        # Plain HTTP to the TLS port gets no API answer.
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            conn.request("GET", "/api/v2/switches", headers={"Authorization": f"Bearer {api.token}"})
            conn.getresponse().read()
        conn.close()
    finally:
        api.stop()


def test_mtls_requires_a_client_certificate_from_the_ca(etcd, pki, tmp_path):
    tls = {"cert": pki["cert"], "key": pki["key"], "client_ca": pki["ca"], "ca": pki["ca"],
           "client_cert": pki["client_cert"], "client_key": pki["client_key"]}
    api = ApiProcess(str(tmp_path / "api"), etcd.endpoint, "/mtls-test/", tls=tls).start()
    try:
        assert _tls_get(api, pki, pki["client_cert"], pki["client_key"], api.token) == 200
        assert _tls_get(api, pki, pki["client_cert"], pki["client_key"], None) == 401  # the token still counts
        for cert, key in ((None, None), (pki["stranger_cert"], pki["stranger_key"])):
            with pytest.raises((ssl.SSLError, ConnectionError)):
                _tls_get(api, pki, cert, key, api.token)
        assert _tls_get(api, pki, pki["client_cert"], pki["client_key"], api.token) == 200  # still serving
    finally:
        api.stop()
