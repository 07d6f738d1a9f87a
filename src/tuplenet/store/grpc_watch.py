"""The resuming watch over etcd's gRPC Watch stream (one bidirectional stream per watch).

Only the connection differs from the gateway watch (tuplenet.store.watch.Watch): resume from last + 1,
dropping replayed events, compaction -> Compacted, token renewal, bad answers counted and resumed, close() and
reconnect() from any thread are inherited. Events are decoded straight from protobuf into Event/KV objects.
"""

from __future__ import annotations

import logging
import threading
from binascii import a2b_base64
from collections.abc import Iterator
from typing import Any

import grpc

from .codec import WatchMessage
from .errors import GRPC_PERMISSION_DENIED, MalformedAnswer, StoreError
from .etcdpb import rpc_pb2 as pb
from .grpc_transport import GrpcTransport, rpc_error
from .transport import EtcdError, one_line
from .types import KV, Event
from .watch import Watch, _StreamEnded

log = logging.getLogger("tuplenet.store")
WATCH = "/etcdserverpb.Watch/Watch"
_KINDS = ("PUT", "DELETE")


def watch_message(resp: pb.WatchResponse, plen: int) -> WatchMessage:
    """One WatchResponse -> WatchMessage with the store prefix cut off the keys (MalformedAnswer if odd)."""
    events = []
    append = events.append
    for ev in resp.events:
        kind = ev.type
        if kind != 0 and kind != 1:
            raise MalformedAnswer(f"etcd Watch: unknown event type {kind}")
        kv = ev.kv
        append(Event(_KINDS[kind], KV(kv.key[plen:].decode("utf-8", "surrogateescape"),
                                      kv.value.decode("utf-8", "surrogateescape"), kv.mod_revision,
                                      kv.create_revision, kv.version, kv.lease)))
    return WatchMessage(events, resp.header.revision, resp.created, resp.canceled, resp.compact_revision,
                        resp.cancel_reason)


class _Stream:
    """One open Watch call and the event that ends its request iterator (gRPC reads it in its own thread)."""

    def __init__(self, call: Any, stop: threading.Event) -> None:
        self.call = call
        self.stop = stop

    def end(self) -> None:
        self.stop.set()
        self.call.cancel()


class GrpcWatch(Watch):
    """Watch over gRPC; same iteration contract as Watch (see there)."""

    _transport: GrpcTransport

    def __init__(self, transport: GrpcTransport, prefix: bytes, key_prefix: str, start_revision: int,
                 progress_notify: bool = True) -> None:
        super().__init__(transport, prefix, key_prefix, start_revision,  # type: ignore[arg-type]
                         progress_notify)
        self._key = a2b_base64(self._range["key"])
        self._end = a2b_base64(self._range["range_end"])

    def reconnect(self) -> None:
        with self._lock:
            stream = self._conn
        if stream is not None:
            stream.end()  # type: ignore[attr-defined]

    def _drop(self, conn: Any) -> None:
        with self._lock:
            if self._conn is conn:
                self._conn = None
        conn.end()

    def _connect(self) -> tuple[Any, Any]:  # type: ignore[override]
        start = self._last + 1 if self._last is not None else 0
        request = pb.WatchRequest(create_request=pb.WatchCreateRequest(
            key=self._key, range_end=self._end, start_revision=start, progress_notify=self._progress_notify))
        metadata = self._headers()
        transport = self._transport
        errors = []
        for index in transport.rotation():
            if self._closed.is_set():
                raise _StreamEnded("closed")
            name = transport.names[index]
            try:
                channel = transport.channel(index)
            except StoreError:  # the store closed under us
                if self._closed.is_set():
                    raise _StreamEnded("closed") from None
                raise
            patience = transport.attempt_timeout(transport.timeout)
            stop = threading.Event()
            call = channel.stream_stream(WATCH, request_serializer=pb.WatchRequest.SerializeToString,
                                         response_deserializer=pb.WatchResponse.FromString)(
                _requests(request, stop), metadata=metadata)
            stream = _Stream(call, stop)
            with self._lock:
                self._conn = stream  # type: ignore[assignment]
            if self._closed.is_set():
                self._drop(stream)
                raise _StreamEnded("closed")
            # an unreachable endpoint fails the call at once (UNAVAILABLE); one that never answers the create
            # is cut after `patience`
            timer = threading.Timer(patience, call.cancel)
            timer.start()
            try:
                first = next(call)
            except StopIteration:
                self._drop(stream)
                errors.append(f"{name}: stream closed")
                continue
            except grpc.RpcError as exc:
                self._drop(stream)
                self._refused(exc)
                errors.append(f"{name}: {one_line(exc.details() or exc.code().name)}")
                continue
            finally:
                timer.cancel()
            transport.preferred = index
            return stream, (first, call)
        raise _StreamEnded("; ".join(errors) or "no endpoint")

    def _refused(self, exc: grpc.RpcError) -> None:
        """A stream etcd ended for our credentials: renew the token, or end the watch with the reason."""
        err = rpc_error("Watch", exc)
        auth = self._transport.auth
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED or auth.rejected(err):
            if auth.user:
                self._stale = self._token
                raise _StreamEnded(str(err), renew=True)
            self.close()
            raise auth.explain(err)
        if exc.code() == grpc.StatusCode.PERMISSION_DENIED:
            self.close()
            raise auth.explain(EtcdError(str(err), GRPC_PERMISSION_DENIED))

    def _messages(self, resp: Any) -> Iterator[WatchMessage]:  # type: ignore[override]
        first, call = resp
        plen = self._plen
        try:
            yield watch_message(first, plen)
            for answer in call:
                yield watch_message(answer, plen)
        except grpc.RpcError as exc:
            if self._closed.is_set():
                raise _StreamEnded("closed") from None
            self._refused(exc)
            raise _StreamEnded(one_line(exc.details() or exc.code().name)) from None
        raise _StreamEnded("stream closed by etcd")


def _requests(request: pb.WatchRequest, stop: threading.Event) -> Iterator[pb.WatchRequest]:
    """The create request, then nothing until the stream ends (ending the iterator half-closes the stream)."""
    yield request
    stop.wait()
