"""Which load-balancer backends this chassis checks: those whose logical port (the lsp with the backend's
IP in the load balancer's switch, or in a switch linked to its router) is bound here. Computed on the
main loop from the view; the probing thread gets the result as a plain dict."""

from __future__ import annotations

from typing import Any

from .binding import bound_lsp
from .healthcheck import Target, TargetKey
from .pipeline.lbhealth import checked_switches
from .view import Reader, View

LB_KINDS = ("ls_lb", "lr_lb")
# Fact kinds whose change may change the targets (records, bindings, the router links).
RELEVANT = frozenset(LB_KINDS) | {"lsp", "bind", "lrp", "LS", "LR", "self"}


def relevant(changed: set[tuple]) -> bool:
    return any(k and k[0] in RELEVANT for k in changed)


def local_port(view: View, r: Reader, dp_names: list[str], ip: str, self_id: str) -> tuple[Any, int] | None:
    """The lsp with `ip` in one of the switches, if it is bound to a local interface here: (lsp, ofport)."""
    for ls in dp_names:
        for key in view.members(("I", "ls_ip", ls, ip)):
            lsp = view.facts.get(key)
            if lsp is None or lsp.chassis != self_id:
                continue
            ofport = view.facts.get(("bind", key[2]))
            if isinstance(ofport, int) and ofport > 0 and bound_lsp(r, key[2]) == key:
                return lsp, ofport
    return None


def switch_names(r: Reader, lb: Any) -> list[str]:
    return [name for name, _dp in checked_switches(r, lb)]


def compute_targets(view: View, lb_keys: set[tuple] | None = None) -> dict[TargetKey, Target]:
    """Every backend of a checked load balancer whose port is bound on this chassis."""
    self_id = view.facts.get(("self",))
    if not self_id:
        return {}
    keys = lb_keys if lb_keys is not None else [k for k in view.facts if k[0] in LB_KINDS]
    r = Reader(view)
    out: dict[TargetKey, Target] = {}
    for key in keys:
        lb = view.facts.get(key)
        if lb is None or lb.check == "none" or not lb.backends:
            continue
        names = switch_names(r, lb)
        for b in lb.backends:
            found = local_port(view, r, names, b.ip, self_id)
            if found is None:
                continue
            lsp, ofport = found
            t = Target(lb.dp_kind, lb.dp, lb.name, b.ip, b.port, lb.check, float(lb.interval), lb.rise,
                       lb.fall, ofport, lsp.mac)
            out[t.key] = t
    return out


class TargetTracker:
    """Keeps the set of load-balancer facts (so a batch without them costs a set lookup) and recomputes the
    targets only after a batch that touched something they depend on."""

    def __init__(self) -> None:
        self.lbs: set[tuple] = set()

    def update(self, view: View, changed: set[tuple] | None) -> dict[TargetKey, Target] | None:
        """New targets, or None when nothing relevant changed (`changed` None: everything)."""
        if changed is None:
            self.lbs = {k for k in view.facts if k[0] in LB_KINDS}
        else:
            for k in changed:
                if k and k[0] in LB_KINDS:
                    if k in view.facts:
                        self.lbs.add(k)
                    else:
                        self.lbs.discard(k)
            if not self.lbs and not any(k and k[0] in LB_KINDS for k in changed):
                return None
            if not relevant(changed):
                return None
        return compute_targets(view, self.lbs)
