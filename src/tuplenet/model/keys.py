"""Non-entity keys: 0.3's control-plane bookkeeping and the agent's liveness keys (relative to the prefix)."""

from __future__ import annotations

VERSION_KEY = "globals/version"
SCHEMA_VERSION = 1  # what 0.3 wrote; we keep the layout, so the version stays
DEVICE_IDS_KEY = "globals/device_ids"
IP_BOOK_ROOT = "ip_book/"
LIVENESS_PREFIX = "liveness/chassis/"
READY_PREFIX = "communicate/ready/"  # per-chassis port readiness reports (model/ready.py)
# Present while a multi-transaction `tpctl import` is writing. It lives under entity_view/ so agents see it
# in the same watch, ordered with the records it guards, and hold topology changes until it is deleted
# (in the import's last transaction). Not an entity: parse_key() ignores it.
IMPORT_MARKER_KEY = "entity_view/import_in_progress"


def ip_book_key(kind: str, name: str) -> str:
    """0.3's per-LS/LR set of used port ids (kind 'LS' or 'LR')."""
    return f"{IP_BOOK_ROOT}{kind}/{name}"


def liveness_key(chassis: str) -> str:
    """Lease-backed key an agent keeps while it is alive; its absence means the chassis is down."""
    return f"{LIVENESS_PREFIX}{chassis}"


def ready_key(chassis: str) -> str:
    """The chassis' report of its ports with every flow installed, under its agent's liveness lease."""
    return f"{READY_PREFIX}{chassis}"
