"""etcd over TLS with client certificates, and etcd user/password auth, against real etcd processes.

Two private etcds per module: one https-only with --client-cert-auth (certificates made here with the openssl
CLI), one with authentication enabled (root + a user "alice" whose role covers one prefix) and 2 s tokens.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_tpctl_helpers import fails, ok

from tuplenet.sandbox.etcd import EtcdServer, EtcdTLS
from tuplenet.sandbox.procs import wait_for
from tuplenet.store import (
    AuthFailed,
    Compare,
    EtcdError,
    EtcdSecurity,
    Op,
    Store,
    TLSError,
    Unavailable,
    Watch,
)

ALICE_PREFIX = "/tn-auth/"
TOKEN_TTL = 2


# ---- certificates --------------------------------------------------------------------------------------

def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ext(cwd: Path, name: str, text: str) -> str:
    (cwd / name).write_text(text + "\n")
    return name


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """CA, server certificate for 127.0.0.1, a client certificate without CN (what etcd's gateway wants),
    and an unrelated self-signed CA to play the wrong CA."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=test-ca", cwd=d)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "other.key", "-out", "other.crt",
             "-days", "2", "-subj", "/CN=other-ca", cwd=d)
    server_ext = _ext(d, "server.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                       "extendedKeyUsage=serverAuth,clientAuth")
    client_ext = _ext(d, "client.ext", "extendedKeyUsage=clientAuth")
    for name, subj, ext in (("server", "/CN=test-etcd", server_ext), ("client", "/O=tuplenet", client_ext)):
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subj, cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", "-extfile", ext, cwd=d)
    return {n: str(d / n) for n in ("ca.crt", "other.crt", "server.crt", "server.key", "client.crt",
                                    "client.key", "other.key")}


@pytest.fixture(scope="module")
def tls_etcd(pki: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    tls = EtcdTLS(pki["ca.crt"], pki["server.crt"], pki["server.key"], client_cert_auth=True,
                  client_cert=pki["client.crt"], client_key=pki["client.key"])
    server = EtcdServer(str(tmp_path_factory.mktemp("etcd-tls")), tls=tls).start()
    yield server
    server.stop()


@pytest.fixture
def tls_security(pki: dict[str, str]) -> EtcdSecurity:
    return EtcdSecurity(cacert=pki["ca.crt"], cert=pki["client.crt"], key=pki["client.key"])


# ---- an etcd with users ----------------------------------------------------------------------------------

def _gw(server: EtcdServer, path: str, body: dict) -> dict:
    req = urllib.request.Request(server.url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture(scope="module")
def auth_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """root/rootpw (root role) and alice/alicepw (readwrite on ALICE_PREFIX only); tokens live 2 s idle."""
    server = EtcdServer(str(tmp_path_factory.mktemp("etcd-auth")),
                        extra_args=["--auth-token", "simple", "--auth-token-ttl", str(TOKEN_TTL)]).start()
    for user, password in (("root", "rootpw"), ("alice", "alicepw")):
        _gw(server, "/v3/auth/user/add", {"name": user, "password": password})
    _gw(server, "/v3/auth/role/add", {"name": "root"})
    _gw(server, "/v3/auth/user/grant", {"user": "root", "role": "root"})
    _gw(server, "/v3/auth/role/add", {"name": "rw"})
    end = ALICE_PREFIX[:-1] + chr(ord(ALICE_PREFIX[-1]) + 1)
    _gw(server, "/v3/auth/role/grant", {"name": "rw", "perm": {"permType": "READWRITE", "key": _b64(ALICE_PREFIX),
                                                               "range_end": _b64(end)}})
    _gw(server, "/v3/auth/user/grant", {"user": "alice", "role": "rw"})
    _gw(server, "/v3/auth/enable", {})
    yield server
    server.stop()


ALICE = EtcdSecurity(user="alice", password="alicepw")


def _unique(base: str) -> str:
    return f"{base}{time.monotonic_ns()}/"


# ---- helpers -----------------------------------------------------------------------------------------------

class Collector:
    """Iterates a watch in a thread and records every event (key, value, revision)."""

    def __init__(self, watch: Watch) -> None:
        self.watch = watch
        self.events: list[tuple[str, str, int]] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for batch in self.watch:
                self.events.extend((e.key, e.value, e.revision) for e in batch.events)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc

    def wait(self, count: int, timeout: float = 20.0) -> list[tuple[str, str, int]]:
        wait_for(lambda: len(self.events) >= count or self.error, timeout=timeout, interval=0.02,
                 what=f"{count} watch events (have {self.events})")
        assert self.error is None, self.error
        return self.events

    def close(self) -> None:
        self.watch.close()
        self._thread.join(5)


def exercise(store: Store, key: str) -> None:
    """put / get / txn / lease / watch all work on this store."""
    watch = store.watch(key)
    seen = Collector(watch)
    try:
        wait_for(lambda: watch.revision > 0, timeout=10, what="watch created")
        rev = store.put(key + "a", "1")
        assert store.get(key + "a").value == "1"
        res = store.txn([Compare.mod_revision(key + "a", "=", rev)], [Op.put(key + "b", "2"), Op.get(key + "a")])
        assert res.succeeded and res.responses[1].value == "1"
        lease = store.lease_grant(5)
        store.put(key + "c", "3", lease=lease.id)
        assert lease.refresh() > 0
        kvs, _ = store.get_prefix(key)
        assert [(kv.key[len(key):], kv.value) for kv in kvs] == [("a", "1"), ("b", "2"), ("c", "3")]
        lease.revoke()
        assert store.get(key + "c") is None
        events = seen.wait(4)
        assert [(k[len(key):], v) for k, v, _ in events] == [("a", "1"), ("b", "2"), ("c", "3"), ("c", "")]
    finally:
        seen.close()


# ---- TLS ---------------------------------------------------------------------------------------------------

def test_tls_client_cert_put_get_txn_lease_watch(tls_etcd: EtcdServer, tls_security: EtcdSecurity) -> None:
    with Store(f"https://{tls_etcd.endpoint}", prefix="/tls/", security=tls_security) as store:
        exercise(store, _unique("x"))
    # an endpoint without a scheme means https once TLS files are given (as with etcdctl)
    with Store(tls_etcd.endpoint, prefix="/tls/", security=tls_security) as store:
        assert store.put("plain-endpoint", "ok") > 0


def test_tls_wrong_ca_is_a_clear_error(tls_etcd: EtcdServer, pki: dict[str, str]) -> None:
    bad = EtcdSecurity(cacert=pki["other.crt"], cert=pki["client.crt"], key=pki["client.key"])
    with Store(tls_etcd.endpoint, prefix="/tls/", security=bad, timeout=5) as store:
        t0 = time.monotonic()
        with pytest.raises(TLSError, match=r"certificate is not trusted.*--cacert"):
            store.get("k")
        assert time.monotonic() - t0 < 3.0  # a configuration error, not 5 s of retries


def test_tls_without_client_cert_is_a_clear_error(tls_etcd: EtcdServer, pki: dict[str, str]) -> None:
    with Store(tls_etcd.endpoint, prefix="/tls/", security=EtcdSecurity(cacert=pki["ca.crt"])) as store:
        with pytest.raises(TLSError, match=r"client certificate missing or not signed.*--cert/--key"):
            store.get("k")


def test_tls_files_that_are_not_certificates(pki: dict[str, str], tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(TLSError, match="cannot load CA certificate --cacert"):
        Store("https://127.0.0.1:1", security=EtcdSecurity(cacert=str(junk)))
    with pytest.raises(TLSError, match="cannot load client certificate --cert"):
        Store("https://127.0.0.1:1", security=EtcdSecurity(cacert=pki["ca.crt"], cert=str(junk), key=str(junk)))


def test_plain_http_to_the_tls_port_says_so(tls_etcd: EtcdServer) -> None:
    with Store(f"http://{tls_etcd.endpoint}", prefix="/tls/", timeout=1) as store:
        with pytest.raises(Unavailable, match="https"):
            store.get("k")


def test_tpctl_over_tls_flags_and_env(tls_etcd: EtcdServer, pki: dict[str, str], monkeypatch) -> None:
    prefix = _unique("/tls-tpctl")
    flags = ("--cacert", pki["ca.crt"], "--cert", pki["client.crt"], "--key", pki["client.key"])
    ok(tls_etcd, prefix, *flags, "ls", "add", "LS-A")
    assert "LS-A" in ok(tls_etcd, prefix, *flags, "ls", "show")
    fails(tls_etcd, prefix, "--cacert", pki["other.crt"], "--cert", pki["client.crt"], "--key", pki["client.key"],
          "ls", "show", match="certificate is not trusted")
    fails(tls_etcd, prefix, "--cacert", pki["ca.crt"], "ls", "show", match="client certificate missing")
    for name, value in (("ETCDCTL_CACERT", "ca.crt"), ("ETCDCTL_CERT", "client.crt"), ("ETCDCTL_KEY", "client.key")):
        monkeypatch.setenv(name, pki[value])
    ok(tls_etcd, prefix, "ls", "add", "LS-B")  # etcdctl's variables alone are enough
    out = ok(tls_etcd, prefix, "ls", "show", proc=True)  # and in a real process
    assert "LS-A" in out and "LS-B" in out


# ---- user / password ---------------------------------------------------------------------------------------

def test_auth_user_put_get_txn_lease_watch(auth_etcd: EtcdServer) -> None:
    with Store(auth_etcd.endpoint, prefix=ALICE_PREFIX, security=ALICE) as store:
        exercise(store, _unique("x"))


def test_auth_wrong_password_or_no_user(auth_etcd: EtcdServer) -> None:
    bad = EtcdSecurity(user="alice", password="nope")
    with Store(auth_etcd.endpoint, prefix=ALICE_PREFIX, security=bad) as store:
        with pytest.raises(AuthFailed, match=r"authentication as user 'alice' failed.*invalid user ID or password"):
            store.get("k")
    with Store(auth_etcd.endpoint, prefix=ALICE_PREFIX) as store:
        with pytest.raises(AuthFailed, match=r"authentication enabled; give a user with --user"):
            store.get("k")


def test_auth_outside_the_role_is_permission_denied(auth_etcd: EtcdServer) -> None:
    with Store(auth_etcd.endpoint, prefix="/elsewhere/", security=ALICE) as store:
        with pytest.raises(EtcdError, match=r"permission denied \(etcd user 'alice'\)") as info:
            store.put("k", "v")
        assert info.value.code == 7
        with pytest.raises(EtcdError, match="permission denied"):
            next(iter(store.watch("")))


def _token_expired(server: EtcdServer, token: str) -> bool:
    """Ask etcd with `token`; a refused token is expired. (A request it accepts renews the token's ttl, so
    callers poll more slowly than the ttl.)"""
    req = urllib.request.Request(server.url + "/v3/kv/range", json.dumps({"key": _b64(ALICE_PREFIX)}).encode(),
                                 {"Content-Type": "application/json", "Authorization": token})
    try:
        with urllib.request.urlopen(req, timeout=5):
            return False
    except urllib.error.HTTPError as exc:
        return exc.code == 401


def test_token_expiry_during_a_watch_resumes_without_loss(auth_etcd: EtcdServer) -> None:
    key = _unique("w")
    with Store(auth_etcd.endpoint, prefix=ALICE_PREFIX, security=ALICE) as watcher, \
            Store(auth_etcd.endpoint, prefix=ALICE_PREFIX, security=ALICE) as writer:
        watch = watcher.watch(key)
        seen = Collector(watch)
        try:
            wait_for(lambda: watch.revision > 0, timeout=10, what="watch created")
            writer.put(key + "1", "a")
            seen.wait(1)
            token = watcher._t.auth.token()
            # etcd drops an unused token TTL..TTL+1 s after its last use (1 s sweep); polling every TTL+1.5 s
            # sees it gone on the first poll after the one that last renewed it
            wait_for(lambda: _token_expired(auth_etcd, token), timeout=30, interval=TOKEN_TTL + 1.5,
                     what="the watcher's token to expire")
            # the stream outlives its token; cut it as a network failure would, then keep writing
            watch.reconnect()
            writer.put(key + "2", "b")
            writer.put(key + "3", "c")
            events = seen.wait(3)
            time.sleep(0.3)  # nothing more may arrive (no replays)
            assert [(k[len(key):], v) for k, v, _ in seen.events] == [("1", "a"), ("2", "b"), ("3", "c")]
            assert [r for _, _, r in events] == sorted({r for _, _, r in events})
            assert watch.reconnects >= 1 and watcher._t.auth.renewals >= 1
            assert watcher.put(key + "4", "d") > 0  # unary calls renew too
            seen.wait(4)
        finally:
            seen.close()


def test_etcd_restart_drops_tokens_watch_and_calls_recover(auth_etcd: EtcdServer) -> None:
    key = _unique("r")
    with Store(auth_etcd.endpoint, prefix=ALICE_PREFIX, security=ALICE, timeout=10) as store:
        watch = store.watch(key)
        seen = Collector(watch)
        try:
            wait_for(lambda: watch.revision > 0, timeout=10, what="watch created")
            store.put(key + "1", "a")
            seen.wait(1)
            auth_etcd.restart()  # simple tokens live in memory: every token is gone
            with Store(auth_etcd.endpoint, prefix=ALICE_PREFIX, security=ALICE) as writer:
                writer.put(key + "2", "b")
            assert store.put(key + "3", "c") > 0
            seen.wait(3)
            time.sleep(0.3)
            assert [(k[len(key):], v) for k, v, _ in seen.events] == [("1", "a"), ("2", "b"), ("3", "c")]
            assert store._t.auth.renewals >= 1
        finally:
            seen.close()


def test_tpctl_with_user_flags_and_env(auth_etcd: EtcdServer, monkeypatch) -> None:
    prefix = _unique(ALICE_PREFIX + "tp")
    ok(auth_etcd, prefix, "--user", "alice:alicepw", "ls", "add", "LS-A")
    ok(auth_etcd, prefix, "--user", "alice", "--password", "alicepw", "lsp", "add", "LS-A", "p1", "10.0.0.2")
    assert "LS-A" in ok(auth_etcd, prefix, "--user", "alice:alicepw", "ls", "show")
    fails(auth_etcd, prefix, "--user", "alice:bad", "ls", "show", match="authentication as user 'alice' failed")
    fails(auth_etcd, prefix, "ls", "show", match="give a user with --user")
    fails(auth_etcd, prefix, "--user", "alice", "ls", "show", match="no password for etcd user 'alice'")
    monkeypatch.setenv("ETCDCTL_USER", "alice")
    monkeypatch.setenv("ETCDCTL_PASSWORD", "alicepw")
    assert "p1" in ok(auth_etcd, prefix, "lsp", "show", "LS-A", proc=True)



# ---- the agent -------------------------------------------------------------------------------------------

def _agent(sim_net, tmp_path: Path, etcd: EtcdServer, *extra: str, env: dict[str, str] | None = None):
    import os
    import sys

    hv = sim_net.add_host("hv1", "192.168.100.2") if "hv1" not in sim_net.hosts else sim_net["hv1"]
    run_env = {**hv.env, "TUPLENET_RUNDIR": str(tmp_path / "run"), "TUPLENET_OVSDB_PATH": hv.db_sock,
               "ONDEMAND": "0", "PATH": os.environ.get("PATH", ""), **(env or {})}
    return subprocess.run([sys.executable, "-m", "tuplenet.agent.main", "-f", hv.ip, "-a", etcd.endpoint,
                           "-p", ALICE_PREFIX, *extra], env=run_env, capture_output=True, text=True, timeout=60)


def test_agent_refuses_to_start_with_bad_credentials(sim_net, tmp_path: Path, auth_etcd: EtcdServer,
                                                     tls_etcd: EtcdServer, pki: dict[str, str]) -> None:
    r = _agent(sim_net, tmp_path, auth_etcd, "--user", "alice:wrong")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "tuplenet: cannot read the topology from etcd" in r.stderr
    assert "authentication as user 'alice' failed" in r.stderr
    r = _agent(sim_net, tmp_path, tls_etcd, env={"ETCDCTL_CACERT": pki["other.crt"], "ETCDCTL_CERT": pki["client.crt"],
                                                 "ETCDCTL_KEY": pki["client.key"]})
    assert r.returncode == 1 and "certificate is not trusted" in r.stderr and "Traceback" not in r.stderr
    r = _agent(sim_net, tmp_path, tls_etcd, "--cacert", str(tmp_path / "missing.crt"))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("tuplenet: cannot load CA certificate --cacert")
