"""The local facts the pipeline reads besides etcd's records: what the switch has (bindings, tunnels, patch
ports, BFD) and how this agent runs (its chassis, options). Pure: rebuilt from each OVS snapshot."""

from __future__ import annotations

from typing import Any

from .config import Config
from .ovsdb_model import OvsState
from .pipeline.ondemand import MODE_KEY
from .pipeline.redirect import dead_tunnel_facts


def ovs_facts(state: OvsState) -> dict[tuple, Any]:
    """Local OVS facts the pipeline reads."""
    facts: dict[tuple, Any] = {("self",): state.system_id}
    for iface, ofport in state.bindings.items():
        facts[("bind", iface)] = ofport
    for iface in state.plugged:  # before its ofport too: the binding claim goes at once (binding.py)
        facts[("plugged", iface)] = True
    for iface, ofport in state.patch_ofports.items():
        facts[("patchport", iface)] = ofport  # only the patch ports we made: a VM tap never stands for one
    for chassis, ofport in state.tunnels.items():
        facts[("tun", chassis)] = ofport
    if state.flowbased_ofport:
        facts[("tunfb",)] = state.flowbased_ofport
    facts.update(dead_tunnel_facts(state.tunnel_bfd))  # BFD went down: redirect (pipeline/redirect.py)
    return facts


def local_facts(state: OvsState, cfg: Config, self_id: str) -> dict[tuple, Any]:
    """ovs_facts plus the agent's own: its chassis name is fixed for its lifetime (a system-id changed in
    OVSDB takes a restart), its options decide which flows exist."""
    new = ovs_facts(state)
    new[("self",)] = self_id
    new[("selfip",)] = cfg.tunnel_ip  # our own tunnel IP gets no tunnel (pipeline/ovswishes.py)
    new[MODE_KEY] = cfg.ondemand  # on-demand or full flows (pipeline/ondemand.py)
    new[("hash_fn",)] = cfg.hash_fn  # ECMP member choice (pipeline/ecmp.py)
    if cfg.redirect:  # a dead tunnel (BFD) sends frames to another edge (pipeline/redirect.py)
        new[("redirect",)] = True
    new[("bfd_cfg",)] = (cfg.bfd_interval_ms, cfg.bfd_interval_ms)
    if cfg.gateway:  # gateways never ECMP and run BFD on every tunnel (pipeline/ecmp.py)
        new[("gateway",)] = True
    if cfg.ipfix_collector:  # br-int's IPFIX row (pipeline/ovswishes.py); unset: ours is removed
        new[("ipfix",)] = (cfg.ipfix_collector, cfg.ipfix_sampling, cfg.tunnel_ip)
    return new
