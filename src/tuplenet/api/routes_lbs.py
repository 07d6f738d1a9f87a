"""Load balancers on switches and routers (tpctl lb add|del|show|backend-add|backend-del): docs/lb.md."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from .common import ERRORS, Run, location, many, no_content, one
from .schemas import Name, _In, _Out

routes = APIRouter(tags=["load balancers"], responses=ERRORS)
_KIND = {"switches": "LS", "routers": "LR"}


class LoadBalancerIn(_In):
    name: str = Name
    vip: str = Field(description="virtual IPv4 address")
    port: int = Field(description="virtual port 1-65535")
    protocol: str = Field("tcp", description="tcp or udp")
    backends: list[str] = Field(default_factory=list, description="backends as IP:PORT")
    affinity: int = Field(0, description="seconds; not 0: a client IP keeps its backend (hash of the source IP)")
    check: str = Field("none", description="health check: none, tcp or http:<path>")
    interval: int = Field(5, description="seconds between health checks")
    rise: int = Field(2, description="good checks in a row that bring a backend back")
    fall: int = Field(2, description="failed checks in a row that take a backend out of service")


class BackendsIn(_In):
    add: list[str] = Field(default_factory=list, description="backends (IP:PORT) to add")
    remove: list[str] = Field(default_factory=list, description="backends (IP:PORT) to remove")


class LoadBalancerOut(_Out):
    name: str
    vip: str
    port: int
    protocol: str
    backends: list[str]
    affinity: int
    check: str
    interval: int
    rise: int
    fall: int


def _lbs(c):  # type: ignore[no-untyped-def]
    from tuplenet.control.lbs import Lbs

    return Lbs(c.core)


def _add(kind: str):  # type: ignore[no-untyped-def]
    async def add_lb(device: str, body: LoadBalancerIn, run: Run) -> JSONResponse:
        from tuplenet.control.lbs import build

        opts = {"protocol": body.protocol, "affinity": str(body.affinity), "check": body.check,
                "interval": str(body.interval), "rise": str(body.rise), "fall": str(body.fall)}
        lb = await run(lambda c: _lbs(c).add_lb(build(_KIND[kind], device, body.name, f"{body.vip}:{body.port}",
                                                      ";".join(body.backends), opts)))
        return one(lb, 201, location(kind, device, "lbs", lb.name))
    return add_lb


def _list(kind: str):  # type: ignore[no-untyped-def]
    async def list_lbs(device: str, run: Run) -> JSONResponse:
        return many(run, await run(lambda c: _lbs(c).list_lbs(_KIND[kind], device)))
    return list_lbs


def _get(kind: str):  # type: ignore[no-untyped-def]
    async def get_lb(device: str, lb: str, run: Run) -> JSONResponse:
        return one(await run(lambda c: _lbs(c).get_lb(_KIND[kind], device, lb)))
    return get_lb


def _delete(kind: str):  # type: ignore[no-untyped-def]
    async def delete_lb(device: str, lb: str, run: Run) -> Response:
        await run(lambda c: _lbs(c).delete_lb(_KIND[kind], device, lb))
        return no_content()
    return delete_lb


def _backends(kind: str):  # type: ignore[no-untyped-def]
    async def change_backends(device: str, lb: str, body: BackendsIn, run: Run) -> JSONResponse:
        return one(await run(lambda c: _lbs(c).change_backends(_KIND[kind], device, lb, tuple(body.add),
                                                                tuple(body.remove))))
    return change_backends


for _kind, _noun in (("switches", "switch"), ("routers", "router")):
    _base = f"/{_kind}/{{device}}/lbs"
    routes.add_api_route(_base, _list(_kind), methods=["GET"], response_model=list[LoadBalancerOut],
                         summary=f"list a {_noun}'s load balancers (lb show)", operation_id=f"list_{_kind}_lbs")
    routes.add_api_route(_base, _add(_kind), methods=["POST"], status_code=201, response_model=LoadBalancerOut,
                         summary=f"add a load balancer to a {_noun} (lb add)", operation_id=f"add_{_kind}_lb")
    routes.add_api_route(_base + "/{lb}", _get(_kind), methods=["GET"], response_model=LoadBalancerOut,
                         summary=f"one load balancer of a {_noun} (lb show NAME)", operation_id=f"get_{_kind}_lb")
    routes.add_api_route(_base + "/{lb}", _delete(_kind), methods=["DELETE"], status_code=204,
                         summary=f"delete a {_noun}'s load balancer (lb del)", operation_id=f"delete_{_kind}_lb")
    routes.add_api_route(_base + "/{lb}/backends", _backends(_kind), methods=["POST"], response_model=LoadBalancerOut,
                         summary=f"add/remove backends of a {_noun}'s load balancer (lb backend-add|backend-del)",
                         operation_id=f"change_{_kind}_lb_backends")
