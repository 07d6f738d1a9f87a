"""etcd access for TupleNet over the v3 JSON gateway, standard library only (fast import, no grpc).

The only package that talks to etcd. Keys in this API are relative to the store prefix (default "/tuplenet/").
TLS and etcd users: pass `security=EtcdSecurity(...)`; clients build it with tuplenet.store.security's
add_arguments()/from_args() (etcdctl's option names and ETCDCTL_* variables).
AsyncStore/AsyncWatch are loaded on first use: importing asyncio costs ~80 ms, which the CLI must not pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .codec import normalise_prefix
from .errors import (
    AuthFailed,
    Compacted,
    LeaseExpired,
    MalformedAnswer,
    StoreError,
    TLSError,
    TxnConflict,
    Unavailable,
)
from .lease import Lease
from .security import EtcdSecurity
from .store import Store
from .transport import EtcdError
from .txn import MAX_TXN_OPS, split_ops
from .types import KV, Compare, Event, Member, Op, Status, TxnResult, WatchBatch
from .watch import Watch

if TYPE_CHECKING:
    from .aio import AsyncStore, AsyncWatch

__all__ = [
    "KV", "MAX_TXN_OPS", "AsyncStore", "AsyncWatch", "AuthFailed", "Compacted", "Compare", "EtcdError",
    "EtcdSecurity", "Event", "Lease", "LeaseExpired", "MalformedAnswer", "Member", "Op", "Status", "Store",
    "StoreError", "TLSError", "TxnConflict", "TxnResult", "Unavailable", "Watch", "WatchBatch",
    "normalise_prefix", "split_ops",
]


def __getattr__(name: str) -> Any:
    if name in ("AsyncStore", "AsyncWatch"):
        from . import aio

        return getattr(aio, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
