"""Management operations on the logical topology, shared by tpctl, the HTTP API, CNI and CNM.

Never talks to OVS. Every operation validates fully, then writes in one guarded etcd transaction and retries
from a fresh read when it loses a race; errors are ControlError subclasses with one-line messages.
"""

from .bulk import BulkOps, ImportResult, format_export, parse_export
from .errors import (
    AlreadyExists,
    Conflict,
    ControlError,
    InvalidArgument,
    NotEmpty,
    NotFound,
    VersionMismatch,
)


class Controller(BulkOps):
    """All operations: switches, routers, ports, routes, NAT, chassis, toolbox, export/import.

    `store` is a tuplenet.store.Store (or anything with its get/get_prefix/txn API).
    """


__all__ = [
    "AlreadyExists", "Conflict", "ControlError", "Controller", "ImportResult", "InvalidArgument", "NotEmpty",
    "NotFound", "VersionMismatch", "format_export", "parse_export",
]
