"""Pure flow generation: one module per stage family; `compute(owner)` dispatches by owner kind.

Owners return flows plus, where they need them, groups, meters and OVSDB wishes (agent/outputs.py);
DERIVED lists the owner kinds made of facts (the engine keeps their membership).

A stage family's module is imported when an owner of its kind is first computed (`_m`), not with this
package: a model without ACLs, load balancers, NAT or mirrors never loads their code, which is most of
`tpctl trace --simulate`'s start and a share of the agent's."""

from __future__ import annotations

from importlib import import_module

from ..outputs import DerivedKind

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import Any

    from ..flow import Flow
    from ..view import Reader

_MODULES: dict[str, ModuleType] = {}


def _m(name: str) -> ModuleType:
    """The pipeline module `name`, imported on first use."""
    mod = _MODULES.get(name)
    if mod is None:
        mod = _MODULES[name] = import_module(f"{__name__}.{name}")
    return mod


def _lazy(module: str, name: str) -> Callable[..., Any]:
    """A function that calls `module.name`, importing the module on its first call."""
    found: list[Callable[..., Any]] = []

    def call(*args: Any) -> Any:
        if not found:
            found.append(getattr(_m(module), name))
        return found[0](*args)

    call.__qualname__ = call.__name__ = f"{module}.{name}"
    return call


def _derived(kind: str, sources: tuple[str, ...], module: str, derive: str, compute: str) -> DerivedKind:
    """A derived owner kind whose functions live in `module` (tests/unit/test_pipeline_lazy.py checks that
    kind and sources are the module's own)."""
    return DerivedKind(kind, sources, _lazy(module, derive), _lazy(module, compute))

OWNER_KINDS = ("lsp", "lrp", "lsr", "lnat", "chassis", "tun", "mirror", "ipfix", "ondemand", "neigh")
OWNER_KINDS += ("redirect",)  # ENABLE_REDIRECT: pipeline/redirect.py
OWNER_KINDS += ("ls_lb", "lr_lb")  # load balancers: pipeline/lb.py; their health-check monitor flows: lbhealth.py
OWNER_KINDS += ("untunnel",)  # ENABLE_UNTUNNEL: pipeline/untunnel.py (DSR through br-int-dsrgw)
DERIVED = (_derived("tunip", ("chassis",), "ovswishes", "_tunip_of", "tunip_wishes"),  # ovswishes.TUNNELS
           _derived("ecmp", ("lsr",), "ecmp", "_group_of", "ecmp_outputs"),  # ecmp.ECMP_GROUPS
           _derived("acl_prio", ("acl", "pg_acl"), "acl", "_prio_of", "prio_outputs"),  # acl.ACLS
           _derived("dsrnet", ("lrp", "lnat", "lr_lb"), "untunnel", "_known_of", "known_flows"))  # untunnel.DSR_NETS


def compute(r: Reader, owner: tuple) -> list[Flow]:
    """All flows (and other outputs) `owner` contributes, reading the view through `r` (which records
    dependencies)."""
    kind = owner[0]
    if kind == "const":
        const = _m("const")
        return const.flows() + const.meters()
    obj = r.get(owner)
    if obj is None:
        return []
    if kind == "lsp":
        return (_m("switching").lsp_flows(r, owner, obj) + _m("ovswishes").patch_wishes(r, owner, obj)
                + _m("gateway").patch_flows(r, owner, obj) + _m("untunnel").dsr_port_flows(r, owner, obj))
    if kind == "lrp":
        return _m("routing").lrp_flows(r, owner, obj)
    if kind == "lsr":
        return _m("routing").lsr_flows(r, owner, obj)
    if kind == "lnat":
        return _m("nat").lnat_flows(r, owner, obj)
    if kind == "neigh":
        return _m("gateway").neigh_flows(r, owner, obj)
    if kind == "chassis":
        return _m("physical").chassis_flows(r, owner, obj)
    if kind == "tun":
        return _m("physical").tunnel_flows(obj)
    if kind == "ipfix":
        return _m("ovswishes").ipfix_wishes(owner, obj)  # type: ignore[return-value]
    if kind == "untunnel":
        return _m("untunnel").dsr_flows(r, owner, obj)
    if kind == "redirect":
        return _m("redirect").redirect_flows(r, owner, obj)
    if kind == "ondemand":
        return _m("ondemand").mode_flows(r, owner, obj)
    if kind in ("ls_lb", "lr_lb"):
        return _m("lb").lb_flows(r, owner, obj) + _m("lbhealth").health_flows(r, owner, obj)
    if kind == "mirror":
        return _m("mirror").mirror_wishes(r, owner, obj)  # type: ignore[return-value]
    return []
