"""OpenFlow 1.4 meters: meter-mod, meter config and meter statistics (pure functions over bytes).

Meters carry no cookie, so ours are told apart by id: the top 16 bits hold our tag (0x7470, as in flow
cookies). The agent adds, modifies and deletes only ids in that range; meters of other software are left
alone.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from ...records import NamedTuple

OFPT_METER_MOD = 29
OFPMC_ADD = 0
OFPMC_MODIFY = 1
OFPMC_DELETE = 2
OFPMF_KBPS = 1
OFPMF_PKTPS = 2
OFPMF_BURST = 4
OFPMF_STATS = 8
OFPMBT_DROP = 1
OFPM_ALL = 0xFFFFFFFF
OFPMP_METER = 9
OFPMP_METER_CONFIG = 10

METER_TAG = 0x7470
METER_TAG_SHIFT = 16

_METER_MOD = struct.Struct("!BBHIHHI")  # header + command, flags, meter_id
_BAND_DROP = struct.Struct("!HHII4x")
_MP_METER_REQ = struct.Struct("!BBHIHH4xI4x")
_CONFIG = struct.Struct("!HHI")  # length, flags, meter_id
_STATS = struct.Struct("!IH6xIQQII")  # meter_id, len, flow_count, packets in, bytes in, duration
_BAND_STATS = struct.Struct("!QQ")


class MeterSpec(NamedTuple):
    """A packets-per-second meter with one drop band: `rate` packets/s, bursts of up to `burst`."""

    meter_id: int
    rate: int
    burst: int

    @property
    def flags(self) -> int:
        return OFPMF_PKTPS | OFPMF_BURST | OFPMF_STATS

    def text(self) -> str:
        """`ovs-ofctl add-meter` syntax."""
        return f"meter={self.meter_id},pktps,burst,stats,bands=type=drop,rate={self.rate},burst_size={self.burst}"


class MeterConfig(NamedTuple):
    """One entry of a meter config reply: flags and (band type, rate, burst) per band."""

    meter_id: int
    flags: int
    bands: tuple[tuple[int, int, int], ...]

    def spec(self) -> MeterSpec | None:
        """The MeterSpec this config equals, or None if it is not one we would have written."""
        if self.flags != OFPMF_PKTPS | OFPMF_BURST | OFPMF_STATS or len(self.bands) != 1:
            return None
        btype, rate, burst = self.bands[0]
        return MeterSpec(self.meter_id, rate, burst) if btype == OFPMBT_DROP else None


class MeterStats(NamedTuple):
    meter_id: int
    flow_count: int
    packets_in: int
    bytes_in: int
    band_packets: tuple[int, ...]  # per band: packets the band applied to (dropped, for a drop band)


def meter_id(index: int) -> int:
    """Our meter number `index` (tagged, so ours are recognisable)."""
    if not 0 <= index < 1 << METER_TAG_SHIFT:
        raise ValueError(f"meter index {index} out of range")
    return (METER_TAG << METER_TAG_SHIFT) | index


def is_ours(mid: int) -> bool:
    return mid >> METER_TAG_SHIFT == METER_TAG


def meter_mod(command: int, spec: MeterSpec, xid: int = 0) -> bytes:
    """OFPT_METER_MOD adding or modifying `spec` (one drop band)."""
    from . import codec as c  # the wire side only: the pipeline imports meters for MeterSpec

    if not 0 < spec.meter_id <= 0xFFFF0000:
        raise ValueError(f"bad meter id {spec.meter_id}")
    if not (0 < spec.rate <= 0xFFFFFFFF and 0 <= spec.burst <= 0xFFFFFFFF):
        raise ValueError(f"bad meter rate/burst {spec.rate}/{spec.burst}")
    band = _BAND_DROP.pack(OFPMBT_DROP, 16, spec.rate, spec.burst)
    return _METER_MOD.pack(c.OFP_VERSION, OFPT_METER_MOD, 16 + len(band), xid, command, spec.flags,
                           spec.meter_id) + band


def meter_delete(mid: int, xid: int = 0) -> bytes:
    """OFPT_METER_MOD deleting meter `mid` (OVS also deletes every flow that uses it)."""
    from . import codec as c  # the wire side only: the pipeline imports meters for MeterSpec

    return _METER_MOD.pack(c.OFP_VERSION, OFPT_METER_MOD, 16, xid, OFPMC_DELETE, 0, mid)


def meter_config_request(mid: int = OFPM_ALL, xid: int = 0) -> bytes:
    from . import codec as c  # the wire side only: the pipeline imports meters for MeterSpec

    return _MP_METER_REQ.pack(c.OFP_VERSION, c.OFPT_MULTIPART_REQUEST, 24, xid, OFPMP_METER_CONFIG, 0, mid)


def meter_stats_request(mid: int = OFPM_ALL, xid: int = 0) -> bytes:
    from . import codec as c  # the wire side only: the pipeline imports meters for MeterSpec

    return _MP_METER_REQ.pack(c.OFP_VERSION, c.OFPT_MULTIPART_REQUEST, 24, xid, OFPMP_METER, 0, mid)


def iter_meter_configs(body: bytes | memoryview) -> Iterator[MeterConfig]:
    """Entries of one OFPMP_METER_CONFIG reply part (`body` after the 8-byte header)."""
    off, end = 8, len(body)
    while off + 8 <= end:
        length, flags, mid = _CONFIG.unpack_from(body, off)
        if length < 8 or off + length > end:
            raise ValueError(f"bad meter config length {length}")
        bands = []
        boff = off + 8
        while boff + 16 <= off + length:
            btype, blen, rate, burst = _BAND_DROP.unpack_from(body, boff)
            if blen < 16:
                raise ValueError(f"bad meter band length {blen}")
            bands.append((btype, rate, burst))
            boff += blen
        yield MeterConfig(mid, flags, tuple(bands))
        off += length


def iter_meter_stats(body: bytes | memoryview) -> Iterator[MeterStats]:
    """Entries of one OFPMP_METER reply part (`body` after the 8-byte header)."""
    off, end = 8, len(body)
    while off + _STATS.size <= end:
        mid, length, flows, packets, nbytes, _sec, _nsec = _STATS.unpack_from(body, off)
        if length < _STATS.size or off + length > end:
            raise ValueError(f"bad meter stats length {length}")
        bands = tuple(_BAND_STATS.unpack_from(body, b)[0] for b in range(off + _STATS.size, off + length - 15, 16))
        yield MeterStats(mid, flows, packets, nbytes, bands)
        off += length
