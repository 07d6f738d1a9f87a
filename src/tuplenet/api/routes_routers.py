"""Routers, router-switch links, router ports, static routes and NAT rules."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from .common import ERRORS, Run, location, many, no_content, one
from .routes_switches import port_json
from .schemas import (
    Link,
    LinkIn,
    Nat,
    NatIn,
    Router,
    RouterIn,
    RouterPort,
    RouterPortIn,
    StaticRoute,
    StaticRouteIn,
)

routes = APIRouter(tags=["routers"], responses=ERRORS)
Recursive = Annotated[bool, Query(description="also delete its ports, routes and NAT rules (tpctl del -r)")]


@routes.get("/routers", response_model=list[Router], summary="list routers (lr show)")
async def list_routers(run: Run) -> JSONResponse:
    return many(run, await run(lambda c: c.list_routers()))


@routes.post("/routers", status_code=201, response_model=Router, summary="create a router (lr add)")
async def add_router(body: RouterIn, run: Run) -> JSONResponse:
    lr = await run(lambda c: c.add_router(body.name, body.chassis))
    return one(lr, 201, location("routers", lr.name))


@routes.get("/routers/{router}", response_model=Router, summary="one router (lr show NAME)")
async def get_router(router: str, run: Run) -> JSONResponse:
    return one(await run(lambda c: c.get_router(router)))


@routes.delete("/routers/{router}", status_code=204, summary="delete a router (lr del [-r])")
async def delete_router(router: str, run: Run, recursive: Recursive = False) -> Response:
    await run(lambda c: c.delete_router(router, recursive=recursive))
    return no_content()


@routes.post("/routers/{router}/links", status_code=201, response_model=Link,
             summary="connect the router to a switch (lr link): a peered switch port and router port")
async def link(router: str, body: LinkIn, run: Run) -> JSONResponse:
    sp, rp = await run(lambda c: c.link(router, body.switch, body.cidr, body.mac))
    return JSONResponse({"switch_port": port_json(sp), "router_port": rp.to_json()}, status_code=201,
                        headers={"Location": location("routers", router, "ports", rp.name)})


@routes.post("/routers/{router}/ports", status_code=201, response_model=RouterPort,
             summary="create a router port (lrp add)")
async def add_router_port(router: str, body: RouterPortIn, run: Run) -> JSONResponse:
    port = await run(lambda c: c.add_router_port(router, body.name, body.cidr, body.mac, body.peer))
    return one(port, 201, location("routers", router, "ports", port.name))


@routes.post("/routers/{router}/routes", status_code=201, response_model=StaticRoute,
             summary="create a static route (lsr add)")
async def add_static_route(router: str, body: StaticRouteIn, run: Run) -> JSONResponse:
    route = await run(lambda c: c.add_static_route(router, body.name, body.cidr, body.next_hop, body.outport))
    return one(route, 201, location("routers", router, "routes", route.name))


@routes.post("/routers/{router}/nats", status_code=201, response_model=Nat,
             summary="create a NAT rule (lnat add)")
async def add_nat(router: str, body: NatIn, run: Run) -> JSONResponse:
    nat = await run(lambda c: c.add_nat(router, body.name, body.cidr, body.xlate_type, body.xlate_ip))
    return one(nat, 201, location("routers", router, "nats", nat.name))


def _children(kind: str, out: type, summary: str) -> None:
    """list / get / delete routes for one kind of router child (ports, routes, nats)."""
    noun = {"ports": "lrp", "routes": "lsr", "nats": "lnat"}[kind]
    list_op, get_op, del_op = {
        "ports": ("list_router_ports", "get_router_port", "delete_router_port"),
        "routes": ("list_static_routes", "get_static_route", "delete_static_route"),
        "nats": ("list_nats", "get_nat", "delete_nat"),
    }[kind]

    @routes.get(f"/routers/{{router}}/{kind}", response_model=list[out], name=f"list_{kind}",
                summary=f"list {summary} ({noun} show)")
    async def list_children(router: str, run: Run) -> JSONResponse:
        return many(run, await run(lambda c: getattr(c, list_op)(router)))

    @routes.get(f"/routers/{{router}}/{kind}/{{name}}", response_model=out, name=f"get_{kind}",
                summary=f"one of the {summary} ({noun} show)")
    async def get_child(router: str, name: str, run: Run) -> JSONResponse:
        return one(await run(lambda c: getattr(c, get_op)(router, name)))

    @routes.delete(f"/routers/{{router}}/{kind}/{{name}}", status_code=204, name=f"delete_{kind}",
                   summary=f"delete one of the {summary} ({noun} del)")
    async def delete_child(router: str, name: str, run: Run) -> Response:
        await run(lambda c: getattr(c, del_op)(router, name))
        return no_content()


_children("ports", RouterPort, "router ports")
_children("routes", StaticRoute, "static routes")
_children("nats", Nat, "NAT rules")
