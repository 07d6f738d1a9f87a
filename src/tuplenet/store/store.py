"""Store: the synchronous etcd API of TupleNet. Keys are relative to the prefix; values are text."""

from __future__ import annotations

import os
import threading
import weakref
from binascii import a2b_base64
from collections.abc import Callable, Sequence

from .codec import (
    b64,
    decode_kv,
    decode_op_response,
    decoding,
    encode_compare,
    encode_op,
    kv_size,
    normalise_prefix,
    range_fields,
    to_bytes,
)
from .errors import Compacted, LeaseExpired, StoreError
from .security import EtcdSecurity
from .transport import GRPC_NOT_FOUND, EtcdError, Transport
from .txn import check_txn_size, split_ops
from .types import KV, Compare, Member, Op, Status, TxnResult

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .lease import Lease
    from .watch import Watch

# get_prefix starts small and then sizes pages so one answer carries about this many bytes of keys+values.
PAGE_TARGET_BYTES = 4 << 20
FIRST_PAGE = 8  # values may be up to ~1.5 MiB; learn their size before asking for many
# Every page costs etcd 3.4 a walk of the whole rest of the range (it counts it for the answer): 22.6k keys
# take 150 ms in pages of 1,000 but 63 ms in pages of 5,000. Bigger pages were tried and taken back: a page
# is sized from the records before it, and small records followed by big ones (lsps sort before address
# sets) made a 5,000-key page of big records ~45x the byte target (tests/unit/test_store_page_bytes.py).
PAGE_SIZE = 1000
RELIST_ATTEMPTS = 3
TRANSPORTS = ("json", "grpc")


class Store:
    """Connection to an etcd cluster (v3 JSON gateway) under one key prefix; thread-safe.

    endpoints: "h:p,h:p" or a list; "https://h:p" (or any endpoint when `security` has TLS files) uses TLS.
    The endpoint that answered last is tried first, then the others, until `timeout` seconds have passed (then
    Unavailable). Reads are linearizable. `security` carries CA, client certificate and etcd user (see
    tuplenet.store.security); a bad certificate file raises TLSError here, bad credentials AuthFailed on use.
    `transport`: "json" (the gateway, standard library only: fast start for CLIs) or "grpc" (etcd's native
    API: far cheaper watches for etcd, and what etcd grpc-proxy serves); None reads TUPLENET_ETCD_TRANSPORT
    (default "json").
    """

    def __init__(self, endpoints: str | Sequence[str] = "127.0.0.1:2379", prefix: str = "/tuplenet/",
                 timeout: float = 5.0, security: EtcdSecurity | None = None,
                 transport: str | None = None) -> None:
        self.prefix = normalise_prefix(prefix)
        self.timeout = timeout
        self._pfx = to_bytes(self.prefix)
        self._plen = len(self._pfx)
        kind = transport or os.environ.get("TUPLENET_ETCD_TRANSPORT") or "json"
        if kind not in TRANSPORTS:
            raise StoreError(f"unknown etcd transport {kind!r}: use one of {', '.join(TRANSPORTS)}")
        self.transport = kind
        self._watch_class: type[Watch] | None = None  # the JSON gateway's Watch, imported on first watch()
        if kind == "grpc":
            from .grpc_transport import GrpcTransport  # grpc is imported only by those who ask for it
            from .grpc_watch import GrpcWatch

            self._t = GrpcTransport(endpoints, timeout, security)  # type: ignore[assignment]
            self._watch_class = GrpcWatch
        else:
            self._t = Transport(endpoints, timeout, security)
        self._watches: weakref.WeakSet[Watch] = weakref.WeakSet()
        self._leases: weakref.WeakSet[Lease] = weakref.WeakSet()

    @property
    def endpoints(self) -> list[str]:
        return list(self._t.names)

    def __repr__(self) -> str:
        return f"Store({','.join(self._t.names)!r}, prefix={self.prefix!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def preconnect(self) -> None:
        """Start opening a connection to etcd on a thread and return at once: a short-lived client (tpcni)
        overlaps the TCP (and TLS) handshake with the rest of its start-up, and its first request finds the
        connection ready. Failures are left to that request. gRPC channels connect on first use: no-op."""
        start = getattr(self._t, "preconnect", None)
        if start is not None:
            threading.Thread(target=start, name="etcd-preconnect", daemon=True).start()

    def close(self) -> None:
        """Close connections, end open watches and stop lease keepalives started from this store."""
        for watch in list(self._watches):
            watch.close()
        for lease in list(self._leases):
            lease.stop()
        self._t.close()

    # ---- reads -------------------------------------------------------------------------------------------

    def _full(self, key: str) -> bytes:
        return self._pfx + to_bytes(key)

    def get(self, key: str) -> KV | None:
        answer = self._t.call("/v3/kv/range", range_fields(self._full(key), False))
        with decoding("/v3/kv/range"):
            kvs = answer.get("kvs")
            return decode_kv(kvs[0], self._plen) if kvs else None

    def revision(self) -> int:
        """The current store revision (a cheap count-only read)."""
        answer = self._t.call("/v3/kv/range", {**range_fields(self._pfx, True), "count_only": True})
        return _header_revision(answer)

    def _range_page(self, full_prefix: bytes, start: bytes | None, limit: int,
                    revision: int) -> dict[str, Any]:
        body: dict[str, Any] = {**range_fields(full_prefix, True), "limit": str(limit)}
        if start is not None:
            body["key"] = b64(start)
        if revision:
            body["revision"] = str(revision)
        return self._t.call("/v3/kv/range", body)

    def get_prefix_page(self, key_prefix: str = "", after: str | None = None, limit: int = 1000,
                        revision: int = 0) -> tuple[list[KV], int, bool]:
        """Up to `limit` keys under key_prefix that sort after `after`, at `revision` (0 = now).

        Returns (kvs, revision of the store now, more). Raises Compacted if `revision` was compacted.
        """
        start = None if after is None else self._full(after) + b"\x00"
        answer = self._range_page(self._full(key_prefix), start, limit, revision)
        plen = self._plen
        with decoding("/v3/kv/range"):
            kvs = [decode_kv(kv, plen) for kv in answer.get("kvs", ())]
            return kvs, _header_revision(answer), bool(answer.get("more"))

    def get_prefix(self, key_prefix: str = "", page_size: int = PAGE_SIZE,
                   on_page: Callable[[list[KV], bool], None] | None = None) -> tuple[list[KV], int]:
        """Every key under key_prefix, sorted by key, all read at one revision; returns (kvs, revision).

        Read in pages of at most page_size keys pinned to the first page's revision, so no answer gets huge
        (pages shrink further when values are big). The next page is fetched while this one is decoded, and
        while `on_page(page, first)` looks at it (a caller's own decoding overlaps etcd's work on the next
        page). If the revision is compacted mid-read, the read starts over (up to 3 times): `first` is True
        on the first page of each attempt, so a caller forgets what it saw before.
        """
        if page_size < 1:
            raise StoreError("page_size must be at least 1")
        for attempt in range(RELIST_ATTEMPTS):
            try:
                with decoding("/v3/kv/range"):
                    return self._read_all(self._full(key_prefix), page_size, on_page)
            except Compacted:
                if attempt == RELIST_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _read_all(self, full_prefix: bytes, page_size: int,
                  on_page: Callable[[list[KV], bool], None] | None = None) -> tuple[list[KV], int]:
        plen = self._plen
        out: list[KV] = []
        first = True
        answer = self._range_page(full_prefix, None, min(page_size, FIRST_PAGE), 0)
        revision = _header_revision(answer)
        while True:
            raw = answer.get("kvs", ())
            pending = None
            if answer.get("more") and raw:
                sample = raw[:: max(1, len(raw) // 16)]
                avg = sum(kv_size(kv) for kv in sample) / len(sample) + 64
                limit = max(1, min(page_size, int(PAGE_TARGET_BYTES / avg)))
                last = raw[-1]
                start = (last[0] if type(last) is tuple else a2b_base64(last["key"])) + b"\x00"
                pending = _Background(self._range_page, full_prefix, start, limit, revision)
            page = [decode_kv(kv, plen) for kv in raw]
            out.extend(page)
            if on_page is not None:
                on_page(page, first)
                first = False
            if pending is None:
                return out, revision
            answer = pending.result()

    # ---- writes ------------------------------------------------------------------------------------------

    def put(self, key: str, value: str, lease: int | None = None) -> int:
        """Write one key; returns the revision of the write. LeaseExpired if `lease` no longer exists."""
        body: dict[str, Any] = {**range_fields(self._full(key), False), "value": b64(to_bytes(value))}
        if lease:
            body["lease"] = str(lease)
        try:
            answer = self._t.call("/v3/kv/put", body)
        except EtcdError as exc:
            if lease and exc.code == GRPC_NOT_FOUND:
                raise LeaseExpired(lease) from exc
            raise
        return _header_revision(answer)

    def delete(self, key: str) -> int:
        """Delete one key; returns how many keys were deleted (0 or 1)."""
        answer = self._t.call("/v3/kv/deleterange", range_fields(self._full(key), False))
        with decoding("/v3/kv/deleterange"):
            return int(answer.get("deleted", 0))

    def delete_prefix(self, key_prefix: str) -> int:
        """Delete every key under key_prefix ("" = everything under the store prefix); returns the count."""
        answer = self._t.call("/v3/kv/deleterange", range_fields(self._full(key_prefix), True))
        with decoding("/v3/kv/deleterange"):
            return int(answer.get("deleted", 0))

    def txn(self, compares: Sequence[Compare], success: Sequence[Op],
            failure: Sequence[Op] = ()) -> TxnResult:
        """One atomic transaction: if every compare holds run `success`, else `failure`.

        At most 128 compares and 128 ops per branch (StoreError otherwise). A txn with compares is not retried
        once it may have reached etcd (a retry could see its own write as a conflict): Unavailable then says
        the outcome is unknown.
        """
        body = self._txn_body(compares, success, failure)
        read_only = all(op.kind in ("get", "get_prefix") for op in (*success, *failure))
        answer = self._t.call("/v3/kv/txn", body, idempotent=read_only or not compares)
        return self._txn_result(answer, success, failure)

    def txn_start(self, compares: Sequence[Compare], success: Sequence[Op],
                  done: Callable[[TxnResult | None, Exception | None], None]) -> bool:
        """txn() without waiting for the answer: the request leaves at once, with no thread of the caller's
        to wake (gRPC transport only). done(result, None) or done(None, error) runs on a transport thread.
        One attempt: failover, token renewal and retries are txn()'s, so a caller whose `done` sees an error
        goes there. False if it could not be sent this way (nothing was sent): use txn()."""
        start = getattr(self._t, "start", None)
        if start is None:
            return False
        body = self._txn_body(compares, success, ())

        def finished(answer: dict | None, error: Exception | None) -> None:
            if error is None:
                try:
                    result = self._txn_result(answer or {}, success, ())
                except StoreError as exc:
                    error = exc
                else:
                    done(result, None)
                    return
            done(None, error)

        return bool(start("/v3/kv/txn", body, finished))

    def _txn_body(self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]) -> dict:
        check_txn_size(compares, success, failure)
        pfx = self._pfx
        return {"compare": [encode_compare(c, pfx) for c in compares],
                "success": [encode_op(op, pfx) for op in success],
                "failure": [encode_op(op, pfx) for op in failure]}

    def _txn_result(self, answer: dict, success: Sequence[Op], failure: Sequence[Op]) -> TxnResult:
        with decoding("/v3/kv/txn"):
            succeeded = bool(answer.get("succeeded", False))
            revision = _header_revision(answer)
            ops = success if succeeded else failure
            responses = [decode_op_response(op, resp, self._plen, revision)
                         for op, resp in zip(ops, answer.get("responses", ()), strict=False)]
            return TxnResult(succeeded, revision, responses)

    def txn_batches(self, ops: Sequence[Op], compares: Sequence[Compare] = ()) -> list[TxnResult]:
        """Run many ops as consecutive transactions of at most 128 ops (and ~1 MiB) each.

        Atomicity is per batch only: a reader may see the first batches applied and not the rest. `compares`
        guard the first batch only; if they fail, nothing is written and the result list holds that one failed
        TxnResult. Batches are also cut where etcd would reject a key written twice in one txn.
        """
        results: list[TxnResult] = []
        for i, batch in enumerate(split_ops(ops)):
            result = self.txn(compares if i == 0 else (), batch)
            results.append(result)
            if not result.succeeded:
                break
        return results

    def compact(self, revision: int, physical: bool = False) -> None:
        """Drop history before `revision`; compacting at or below an earlier compaction is a no-op."""
        try:
            self._t.call("/v3/kv/compaction", {"revision": str(revision), "physical": physical})
        except Compacted:
            pass

    # ---- watch, leases, cluster --------------------------------------------------------------------------

    def watch(self, key_prefix: str = "", start_revision: int = 0, progress_notify: bool = True) -> Watch:
        """Iterator of WatchBatch for changes under key_prefix from start_revision (<= 0: from now on).

        Reconnects and resumes by itself; raises Compacted if start_revision (or the resume point) is gone.
        """
        if self._watch_class is None:  # watch and lease (and logging with them) load on first use: a CLI needs none
            from .watch import Watch

            self._watch_class = Watch
        watch = self._watch_class(self._t, self._pfx, key_prefix, start_revision, progress_notify)
        self._watches.add(watch)
        return watch

    def lease_grant(self, ttl: int) -> Lease:
        from .lease import Lease, grant

        lease = Lease(self._t, grant(self._t, ttl), ttl)
        self._leases.add(lease)
        return lease

    def lease(self, lease_id: int, ttl: int) -> Lease:
        """A handle on an existing lease (e.g. one recorded before a restart)."""
        from .lease import Lease

        lease = Lease(self._t, lease_id, ttl)
        self._leases.add(lease)
        return lease

    def status(self) -> Status:
        """Status of the endpoint that answered."""
        answer = self._t.call("/v3/maintenance/status", {})
        with decoding("/v3/maintenance/status"):
            header = answer.get("header", {})
            return Status(self._t.names[self._t.preferred], str(answer.get("version", "")),
                          int(answer.get("dbSize", 0)), int(answer.get("leader", 0)),
                          int(header.get("member_id", 0)), int(header.get("revision", 0)),
                          int(answer.get("raftTerm", header.get("raft_term", 0))))

    def members(self) -> list[Member]:
        answer = self._t.call("/v3/cluster/member/list", {})
        with decoding("/v3/cluster/member/list"):
            return [Member(int(m.get("ID", 0)), str(m.get("name", "")), [str(u) for u in m.get("peerURLs", ())],
                           [str(u) for u in m.get("clientURLs", ())]) for m in answer.get("members", ())]


class _Background:
    """Run one call in a daemon thread (prefetching the next page); result() re-raises its exception."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self._value = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to result()
            self._error = exc

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def _header_revision(answer: dict[str, Any]) -> int:
    with decoding("header"):
        return int(answer.get("header", {}).get("revision", 0))
