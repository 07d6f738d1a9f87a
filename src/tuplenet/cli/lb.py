"""tpctl lb: load balancers on a switch (ls) or a router (lr), see docs/lb.md.

  tpctl lb add  ls|lr DEVICE NAME VIP:PORT [IP:PORT,IP:PORT...] [protocol=udp] [affinity=S] [check=tcp|http:/p]
                [interval=S] [rise=N] [fall=N]
  tpctl lb del  ls|lr DEVICE NAME
  tpctl lb show ls|lr DEVICE [NAME]
  tpctl lb backend-add|backend-del ls|lr DEVICE NAME IP:PORT...
"""

from __future__ import annotations

from . import output
from .args import key_values
from .context import Ctx, say

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _svc(ctx: Ctx) -> Any:
    from tuplenet.control.lbs import Lbs

    return Lbs(ctx.ctl.core)


def _kind(text: str) -> str:
    from tuplenet.control.lbs import dp_kind_of

    return dp_kind_of(text)


def lb_add(ctx: Ctx, a: list[str]) -> int:
    from tuplenet.control.lbs import build

    kind, dp, name, vip_port, rest = _kind(a[0]), a[1], a[2], a[3], a[4:]
    backends = ""
    if rest and "=" not in rest[0]:
        backends, rest = rest[0], rest[1:]
    options = key_values(rest, "option")
    lb = _svc(ctx).add_lb(build(kind, dp, name, vip_port, backends, options))
    return say(f"load balancer {lb.name} created ({lb.vip}:{lb.port}/{lb.protocol}, {len(lb.backends)} backends)")


def lb_del(ctx: Ctx, a: list[str]) -> int:
    _svc(ctx).delete_lb(_kind(a[0]), a[1], a[2])
    return say(f"load balancer {a[2]} deleted")


def lb_show(ctx: Ctx, a: list[str]) -> int:
    svc, kind = _svc(ctx), _kind(a[0])
    lbs = [svc.get_lb(kind, a[1], a[2])] if len(a) > 2 else svc.list_lbs(kind, a[1])
    down = svc.out_of_service(kind, a[1])  # health verdicts (docs/lb.md)
    lbs.sort(key=lambda lb: lb.name)
    extra = [{"down": ";".join(down.get(lb.name, [])) if not ctx.as_json else down.get(lb.name, [])}
             for lb in lbs]
    output.show(lbs, ctx.as_json, extra)
    return 0


def lb_backend_add(ctx: Ctx, a: list[str]) -> int:
    lb = _svc(ctx).change_backends(_kind(a[0]), a[1], a[2], add=tuple(a[3:]))
    return say(f"load balancer {lb.name}: {len(lb.backends)} backends")


def lb_backend_del(ctx: Ctx, a: list[str]) -> int:
    lb = _svc(ctx).change_backends(_kind(a[0]), a[1], a[2], remove=tuple(a[3:]))
    return say(f"load balancer {lb.name}: {len(lb.backends)} backends")


_DEV = "ls|lr DEVICE NAME"
COMMANDS = {
    ("lb", "add"): (("a",), 4, 11, "require ls|lr, a switch or router, a name, VIP:PORT and optionally backends "
                    "IP:PORT,... and KEY=VALUE options",
                    f"{_DEV} VIP:PORT [IP:PORT,...] [protocol=tcp|udp] [affinity=S] [check=none|tcp|http:/PATH] "
                    "[interval=S] [rise=N] [fall=N]", lb_add),
    ("lb", "del"): (("d",), 3, 3, "require ls|lr, a switch or router and a load balancer name", _DEV, lb_del),
    ("lb", "show"): (("s",), 2, 3, "require ls|lr, a switch or router and optionally a load balancer name",
                     "ls|lr DEVICE [NAME]", lb_show),
    ("lb", "backend-add"): ((), 4, 67, "require ls|lr, a switch or router, a load balancer name and backends",
                            f"{_DEV} IP:PORT...", lb_backend_add),
    ("lb", "backend-del"): ((), 4, 67, "require ls|lr, a switch or router, a load balancer name and backends",
                            f"{_DEV} IP:PORT...", lb_backend_del),
}
