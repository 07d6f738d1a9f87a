"""Store exceptions: one base class so callers can catch every etcd problem in one place."""

from __future__ import annotations

# gRPC status codes etcd puts in its error answers ("code").
GRPC_INVALID_ARGUMENT = 3
GRPC_NOT_FOUND = 5
GRPC_PERMISSION_DENIED = 7
GRPC_OUT_OF_RANGE = 11
GRPC_UNAVAILABLE = 14
GRPC_UNAUTHENTICATED = 16


class StoreError(Exception):
    """Any failure talking to etcd; the message is one line meant for an operator."""


class Unavailable(StoreError):
    """No endpoint answered within the deadline (or the outcome of a write is unknown)."""

    def __init__(self, message: str, endpoints: list[str] | None = None) -> None:
        super().__init__(message)
        self.endpoints = list(endpoints or [])


class Compacted(StoreError):
    """The requested revision was compacted away; re-list with get_prefix and watch from its revision + 1."""

    def __init__(self, compact_revision: int, message: str | None = None) -> None:
        super().__init__(message or f"revision compacted: oldest revision still kept is {compact_revision}")
        self.compact_revision = compact_revision


class TxnConflict(StoreError):
    """A transaction's compares did not hold (someone else changed the keys); raised by TxnResult.ensure()."""

    def __init__(self, message: str, revision: int = 0) -> None:
        super().__init__(message)
        self.revision = revision


class LeaseExpired(StoreError):
    """The lease no longer exists in etcd (expired or revoked); its keys are gone."""

    def __init__(self, lease_id: int) -> None:
        super().__init__(f"lease {lease_id:x} not found (expired or revoked)")
        self.lease_id = lease_id


class AuthFailed(StoreError):
    """etcd refused our credentials: wrong user or password, or etcd needs a user and none was given."""


class TLSError(StoreError):
    """TLS could not be set up: a certificate file is unusable, etcd's certificate is not trusted (--cacert),
    or etcd refused our client certificate (--cert/--key)."""


class MalformedAnswer(StoreError):
    """etcd (or whatever answers on its port) sent something this client cannot decode."""
