"""Core of the controller: snapshot reads, the plan/commit/retry loop, schema version and bookkeeping.

Every mutating operation is a *plan* function: it reads what it needs in one read-only transaction (one
consistent snapshot), validates, and returns the compares and ops of exactly one write transaction. If the
compares fail (someone changed what we read), the plan is re-run from a fresh read, so a lost race ends either
in success or in the precise error the new state warrants (e.g. "port exists"), never in a partial change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from tuplenet.model import (
    DEVICE_IDS_KEY,
    MAX_DEVICE_ID,
    ROOT,
    SCHEMA_VERSION,
    VERSION_KEY,
    Entity,
    ModelError,
    children_prefix,
    decode,
    entity_key,
    ip_book_key,
    parse_key,
    parse_uint,
    parse_value,
    port_id,
)
from tuplenet.model.roaring import decode_bitmap, encode_bitmap
from tuplenet.store import KV, Compare, Op

from .errors import Conflict, ControlError, InvalidArgument, NotFound, VersionMismatch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NOUN = {"LS": "switch", "LR": "router", "lsp": "switch port", "lrp": "router port", "lsr": "static route",
        "lnat": "router nat", "chassis": "chassis"}
PORT_KIND = {"LS": "lsp", "LR": "lrp"}


class Plan:
    """One write transaction and the value the operation returns once it commits."""

    __slots__ = ("compares", "ops", "result")

    def __init__(self, compares: list[Compare], ops: list[Op], result: Any = None) -> None:
        self.compares, self.ops, self.result = compares, ops, result


class PortBook:
    """Port ids in use under one LS/LR, derived from its ports; the 0.3 ip_book key is its CAS token.

    The ports in the tree are the truth (a 0.3 tree may lack ip_book keys, or carry stale ones); the book is
    rewritten from them on every change, which keeps 0.3 tools working on the same tree.
    """

    __slots__ = ("key", "kv", "used")

    def __init__(self, key: str, kv: KV | None, used: dict[int, list[str]]) -> None:
        self.key, self.kv, self.used = key, kv, used

    def guard(self) -> Compare:
        return Compare.mod_revision(self.key, "=", self.kv.mod_revision) if self.kv else Compare.missing(self.key)

    def ops(self, ids: Iterable[int]) -> list[Op]:
        ids = set(ids)
        if ids:
            return [Op.put(self.key, encode_bitmap(ids))]
        return [Op.delete(self.key)] if self.kv else []


class DeviceBook:
    """Datapath ids of all LS/LR (one shared space, 1..65535), kept in 0.3's `globals/device_ids`."""

    __slots__ = ("kv", "ids")

    def __init__(self, kv: KV | None, ids: set[int]) -> None:
        self.kv, self.ids = kv, ids

    def guard(self) -> Compare:
        kv = self.kv
        return Compare.mod_revision(DEVICE_IDS_KEY, "=", kv.mod_revision) if kv else Compare.missing(DEVICE_IDS_KEY)

    def allocate(self, taken: set[int] | None = None) -> int:
        busy = self.ids | (taken or set())
        for candidate in range(1, MAX_DEVICE_ID + 1):
            if candidate not in busy:
                return candidate
        raise Conflict("device id exhausted")

    def ops(self, ids: set[int]) -> list[Op]:
        if ids:
            return [Op.put(DEVICE_IDS_KEY, encode_bitmap(ids))]
        return [Op.delete(DEVICE_IDS_KEY)] if self.kv else []


def not_found(kind: str, ident: tuple[str, ...]) -> NotFound:
    return NotFound(f"unable to get {NOUN[kind]} {ident[-1]}: unable to read key /{entity_key(kind, ident)}: "
                    "key not found")


def record_id(value: str) -> int | None:
    """The `id=` of a raw LS/LR record as 0.3's Go parser reads it (ParseUint, 32 bits); None if unreadable."""
    try:
        return parse_uint(parse_value(value).get("id", ""), 32)
    except ModelError:
        return None


def checked(func: Callable[..., Any], *args: Any) -> Any:
    """Run a model validator, turning ModelError into InvalidArgument (the control layer's error type)."""
    try:
        return func(*args)
    except ModelError as exc:
        raise InvalidArgument(str(exc)) from None


class Core:
    """The transaction core every service shares: the store, snapshot reads, decoding with warnings, the
    bookkeeping reads, and the plan/commit/retry loop."""

    def __init__(self, store: Any, attempts: int = 32) -> None:
        self.store = store
        self.attempts = attempts
        self.warnings: list[str] = []  # bad records skipped while listing, one line each

    # ---- reads -------------------------------------------------------------------------------------------

    def read(self, *ops: Op) -> tuple[list[Any], int]:
        """Several gets/prefix reads at one revision (a read-only transaction)."""
        result = self.store.txn([], list(ops))
        return result.responses, result.revision

    def decode_kv(self, kv: KV, kind: str | None = None) -> Entity | None:
        """Entity of `kv` (of `kind` if given); bad records are remembered in `warnings` and skipped."""
        parsed = parse_key(kv.key)
        if parsed is None or (kind is not None and parsed[0] != kind):
            return None
        try:
            return decode(parsed[0], parsed[1], kv.value)
        except ModelError as exc:
            self.warnings.append(str(exc))
            return None

    def decode_all(self, kvs: Iterable[KV], kind: str) -> list[Any]:
        out = [e for kv in kvs if (e := self.decode_kv(kv, kind)) is not None]
        out.sort(key=lambda e: e.ident)
        return out

    def entity_or_raise(self, kind: str, ident: tuple[str, ...], kv: KV | None) -> Any:
        if kv is None:
            raise not_found(kind, ident)
        try:
            return decode(kind, ident, kv.value)
        except ModelError as exc:
            raise ControlError(f"bad record in etcd: {exc}") from None

    def get(self, kind: str, *ident: str) -> Any:
        return self.entity_or_raise(kind, ident, self.store.get(entity_key(kind, ident)))

    def list_top(self, kind: str) -> list[Any]:
        kvs, _ = self.store.get_prefix(f"{ROOT}{kind}/")
        return self.decode_all(kvs, kind)

    def list_children(self, parent_kind: str, parent: str, kind: str) -> list[Any]:
        """Children of one kind; the parent must exist (0.3 looked it up first, with its message)."""
        (pkv, kvs), _ = self.read(Op.get(entity_key(parent_kind, (parent,))),
                                  Op.get_prefix(children_prefix(parent_kind, parent, kind)))
        if pkv is None:
            raise not_found(parent_kind, (parent,))
        return self.decode_all(kvs, kind)

    # ---- bookkeeping -------------------------------------------------------------------------------------

    def port_book(self, parent_kind: str, parent: str, book_kv: KV | None, port_kvs: Sequence[KV]) -> PortBook:
        used: dict[int, list[str]] = {}
        for kv in port_kvs:
            parsed = parse_key(kv.key)
            if parsed is None or parsed[0] != PORT_KIND[parent_kind]:
                continue
            ip = parse_value(kv.value).get("ip", "")
            try:
                used.setdefault(port_id(ip), []).append(parsed[1][1])
            except ModelError:
                continue  # a port without a valid IP holds no port id
        return PortBook(ip_book_key(parent_kind, parent), book_kv, used)

    def device_book(self, kv: KV | None) -> DeviceBook:
        """Ids from a read of `globals/device_ids`; rebuilt from the tree when absent or unreadable (as 0.3)."""
        if kv is not None:
            try:
                return DeviceBook(kv, decode_bitmap(kv.value))
            except ModelError:
                pass
        return DeviceBook(kv, set(self.scan_device_ids().values()))

    def scan_device_ids(self) -> dict[tuple[str, str], int]:
        """(kind, name) -> id of every LS/LR in the tree, including records that are otherwise bad."""
        out: dict[tuple[str, str], int] = {}
        for kind in ("LS", "LR"):
            kvs, _ = self.store.get_prefix(f"{ROOT}{kind}/")
            for kv in kvs:
                parsed = parse_key(kv.key)
                if parsed and parsed[0] == kind and (dev_id := record_id(kv.value)) is not None:
                    out[(kind, parsed[1][0])] = dev_id
        return out

    # ---- writes ------------------------------------------------------------------------------------------

    def commit(self, plan: Callable[[], Plan]) -> Any:
        """Run `plan` and commit its transaction; on a lost race re-plan from fresh data (bounded)."""
        for attempt in range(self.attempts):
            p = plan()
            compares = [*p.compares, Compare.value(VERSION_KEY, "=", str(SCHEMA_VERSION))]
            if self.store.txn(compares, p.ops).succeeded:
                return p.result
            self.ensure_version()
            # Jittered exponential backoff (capped at 0.1 s): twenty writers racing for one switch's next free
            # address must all get through, one per round, instead of giving up together.
            import random  # only a lost race needs it: ~2 ms of every tpctl/tpcni start otherwise

            time.sleep(random.uniform(0, min(0.1, 0.002 * 2 ** attempt)))
        raise Conflict(f"gave up after {self.attempts} attempts: the data kept changing concurrently; "
                       "nothing was written")

    def ensure_version(self) -> None:
        """Create `globals/version` if missing; refuse a tree of a newer schema (compared as numbers)."""
        kv = self.store.get(VERSION_KEY)
        if kv is None:
            self.store.txn([Compare.missing(VERSION_KEY)], [Op.put(VERSION_KEY, str(SCHEMA_VERSION))])
            return
        try:
            stored = parse_uint(kv.value.strip())
        except ModelError:
            raise VersionMismatch(f"unreadable schema version in {VERSION_KEY}: {kv.value!r}") from None
        if stored > SCHEMA_VERSION:
            raise VersionMismatch(f"db accessed by higher version controller: {kv.value}, local: {SCHEMA_VERSION}")
        if kv.value != str(SCHEMA_VERSION):
            self.store.txn([Compare.mod_revision(VERSION_KEY, "=", kv.mod_revision)],
                           [Op.put(VERSION_KEY, str(SCHEMA_VERSION))])
