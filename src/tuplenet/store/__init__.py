"""etcd access for TupleNet over the v3 JSON gateway, standard library only (fast import, no grpc).

The only package that talks to etcd. Keys in this API are relative to the store prefix (default "/tuplenet/").
TLS and etcd users: pass `security=EtcdSecurity(...)`; clients build it with tuplenet.store.security's
add_arguments()/from_args() (etcdctl's option names and ETCDCTL_* variables).
AsyncStore/AsyncWatch are loaded on first use: importing asyncio costs ~80 ms, which the CLI must not pay.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .aio import AsyncStore, AsyncWatch
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

# Names are loaded on first use (PEP 562): `tuplenet.store.security` or `.errors` alone (tpctl's option parsing,
# the CNI plugin's error handling) must not import the HTTP client, the watch and logging with them.
_HOME = {
    "AsyncStore": "aio", "AsyncWatch": "aio", "normalise_prefix": "codec", "Lease": "lease",
    "EtcdSecurity": "security", "Store": "store", "EtcdError": "transport", "MAX_TXN_OPS": "txn",
    "split_ops": "txn", "Watch": "watch",
    **dict.fromkeys(("AuthFailed", "Compacted", "LeaseExpired", "MalformedAnswer", "StoreError", "TLSError",
                     "TxnConflict", "Unavailable"), "errors"),
    **dict.fromkeys(("KV", "Compare", "Event", "Member", "Op", "Status", "TxnResult", "WatchBatch"), "types"),
}

__all__ = [
    "KV", "MAX_TXN_OPS", "AsyncStore", "AsyncWatch", "AuthFailed", "Compacted", "Compare", "EtcdError",
    "EtcdSecurity", "Event", "Lease", "LeaseExpired", "MalformedAnswer", "Member", "Op", "Status", "Store",
    "StoreError", "TLSError", "TxnConflict", "TxnResult", "Unavailable", "Watch", "WatchBatch",
    "normalise_prefix", "split_ops",
]


def _submodule(name: str) -> object:
    """tuplenet.store.`name`, imported with the builtin: importlib (and the warnings module it loads) cost
    ~0.5 ms of every tpctl/tpcni start."""
    full = f"{__name__}.{name}"
    __import__(full)
    return sys.modules[full]


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        if not name.startswith("_"):
            try:  # a submodule reached as an attribute (tuplenet.store.transport after `import tuplenet.store`)
                return _submodule(name)
            except ModuleNotFoundError as exc:
                if exc.name != f"{__name__}.{name}":
                    raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_submodule(home), name)
    globals()[name] = value
    return value
