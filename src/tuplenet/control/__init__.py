"""Management operations on the logical topology, shared by tpctl, the HTTP API, CNI and CNM.

Never talks to OVS. Every operation validates fully, then writes in one guarded etcd transaction and retries
from a fresh read when it loses a race; errors are ControlError subclasses with one-line messages.
"""

from __future__ import annotations

from .base import Core
from .errors import (
    AlreadyExists,
    Conflict,
    ControlError,
    InvalidArgument,
    NotEmpty,
    NotFound,
    VersionMismatch,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _Service:
    """A Controller service built on its first use, importing its module then: a tpcni or `tpctl ls show` run
    loads the switch and router services it calls, not backup, edges or mirrors (each start pays every import)."""

    def __init__(self, module: str, cls: str, *needs: str) -> None:
        self.module, self.cls, self.needs = module, cls, needs
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        module = __import__(f"{__name__}.{self.module}", fromlist=[self.cls])
        service = getattr(module, self.cls)(obj.core, *(getattr(obj, n) for n in self.needs))
        obj.__dict__[self.name] = service  # later reads find the instance attribute, not this descriptor
        return service


class _Via:
    """A Controller attribute that is the same-named method of one of its services (signature and doc
    included), so the public API stays one flat object while each service keeps one job."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(getattr(obj, self.service), self.name)


class Controller:
    """All operations, composed of services with one job each around one transaction core:

    - `core` (base.Core): store, snapshot reads, plan/commit/retry, bookkeeping reads, schema version;
    - `devices` (DevicePlans): the create/delete plans switches and routers share;
    - `switches`, `routers`: ls/lsp/patch ports/IPAM, lr/lrp/lsr/lnat/link;
    - `maintenance`: chassis and toolbox; `backup`: export, import, the import marker;
    - `mirrors`: port mirrors (docs/mirroring.md).

    `store` is a tuplenet.store.Store (or anything with its get/get_prefix/txn API).
    """

    def __init__(self, store: Any, attempts: int = 16) -> None:
        self.core = Core(store, attempts)

    devices = _Service("devices", "DevicePlans")
    switches = _Service("switches", "Switches", "devices")
    routers = _Service("routers", "Routers", "devices")
    maintenance = _Service("maint", "Maintenance")
    backup = _Service("backup", "Backup")
    mirrors = _Service("mirrors", "Mirrors")
    edges = _Service("edges", "Edges")  # tpctl edge: roads to physical networks (control/edges.py)

    @property
    def store(self) -> Any:
        return self.core.store

    @property
    def warnings(self) -> list[str]:
        """Bad records skipped while listing, one line each."""
        return self.core.warnings

    # the transaction core (used by callers that compose their own plans, e.g. the CNI plugin)
    commit = _Via("core")
    ensure_version = _Via("core")
    plan_port_delete = _Via("devices")

    add_switch = _Via("switches")
    delete_switch = _Via("switches")
    list_switches = _Via("switches")
    get_switch = _Via("switches")
    add_switch_port = _Via("switches")
    add_patch_port = _Via("switches")
    delete_switch_port = _Via("switches")
    list_switch_ports = _Via("switches")
    get_switch_port = _Via("switches")
    allocate_switch_port = _Via("switches")
    set_requested_chassis = _Via("switches")

    add_router = _Via("routers")
    delete_router = _Via("routers")
    list_routers = _Via("routers")
    get_router = _Via("routers")
    link = _Via("routers")
    add_router_port = _Via("routers")
    delete_router_port = _Via("routers")
    list_router_ports = _Via("routers")
    get_router_port = _Via("routers")
    add_static_route = _Via("routers")
    delete_static_route = _Via("routers")
    list_static_routes = _Via("routers")
    get_static_route = _Via("routers")
    add_nat = _Via("routers")
    delete_nat = _Via("routers")
    list_nats = _Via("routers")
    get_nat = _Via("routers")

    list_chassis = _Via("maintenance")
    get_chassis = _Via("maintenance")
    delete_chassis = _Via("maintenance")
    sync_device_map = _Via("maintenance")
    find_ip_conflicts = _Via("maintenance")
    find_id_conflicts = _Via("maintenance")
    rebuild_ip_books = _Via("maintenance")
    @staticmethod
    def decode_id_string(b64: str) -> list[int]:
        """Members of a 0.3 bookkeeping bitmap (device ids or port ids), sorted."""
        from .maint import Maintenance

        return Maintenance.decode_id_string(b64)

    add_mirror = _Via("mirrors")
    delete_mirror = _Via("mirrors")
    list_mirrors = _Via("mirrors")
    get_mirror = _Via("mirrors")

    export_records = _Via("backup")
    import_records = _Via("backup")
    abandon_import = _Via("backup")


def __getattr__(name: str) -> Any:
    if name in ("ImportResult", "format_export", "parse_export"):
        from . import bulk

        return getattr(bulk, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AlreadyExists", "Conflict", "ControlError", "Controller", "ImportResult", "InvalidArgument", "NotEmpty",
    "NotFound", "VersionMismatch", "format_export", "parse_export",
]
