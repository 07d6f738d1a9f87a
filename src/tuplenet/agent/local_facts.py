"""The local facts the pipeline reads besides etcd's records: what the switch has (bindings, tunnels, patch
ports, BFD) and how this agent runs (its chassis, options), derived from each OVS snapshot.

On a host with thousands of ports an OVS update changes a handful of them; `keyed_fact_changes` diffs two
snapshots map by map (skipping the maps the OVSDB thread reused, ovsdb_state.py), and `FactSync` applies only
that to the view, so the main loop's work per update does not grow with the host."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .config import Config
from .ovsdb_model import OvsState
from .pipeline.ondemand import MODE_KEY
from .pipeline.redirect import dead_tunnel_facts
from .view import View

# fact prefix -> the OvsState map (key -> ofport) it mirrors one entry per key
_KEYED = (("bind", "bindings"), ("patchport", "patch_ofports"), ("tun", "tunnels"))


def keyed_facts(state: OvsState) -> dict[tuple, Any]:
    """The facts with one entry per interface or tunnel: bindings, plugged VM interfaces, patch ports
    (only the ones we made: a VM tap never stands for one), tunnels, dead tunnels (BFD went down: redirect,
    pipeline/redirect.py)."""
    facts: dict[tuple, Any] = {}
    for prefix, attr in _KEYED:
        for key, ofport in getattr(state, attr).items():
            facts[(prefix, key)] = ofport
    for iface in state.plugged:  # before its ofport too: the binding claim goes at once (binding.py)
        facts[("plugged", iface)] = True
    facts.update(dead_tunnel_facts(state.tunnel_bfd))
    return facts


def keyed_fact_changes(old: OvsState | None, new: OvsState) -> Iterator[tuple[tuple, Any]]:
    """(fact, value or None when gone) for the keyed facts that differ from `old` to `new` (None: from none);
    a map `new` shares with `old` (the very object) is not looked at."""
    for prefix, attr in _KEYED:
        before: Any = getattr(old, attr) if old is not None else {}
        after: Any = getattr(new, attr)
        if before is after:
            continue
        for key in before.keys() - after.keys():
            yield (prefix, key), None
        for key, ofport in after.items() - before.items():
            yield (prefix, key), ofport
    before_p = old.plugged if old is not None else frozenset()
    if before_p is not new.plugged:
        for iface in before_p - new.plugged:
            yield ("plugged", iface), None
        for iface in new.plugged - before_p:
            yield ("plugged", iface), True
    if old is None or old.tunnel_bfd is not new.tunnel_bfd:  # a gateway has a tunnel (BFD) per chassis
        dead_before = dead_tunnel_facts(old.tunnel_bfd) if old is not None else {}
        dead_after = dead_tunnel_facts(new.tunnel_bfd)
        for key in dead_before.keys() - dead_after.keys():
            yield key, None
        for key in dead_after.keys() - dead_before.keys():
            yield key, True


def other_facts(state: OvsState, cfg: Config, self_id: str) -> dict[tuple, Any]:
    """The few facts that are not per interface: the agent's own (its chassis name is fixed for its lifetime,
    a system-id changed in OVSDB takes a restart; its options decide which flows exist) and the flow-based
    tunnel port."""
    facts: dict[tuple, Any] = {("self",): self_id}
    if state.flowbased_ofport:
        facts[("tunfb",)] = state.flowbased_ofport
    facts[("selfip",)] = cfg.tunnel_ip  # our own tunnel IP gets no tunnel (pipeline/ovswishes.py)
    facts[MODE_KEY] = cfg.ondemand  # on-demand or full flows (pipeline/ondemand.py)
    facts[("hash_fn",)] = cfg.hash_fn  # ECMP member choice (pipeline/ecmp.py)
    if cfg.redirect:  # a dead tunnel (BFD) sends frames to another edge (pipeline/redirect.py)
        facts[("redirect",)] = True
    facts[("bfd_cfg",)] = (cfg.bfd_interval_ms, cfg.bfd_interval_ms)
    if cfg.gateway:  # gateways never ECMP and run BFD on every tunnel (pipeline/ecmp.py)
        facts[("gateway",)] = True
    if cfg.ipfix_collector:  # br-int's IPFIX row (pipeline/ovswishes.py); unset: ours is removed
        facts[("ipfix",)] = (cfg.ipfix_collector, cfg.ipfix_sampling, cfg.tunnel_ip)
    return facts


def local_facts(state: OvsState, cfg: Config, self_id: str) -> dict[tuple, Any]:
    """Every local fact of one snapshot."""
    return {**keyed_facts(state), **other_facts(state, cfg, self_id)}


class FactSync:
    """The view's local facts, kept equal to the latest OVS snapshot: per snapshot only the keyed facts that
    changed are applied (O(changed), however many ports the host has), the others are diffed in full."""

    def __init__(self) -> None:
        self.facts: dict[tuple, Any] = {}  # the local facts in the view
        self._others: dict[tuple, Any] = {}  # of those, the ones not per interface or tunnel
        self._state: OvsState | None = None  # the snapshot `facts` stand for (None: not all applied)

    def apply(self, view: View, state: OvsState, others: dict[tuple, Any], changed: set[tuple]) -> None:
        """Make the view's local facts those of `state` plus `others` (other_facts and the like)."""
        facts, last = self.facts, self._state
        self._state = None  # until every change is in: a failure takes the full diff next time
        if last is None:
            keyed = keyed_facts(state)
            delta = [(k, None) for k in facts.keys() - keyed.keys() - others.keys()]
            delta += [(k, v) for k, v in keyed.items() if facts.get(k) != v]
        else:
            delta = list(keyed_fact_changes(last, state))
            delta += [(k, None) for k in self._others.keys() - others.keys()]
        delta += [(k, v) for k, v in others.items() if facts.get(k) != v]
        for k, v in delta:
            view.apply(k, v, changed)
            if v is None:
                facts.pop(k, None)
            else:
                facts[k] = v
        self._others = others
        self._state = state
