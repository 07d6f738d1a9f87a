"""Value types of the store API: plain slotted dataclasses, cheap to build on the watch hot path."""

from __future__ import annotations

from ..records import dataclass, field
from .errors import StoreError, TxnConflict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

_OPERATORS = {"=": "EQUAL", "==": "EQUAL", "!=": "NOT_EQUAL", "<": "LESS", ">": "GREATER"}


@dataclass(slots=True)
class KV:
    """One key as etcd holds it; `key` is relative to the store prefix, `value` is text."""

    key: str
    value: str
    mod_revision: int
    create_revision: int = 0
    version: int = 0
    lease: int = 0


@dataclass(slots=True)
class Event:
    """A change, type "PUT" or "DELETE"; on DELETE kv.value is "" and kv.mod_revision is the delete's."""

    type: str
    kv: KV

    @property
    def key(self) -> str:
        return self.kv.key

    @property
    def value(self) -> str:
        return self.kv.value

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


@dataclass(slots=True)
class WatchBatch:
    """Events of one watch response, in revision order.

    `revision` means "every change up to and including this revision has been delivered": the last event's
    mod_revision, or the store revision of a progress notification (then `events` is empty). Resuming a
    watch at `revision + 1` therefore never loses or repeats an event.
    """

    events: list[Event]
    revision: int


@dataclass(slots=True)
class TxnResult:
    """Outcome of one atomic transaction.

    `responses` has one entry per executed op: Op.put -> revision (int), Op.delete/delete_prefix -> number
    deleted (int), Op.get -> KV | None, Op.get_prefix -> list[KV].
    """

    succeeded: bool
    revision: int
    responses: list[Any] = field(default_factory=list)

    def ensure(self, what: str = "transaction") -> TxnResult:
        """Self if the compares held, else TxnConflict (for callers that treat a lost race as an error)."""
        if not self.succeeded:
            raise TxnConflict(f"{what}: conflicting concurrent change, nothing was written", self.revision)
        return self


def _operator(op: str) -> str:
    try:
        return _OPERATORS[op]
    except KeyError:
        raise StoreError(f"bad compare operator {op!r}; use one of = != < >") from None


@dataclass(frozen=True, slots=True)
class Compare:
    """A txn guard on one key (relative to the prefix). target: VERSION, CREATE, MOD, VALUE or LEASE."""

    key: str
    target: Literal["VERSION", "CREATE", "MOD", "VALUE", "LEASE"]
    result: Literal["EQUAL", "NOT_EQUAL", "LESS", "GREATER"]
    operand: int | str

    @classmethod
    def value(cls, key: str, op: str, value: str) -> Compare:
        return cls(key, "VALUE", _operator(op), value)

    @classmethod
    def version(cls, key: str, op: str, version: int) -> Compare:
        """Version 0 means the key does not exist."""
        return cls(key, "VERSION", _operator(op), int(version))

    @classmethod
    def mod_revision(cls, key: str, op: str, revision: int) -> Compare:
        return cls(key, "MOD", _operator(op), int(revision))

    @classmethod
    def create_revision(cls, key: str, op: str, revision: int) -> Compare:
        return cls(key, "CREATE", _operator(op), int(revision))

    @classmethod
    def lease(cls, key: str, op: str, lease_id: int) -> Compare:
        return cls(key, "LEASE", _operator(op), int(lease_id))

    @classmethod
    def missing(cls, key: str) -> Compare:
        return cls(key, "VERSION", "EQUAL", 0)

    @classmethod
    def exists(cls, key: str) -> Compare:
        return cls(key, "VERSION", "GREATER", 0)


@dataclass(frozen=True, slots=True)
class Op:
    """One txn operation on a key relative to the prefix: put, delete, delete_prefix, get or get_prefix."""

    kind: Literal["put", "delete", "delete_prefix", "get", "get_prefix"]
    key: str
    value: str = ""
    lease: int | None = None

    @classmethod
    def put(cls, key: str, value: str, lease: int | None = None) -> Op:
        return cls("put", key, value, lease)

    @classmethod
    def delete(cls, key: str) -> Op:
        return cls("delete", key)

    @classmethod
    def delete_prefix(cls, key_prefix: str) -> Op:
        return cls("delete_prefix", key_prefix)

    @classmethod
    def get(cls, key: str) -> Op:
        return cls("get", key)

    @classmethod
    def get_prefix(cls, key_prefix: str) -> Op:
        return cls("get_prefix", key_prefix)


@dataclass(frozen=True, slots=True)
class Status:
    """What one endpoint reports about itself (maintenance/status)."""

    endpoint: str
    version: str
    db_size: int
    leader: int
    member_id: int
    revision: int
    raft_term: int


@dataclass(frozen=True, slots=True)
class Member:
    """One cluster member (cluster/member/list)."""

    id: int
    name: str
    peer_urls: list[str]
    client_urls: list[str]
