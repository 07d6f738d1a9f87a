"""etcd's native gRPC API as a Store transport: the same call()/auth/failover contract as the JSON gateway.

Why: a gRPC watch costs etcd far less CPU per event per watcher than the gateway's (the gateway is a
gRPC client inside etcd that re-encodes every event as JSON), and etcd's grpc-proxy - the fan-out tier for
thousands of agents - serves gRPC only. The long-running agent uses this; tpctl keeps the gateway (no grpc
import on its path).

call(path, body) takes and returns the gateway's JSON shapes (base64 bytes, int64 as text), so Store, Lease
and txn encoding are shared with the gateway transport; the conversion is protobuf's JSON mapping, which is
the one the gateway itself uses. Range answers, the bulk of a cold start, are converted by a faster hand loop.
Retry rule as for the gateway: a call that never reached etcd (no connection) fails over to the next
endpoint; one that may have reached it is retried only if `idempotent`, else Unavailable says the outcome is
unknown. A token etcd refuses is renewed once (the refused call did not run).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from .auth import Auth, token_refused
from .endpoints import parse_endpoints
from .errors import (
    GRPC_UNAUTHENTICATED,
    GRPC_UNAVAILABLE,
    Compacted,
    MalformedAnswer,
    StoreError,
    TLSError,
    Unavailable,
)
from .etcdpb import rpc_pb2 as pb
from .grpc_messages import KEEPALIVE, METHODS, _Method, parse_request
from .security import EtcdSecurity
from .transport import (
    _CERT_REFUSED,
    BACKOFF_MAX,
    BACKOFF_MIN,
    TLS_PASSES,
    EtcdError,
    authenticate,
    one_line,
)

MAX_ANSWER = 256 << 20
_TLS_WORDS = ("ssl", "handshake", "certificate", "tls")
# Channel options: each Store its own connection (simulated agents in one process must not share one), fast
# reconnects, and keepalive pings no more often than etcd's default --grpc-keepalive-min-time (5 s) allows.
CHANNEL_OPTIONS = (
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.max_receive_message_length", MAX_ANSWER),
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.enable_retries", 0),
    ("grpc.http2.bdp_probe", 0),  # no bandwidth-probe PINGs for etcd to answer on every burst of watch events
)


def _stub(ch: grpc.Channel, method: _Method) -> Any:
    return ch.unary_unary(method.name, request_serializer=method.request.SerializeToString,
                          response_deserializer=method.response.FromString, _registered_method=True)


class _Retry(Exception):
    def __init__(self, message: str, tls: bool = False) -> None:
        super().__init__(message)
        self.tls = tls


def rpc_error(path: str, exc: grpc.RpcError) -> StoreError:
    """A failed call as the gateway transport would report it (EtcdError with the code, Compacted...)."""
    code = exc.code() if hasattr(exc, "code") else None
    details = one_line(str(exc.details() if hasattr(exc, "details") else exc) or "")
    number = code.value[0] if isinstance(code, grpc.StatusCode) else 0
    if code == grpc.StatusCode.OUT_OF_RANGE and "compacted" in details:
        return Compacted(0, f"etcd {path}: {details}")
    return EtcdError(f"etcd {path}: {details or (code.name if code else 'error')}", number)


def _never_sent(exc: grpc.RpcError) -> bool:
    """UNAVAILABLE raised by the client for want of a connection: the request never left this process."""
    if exc.code() != grpc.StatusCode.UNAVAILABLE:
        return False
    details = (exc.details() or "").lower()
    return not details.startswith("etcdserver") and ("connect" in details or "dns" in details
                                                      or any(w in details for w in _TLS_WORDS))


class GrpcTransport:
    """One gRPC channel per endpoint, the request loop with failover, and the auth token (in metadata)."""

    def __init__(self, endpoints: str | Sequence[str], timeout: float = 5.0,
                 security: EtcdSecurity | None = None) -> None:
        self.security = security or EtcdSecurity()
        self.endpoints = parse_endpoints(endpoints, self.security.tls)
        self.names = [f"{h}:{p}" if ":" not in h else f"[{h}]:{p}" for h, p, _ in self.endpoints]
        self.timeout = timeout
        self.preferred = 0
        self._creds = self._credentials() if any(e.tls for e in self.endpoints) else None
        self.auth = Auth(self.security, self._authenticate)
        self._channels: list[grpc.Channel | None] = [None] * len(self.endpoints)
        self._lock = threading.Lock()
        self._closed = False

    def _credentials(self) -> grpc.ChannelCredentials:
        sec = self.security
        sec.ssl_context()  # TLSError naming the file now if a file is missing or not a certificate

        def read(path: str | None) -> bytes | None:
            if not path:
                return None
            with open(path, "rb") as f:
                return f.read()

        return grpc.ssl_channel_credentials(read(sec.cacert), read(sec.key), read(sec.cert))

    def channel(self, index: int) -> grpc.Channel:
        with self._lock:
            if self._closed:
                raise StoreError("store is closed")
            ch = self._channels[index]
            if ch is None:
                host, port, tls = self.endpoints[index]
                target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                if tls:
                    ch = grpc.secure_channel(target, self._creds, options=CHANNEL_OPTIONS)
                else:
                    ch = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
                self._channels[index] = ch
            return ch

    def rotation(self) -> list[int]:
        n, start = len(self.endpoints), self.preferred
        return [(start + k) % n for k in range(n)]

    def attempt_timeout(self, budget: float) -> float:
        if len(self.endpoints) == 1:
            return budget
        return max(1.0, budget / len(self.endpoints))

    def headers(self, token: str | None) -> tuple[tuple[str, str], ...]:
        """gRPC metadata carrying the auth token (etcd reads it from the "token" key)."""
        return (("token", token),) if token else ()

    # ---- calls -------------------------------------------------------------------------------------------

    def call(self, path: str, body: dict[str, Any], idempotent: bool = True,
             timeout: float | None = None) -> dict[str, Any]:
        """The gateway's call(): `body` and the answer in the gateway's JSON shapes; one re-auth on a refused
        token."""
        return self.auth.send(lambda token, t: self.request(path, body, idempotent, t, token), EtcdError, timeout)

    def request(self, path: str, body: dict[str, Any], idempotent: bool = True, timeout: float | None = None,
                token: str | None = None) -> dict[str, Any]:
        if path == "/v3/lease/keepalive":
            return self._failover(path, lambda ch, t, md: self._keepalive(ch, body, t, md), idempotent,
                                  timeout, token)
        method = METHODS.get(path)
        if method is None:
            raise StoreError(f"etcd {path}: not available over gRPC")
        req = parse_request(body, method.request)

        def once(ch: grpc.Channel, t: float, md: tuple[tuple[str, str], ...]) -> dict[str, Any]:
            return method.convert(_stub(ch, method)(req, timeout=t, metadata=md))

        return self._failover(path, once, idempotent, timeout, token)

    def start(self, path: str, body: dict[str, Any],
              done: Callable[[dict[str, Any] | None, Exception | None], None]) -> bool:
        """Send a unary request without waiting: gRPC's core writes it from the calling thread, so a caller
        that must not block still gets it out at once. One attempt on the preferred endpoint; done(answer,
        None) or done(None, error) runs on a gRPC thread. False, with nothing sent, when a token would first
        have to be fetched (a network round trip) or the path is not served."""
        method = METHODS.get(path)
        token = self.auth.cached()
        if method is None or (self.auth.user and token is None):
            return False
        req = parse_request(body, method.request)
        future = _stub(self.channel(self.preferred), method).future(
            req, timeout=self.attempt_timeout(self.timeout), metadata=self.headers(token))

        def finished(f: grpc.Future) -> None:
            try:
                answer = method.convert(f.result())
            except grpc.RpcError as exc:
                done(None, rpc_error(path, exc))
            except Exception as exc:  # noqa: BLE001 - cancelled, or an answer that does not decode
                done(None, StoreError(f"etcd {path}: {one_line(str(exc)) or type(exc).__name__}"))
            else:
                done(answer, None)

        future.add_done_callback(finished)
        return True

    def _keepalive(self, ch: grpc.Channel, body: dict[str, Any], t: float,
                   md: tuple[tuple[str, str], ...]) -> dict[str, Any]:
        """One LeaseKeepAlive round trip on a short stream, answered in the gateway's {"result": ...}
        shape."""
        try:
            lease_id = int(body["ID"])
        except (KeyError, TypeError, ValueError):
            raise StoreError("lease keepalive: bad lease id") from None
        stream = ch.stream_stream(KEEPALIVE, request_serializer=pb.LeaseKeepAliveRequest.SerializeToString,
                                  response_deserializer=pb.LeaseKeepAliveResponse.FromString)
        answered = threading.Event()  # the request side stays open until the answer: grpc-proxy cancels a
        # keepalive stream whose client half-closed before it answered

        def requests() -> Any:
            yield pb.LeaseKeepAliveRequest(ID=lease_id)
            answered.wait(t)

        responses = stream(requests(), timeout=t, metadata=md)
        try:
            resp = next(responses)
        except StopIteration:
            raise MalformedAnswer("etcd lease keepalive: the stream ended without an answer") from None
        finally:
            answered.set()
            responses.cancel()
        return {"result": {"ID": str(resp.ID), "TTL": str(resp.TTL)}}

    def _failover(self, path: str, once: Callable[..., dict[str, Any]], idempotent: bool,
                  timeout: float | None, token: str | None) -> dict[str, Any]:
        budget = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        per_attempt = self.attempt_timeout(budget)
        md = self.headers(token)
        failures: dict[str, str] = {}
        delay = BACKOFF_MIN
        tls_passes = 0
        while True:
            tls_only = True
            for index in self.rotation():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    tls_only = False
                    break
                try:
                    answer = self._attempt(path, index, once, min(remaining, per_attempt), idempotent, md)
                except _Retry as exc:
                    failures[self.names[index]] = str(exc)
                    tls_only &= exc.tls
                    if index == self.preferred:
                        self.preferred = (index + 1) % len(self.endpoints)
                    continue
                self.preferred = index
                return answer
            tls_passes = tls_passes + 1 if tls_only else 0
            if tls_passes >= TLS_PASSES:
                raise TLSError(f"etcd TLS failed: {'; '.join(f'{n}: {w}' for n, w in failures.items())}")
            if time.monotonic() + delay >= deadline:
                detail = "; ".join(f"{n}: {w}" for n, w in failures.items())
                raise Unavailable(f"etcd unavailable: no answer from {', '.join(self.names)} within "
                                  f"{budget:g}s" + (f" ({detail})" if detail else ""), self.names)
            time.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def _attempt(self, path: str, index: int, once: Callable[..., dict[str, Any]], t: float, idempotent: bool,
                 md: tuple[tuple[str, str], ...]) -> dict[str, Any]:
        ch = self.channel(index)
        try:
            return once(ch, t, md)
        except grpc.RpcError as exc:
            code = exc.code()
            details = one_line(exc.details() or "")
            if _never_sent(exc):
                why, tls = describe_connect_failure(details, self.endpoints[index].tls)
                raise _Retry(why, tls) from None
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                        grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN) \
                    and not (code == grpc.StatusCode.UNKNOWN and details.startswith("etcdserver")):
                why = "timed out" if code == grpc.StatusCode.DEADLINE_EXCEEDED else (details or code.name)
                if idempotent:
                    raise _Retry(why) from None
                raise Unavailable(f"etcd {path} on {self.names[index]}: {why}; the outcome of this write is "
                                  "unknown", self.names) from None
            err = rpc_error(path, exc)
            if code == grpc.StatusCode.UNAUTHENTICATED or token_refused(details):
                err.code = GRPC_UNAUTHENTICATED  # type: ignore[attr-defined]
            raise err from None
        except ValueError as exc:  # a peer's bytes that protobuf cannot decode
            raise MalformedAnswer(f"etcd {path}: malformed answer ({one_line(str(exc), 160)})") from None

    def _authenticate(self, user: str, password: str, timeout: float | None) -> str:
        return authenticate(self.request, user, password, timeout)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            channels, self._channels = self._channels, [None] * len(self.endpoints)
        for ch in channels:
            if ch is not None:
                ch.close()


def describe_connect_failure(details: str, tls: bool) -> tuple[str, bool]:
    """What gRPC's connect failure says to an operator, and whether it is a TLS configuration problem."""
    low = details.lower()
    if "certificate_verify_failed" in low or "certificate verify failed" in low:
        reason = "unknown CA"
        if "CERTIFICATE_VERIFY_FAILED: " in details:
            reason = details.rsplit(": ", 1)[-1][:120]
        return f"etcd's certificate is not trusted: {reason} (check --cacert)", True
    if tls and ("unwrap failed" in low or "certificate required" in low or "bad certificate" in low
                or "socket closed" in low and "handshake" not in low):
        return _CERT_REFUSED, True
    if tls and "handshake" in low:
        return (f"TLS handshake failed ({details[-160:]}): is this endpoint serving https? "
                "(check --cert/--key)", True)
    if not tls and "socket closed" in low:
        return f"{details[-160:]} (is it an https endpoint? give it as https://)", False
    return details or "unavailable", False


assert GRPC_UNAVAILABLE == grpc.StatusCode.UNAVAILABLE.value[0]
