"""Which load-balancer backends this chassis checks: those whose logical port (the lsp with the backend's
IP in the load balancer's switch, or in a switch linked to its router) is bound here. Computed on the
main loop from the view, per load balancer and incrementally: each one's computation records what it read
(like the engine's owners), and a batch recomputes only the load balancers whose inputs it touched. The
probing thread gets the result as a plain dict."""

from __future__ import annotations

from typing import Any

from .healthcheck import Target, TargetKey
from .pipeline.lbhealth import checked_switches, local_port
from .view import Reader, View

LB_KINDS = ("ls_lb", "lr_lb")


def lb_targets(r: Reader, lb: Any) -> dict[TargetKey, Target]:
    """The backends of one load balancer that this chassis checks, reading through `r`."""
    self_id = r.get(("self",))
    if not self_id or lb.check == "none" or not lb.backends:
        return {}
    names = [name for name, _dp in checked_switches(r, lb)]
    out: dict[TargetKey, Target] = {}
    for b in lb.backends:
        found = local_port(r, names, b.ip, self_id)
        if found is not None:
            lsp, ofport = found
            t = Target(lb.dp_kind, lb.dp, lb.name, b.ip, b.port, lb.check, float(lb.interval), lb.rise, lb.fall,
                       ofport, lsp.mac)
            out[t.key] = t
    return out


def compute_targets(view: View) -> dict[TargetKey, Target]:
    """Every backend of a checked load balancer whose port is bound on this chassis (from scratch)."""
    out: dict[TargetKey, Target] = {}
    for key in [k for k in view.facts if k[0] in LB_KINDS]:
        out.update(lb_targets(Reader(view), view.facts[key]))
    return out


class TargetTracker:
    """Targets per load balancer with the view keys each read; `update` recomputes only the load balancers a
    batch touched (their record, or anything their computation read), so a batch of port changes costs
    lookups in a reverse map, not a pass over every backend."""

    def __init__(self) -> None:
        self.per_lb: dict[tuple, dict[TargetKey, Target]] = {}
        self.deps: dict[tuple, frozenset] = {}
        self.rdeps: dict[tuple, set[tuple]] = {}
        self.recomputed = 0

    def update(self, view: View, changed: set[tuple] | None) -> dict[TargetKey, Target] | None:
        """All targets, or None when nothing they depend on changed (`changed` None: recompute all)."""
        if changed is None:
            dirty = {k for k in view.facts if k[0] in LB_KINDS} | set(self.deps)
        else:
            dirty = {k for k in changed if k and k[0] in LB_KINDS}
            rdeps = self.rdeps
            for k in changed:
                owners = rdeps.get(k)
                if owners:
                    dirty |= owners
        if not dirty and changed is not None:
            return None
        for key in dirty:
            self._recompute(view, key)
        out: dict[TargetKey, Target] = {}
        for targets in self.per_lb.values():
            out.update(targets)
        return out

    def _recompute(self, view: View, key: tuple) -> None:
        for dep in self.deps.pop(key, ()):
            owners = self.rdeps.get(dep)
            if owners is not None:
                owners.discard(key)
                if not owners:
                    del self.rdeps[dep]
        self.per_lb.pop(key, None)
        lb = view.facts.get(key)
        if lb is None:
            return
        self.recomputed += 1
        r = Reader(view)
        targets = lb_targets(r, lb)
        if targets:
            self.per_lb[key] = targets
        if lb.check == "none":
            return  # a change of its own record is all that can make it checked
        deps = frozenset(r.deps)
        self.deps[key] = deps
        for dep in deps:
            self.rdeps.setdefault(dep, set()).add(key)
