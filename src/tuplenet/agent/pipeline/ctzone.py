"""Conntrack zones: one per datapath, numbered as the datapath.

LS and LR ids come from one allocator (1..65535, reference §2), so a zone per datapath never collides:
a switch's ACLs and load balancer share its zone, a router's NAT and load balancer share the router's,
and no two tenants ever meet in one conntrack table (0.3 used a single zone for everything, §7.10)."""

from __future__ import annotations

MAX_ZONE = 0xFFFF


def zone(dp_id: int) -> int:
    """The conntrack zone of datapath `dp_id`."""
    if not 0 < dp_id <= MAX_ZONE:
        raise ValueError(f"datapath id {dp_id} has no conntrack zone (1..{MAX_ZONE})")
    return dp_id


__all__ = ["MAX_ZONE", "zone"]
