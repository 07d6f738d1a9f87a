"""Pure logical model of TupleNet: entities, validation, the 0.3 etcd key/value codec, ids. No I/O."""

from .addr import (
    MAX_DEVICE_ID,
    PATCH_PORT_IP,
    PATCH_PORT_MAC,
    ModelError,
    derive_mac,
    int_to_ip,
    ip_to_int,
    is_ip,
    network_of,
    normalize_ip,
    normalize_mac,
    parse_cidr,
    parse_device_id,
    parse_prefix,
    parse_tick,
    parse_uint,
    port_id,
    validate_name,
)
from .codec import decode, decode_kv, parse_value
from .entities import (
    CHILD_KINDS,
    ENTITY_TYPES,
    LNAT,
    LR,
    LRP,
    LS,
    LSP,
    LSR,
    ROOT,
    Chassis,
    Entity,
    children_prefix,
    entity_key,
    format_value,
    parse_key,
)
from .ipam import first_free_ip, subnet_range
from .keys import (
    DEVICE_IDS_KEY,
    IMPORT_MARKER_KEY,
    IP_BOOK_ROOT,
    LIVENESS_PREFIX,
    SCHEMA_VERSION,
    VERSION_KEY,
    ip_book_key,
    liveness_key,
)

__all__ = [
    "CHILD_KINDS", "DEVICE_IDS_KEY", "ENTITY_TYPES", "IMPORT_MARKER_KEY", "IP_BOOK_ROOT", "LIVENESS_PREFIX", "LNAT", "LR", "LRP", "LS", "LSP", "LSR",
    "MAX_DEVICE_ID", "PATCH_PORT_IP", "PATCH_PORT_MAC", "ROOT", "SCHEMA_VERSION", "VERSION_KEY", "Chassis",
    "Entity", "ModelError", "children_prefix", "decode", "decode_kv", "derive_mac", "entity_key",
    "first_free_ip", "format_value", "int_to_ip", "ip_book_key", "ip_to_int", "is_ip", "liveness_key",
    "network_of", "normalize_ip", "normalize_mac", "parse_cidr", "parse_device_id", "parse_key", "parse_prefix",
    "parse_tick", "parse_uint", "parse_value", "port_id", "subnet_range", "validate_name",
]
