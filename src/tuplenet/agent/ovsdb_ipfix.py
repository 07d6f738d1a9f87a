"""Pure planning of the integration bridge's IPFIX row (IPFIX_COLLECTOR / IPFIX_SAMPLING_RATE).

Bridge sampling is one IPFIX row referenced by `Bridge.ipfix`. The agent creates it marked as its own
(`external_ids:tuplenet-role=ipfix`), fixes it in place when the wish changes (the exporter keeps its
sequence numbers and templates), and drops the reference when the wish goes (ovsdb-server then collects the
row). A row it did not create is never edited or removed: the wish waits and the planner says why.
Kept apart from ovsdb_model so the port planner stays readable; ovsdb_model calls `plan_ipfix`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

D_IPFIX = "ipfix"
ROLE_KEY = "tuplenet-role"  # as ovsdb_model.ROLE_KEY (that module imports this one)
ROLE_IPFIX = "ipfix"
U32 = (1 << 32) - 1
CACHE_ACTIVE_TIMEOUT_MAX = 4200  # s, the OVSDB schema's bound


class IpfixSpec(NamedTuple):
    """The IPFIX row we want (OVS column names; None: OVS's default). Hashable, so it is a wish's value.

    sampling: 1 in `sampling` packets; obs_domain_id tells hosts apart at the collector (0.3: the host's IP
    as a uint32); other_config: e.g. enable-tunnel-sampling (0.3 meant "false" and wrote "flase")."""

    targets: tuple[str, ...]
    sampling: int
    obs_domain_id: int | None = None
    obs_point_id: int | None = None
    cache_active_timeout: int | None = None
    cache_max_flows: int | None = None
    other_config: tuple[tuple[str, str], ...] = ()


def validate_ipfix(spec: IpfixSpec) -> IpfixSpec:
    """What OVSDB would reject later, rejected now with a clear message (ValueError)."""
    if not spec.targets:
        raise ValueError("IPFIX needs at least one collector target")
    for t in spec.targets:
        host, sep, port = str(t).rpartition(":")
        try:
            ipaddress.IPv4Address(host)
            ok = bool(sep) and port.isdigit() and 1 <= int(port) <= 65535
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"bad IPFIX collector {t!r}: expected ipv4:port")
    bounds = {"sampling": (1, U32), "obs_domain_id": (0, U32), "obs_point_id": (0, U32),
              "cache_active_timeout": (0, CACHE_ACTIVE_TIMEOUT_MAX), "cache_max_flows": (0, U32)}
    for name, (lo, hi) in bounds.items():
        v = getattr(spec, name)
        if v is None and name != "sampling":
            continue
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise ValueError(f"IPFIX {name} must be an integer in {lo}..{hi}, not {v!r}")
    for k, v in spec.other_config:
        if not isinstance(k, str) or not isinstance(v, str) or not k:
            raise ValueError(f"bad IPFIX other_config entry {k!r}={v!r}")
    return spec._replace(targets=tuple(sorted(set(spec.targets))))


@dataclass(frozen=True)
class IpfixView:
    """An IPFIX row as the planner sees it (optional integer columns: None when empty)."""

    targets: frozenset[str] = frozenset()
    sampling: int | None = None
    obs_domain_id: int | None = None
    obs_point_id: int | None = None
    cache_active_timeout: int | None = None
    cache_max_flows: int | None = None
    other_config: Mapping[str, str] = field(default_factory=dict)
    external_ids: Mapping[str, str] = field(default_factory=dict)

    @property
    def ours(self) -> bool:
        return self.external_ids.get(ROLE_KEY) == ROLE_IPFIX


_OPTIONAL_INTS = ("sampling", "obs_domain_id", "obs_point_id", "cache_active_timeout", "cache_max_flows")


@dataclass(frozen=True)
class SetIpfix:
    """Create our IPFIX row from `spec` and point the bridge at it."""

    bridge: str
    spec: IpfixSpec
    domain: str = D_IPFIX


@dataclass(frozen=True)
class FixIpfix:
    """Set these columns of the bridge's IPFIX row (ours): column -> OVSDB value (optional ints as lists)."""

    bridge: str
    columns: Mapping[str, Any]
    domain: str = D_IPFIX


@dataclass(frozen=True)
class ClearIpfix:
    """Drop the bridge's reference to our IPFIX row (ovsdb-server garbage-collects the row)."""

    bridge: str
    domain: str = D_IPFIX


IpfixAction = SetIpfix | FixIpfix | ClearIpfix


def row_columns(spec: IpfixSpec) -> dict[str, Any]:
    """The columns of our row for `spec`, as written to OVSDB."""
    cols: dict[str, Any] = {"targets": sorted(spec.targets), "other_config": dict(spec.other_config),
                            "external_ids": {ROLE_KEY: ROLE_IPFIX}}
    for name in _OPTIONAL_INTS:
        v = getattr(spec, name)
        cols[name] = [] if v is None else [v]
    return cols


def _diff(have: IpfixView, spec: IpfixSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if have.targets != frozenset(spec.targets):
        out["targets"] = sorted(spec.targets)
    for name in _OPTIONAL_INTS:
        want = getattr(spec, name)
        if getattr(have, name) != want:
            out[name] = [] if want is None else [want]
    if dict(have.other_config) != dict(spec.other_config):
        out["other_config"] = dict(spec.other_config)
    return out


def plan_ipfix(bridge: str, have: IpfixView | None, spec: IpfixSpec | None) -> tuple[list[IpfixAction], str | None]:
    """Edits from the bridge's current IPFIX row (`have`) to the wish (`spec`, None: none of ours), and the
    reason the wish cannot be met (a row we did not create is in the way), if any."""
    if have is not None and not have.ours:
        if spec is None:
            return [], None
        return [], (f"bridge {bridge} already has an IPFIX row that tuplenet did not create; leaving it "
                    "(remove it, e.g. `ovs-vsctl clear Bridge " + bridge + " ipfix`, to let the agent set its own)")
    if spec is None:
        return ([ClearIpfix(bridge)] if have is not None else []), None
    if have is None:
        return [SetIpfix(bridge, spec)], None
    cols = _diff(have, spec)
    return ([FixIpfix(bridge, cols)] if cols else []), None
