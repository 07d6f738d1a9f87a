"""Address and name validation for the logical model.

Hand-written IPv4/MAC parsing instead of the `ipaddress` module: tpctl must start fast, and 0.3 records
only ever hold dotted-quad IPv4 and colon MACs, so the general parser buys nothing.
"""

from __future__ import annotations

from _socket import inet_aton as _inet_aton  # the C functions socket re-exports, without its enum set-up
from _socket import inet_ntoa as _inet_ntoa

PATCH_PORT_IP = "255.255.255.255"
PATCH_PORT_MAC = "ff:ff:ff:ff:ff:ee"
MAX_DEVICE_ID = 65535  # 0.3 datapath id space (shared by LS and LR)

_HEX = frozenset("0123456789abcdefABCDEF")


class ModelError(ValueError):
    """A record or an argument that does not describe a valid logical object; the message is one line."""


def ip_to_int(ip: str) -> int:
    """Dotted-quad IPv4 -> int; raises ModelError (leading zeros are refused, as Go's net.ParseIP does)."""
    try:  # fast path (the agent decodes tens of thousands of records): canonical text round-trips
        packed = _inet_aton(ip)
        if _inet_ntoa(packed) == ip:
            return int.from_bytes(packed, "big")
    except (OSError, TypeError, ValueError):
        pass
    parts = ip.split(".") if isinstance(ip, str) else ()
    if len(parts) != 4:
        raise ModelError(f"invalid IP: {ip}")
    value = 0
    for part in parts:
        if not part.isascii() or not part.isdigit() or len(part) > 3 or (len(part) > 1 and part[0] == "0"):
            raise ModelError(f"invalid IP: {ip}")
        octet = int(part)
        if octet > 255:
            raise ModelError(f"invalid IP: {ip}")
        value = (value << 8) | octet
    return value


def int_to_ip(value: int) -> str:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ModelError(f"invalid IPv4 integer: {value}")
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def normalize_ip(ip: str) -> str:
    """Validated canonical text of an IPv4 address."""
    try:  # fast path (tens of thousands of records at an agent's start): canonical text round-trips
        if _inet_ntoa(_inet_aton(ip)) == ip:
            return ip
    except (OSError, TypeError, ValueError):
        pass
    return int_to_ip(ip_to_int(ip.strip() if isinstance(ip, str) else ip))


def is_ip(text: str) -> bool:
    try:
        ip_to_int(text)
    except ModelError:
        return False
    return True


def normalize_mac(mac: str) -> str:
    """Six-octet MAC (":" or "-" separated, any case) -> lower-case colon form; else ModelError.

    The message keeps Go's net.ParseMAC wording ("address X: invalid MAC address") that 0.3 printed.
    """
    text = mac.strip() if isinstance(mac, str) else ""
    if len(text) == 17 and text[2::3] == ":::::":  # fast path: the usual colon form
        try:
            if len(bytes.fromhex(text.replace(":", ""))) == 6:
                return text.lower()
        except ValueError:
            pass
    sep = ":" if ":" in text else "-"
    parts = text.split(sep)
    if len(parts) != 6 or any(len(p) != 2 or not set(p) <= _HEX for p in parts):
        raise ModelError(f"address {mac}: invalid MAC address")
    return ":".join(parts).lower()


def parse_uint(text: str, bits: int = 64) -> int:
    """Go's strconv.ParseUint(text, 10, bits), which 0.3 used for every number in a record.

    ASCII digits only: no sign, no "_", no inner spaces, no other Unicode digits (Python's int() takes
    "+2_4" and "１０"; Go refuses both). Leading zeros are fine, as in Go.
    """
    if not isinstance(text, str) or not text or not text.isascii() or not text.isdigit():
        raise ModelError(f"not an unsigned decimal number: {text!r}")
    digits = text.lstrip("0") or "0"
    if len(digits) > 20 or int(digits) >> bits:  # the length check keeps int() away from huge strings
        raise ModelError(f"value out of range for {bits} bits: {text}")
    return int(digits)


def _number(text: str | int, what: str, bits: int, lo: int, hi: int) -> int:
    try:
        value = text if type(text) is int else parse_uint(text.strip() if isinstance(text, str) else text, bits)
    except ModelError:
        raise ModelError(f"invalid {what}: {text}") from None
    if not lo <= value <= hi:
        raise ModelError(f"invalid {what}: {text} (must be {lo}-{hi})")
    return value


def parse_prefix(text: str | int) -> int:
    """Prefix length 0-32 (Go: uint8 field parsed with ParseUint)."""
    return _number(text, "prefix length", 8, 0, 32)


def parse_cidr(cidr: str) -> tuple[str, int]:
    """'10.0.0.1/24' -> ('10.0.0.1', 24): the address itself, not the network (0.3 keeps the host part)."""
    text = cidr.strip() if isinstance(cidr, str) else ""
    ip, sep, plen = text.partition("/")
    try:
        if not sep:
            raise ModelError(cidr)
        return normalize_ip(ip), parse_prefix(plen)
    except ModelError:
        raise ModelError(f"invalid CIDR address: {cidr}") from None


def network_of(ip: str, prefix: int) -> int:
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return ip_to_int(ip) & mask


def port_id(ip: str | int) -> int:
    """The 16-bit port id 0.3 derives from a port's IP (its lower 16 bits); unique per LS/LR."""
    return (ip if isinstance(ip, int) else ip_to_int(ip)) & 0xFFFF


def derive_mac(ip: str) -> str:
    """0.3's default MAC for a port without one: f2:01 followed by the four IP octets."""
    v = ip_to_int(ip)
    return "f2:01:" + ":".join(f"{(v >> s) & 255:02x}" for s in (24, 16, 8, 0))


def validate_name(name: str) -> str:
    """Trimmed object name or ModelError, with 0.3's messages.

    Beyond 0.3, "," is refused: names end up inside `peer=` values, where a comma would split the record.
    Control characters are refused so names survive the one-record-per-line export format.
    """
    if not isinstance(name, str):
        raise ModelError("a name is required")
    if "/" in name:
        raise ModelError('"/" is not allowed')
    trimmed = name.strip()
    if not trimmed:
        raise ModelError("string provided contains only spaces")
    if "," in trimmed:
        raise ModelError('"," is not allowed')
    if any(ord(c) < 32 or ord(c) == 127 for c in trimmed):
        raise ModelError("control characters are not allowed in names")
    return trimmed


def parse_device_id(text: str | int) -> int:
    """LS/LR datapath id 1-65535 (Go: uint32 field parsed with ParseUint)."""
    return _number(text, "id", 32, 1, MAX_DEVICE_ID)


def parse_tick(text: str | int) -> int:
    """Chassis registration tick (Go: uint64 field parsed with ParseUint)."""
    return _number(text, "tick", 64, 0, (1 << 64) - 1)
