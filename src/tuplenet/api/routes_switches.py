"""Switches, switch ports (with IPAM) and patch ports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from tuplenet.control import Controller, InvalidArgument
from tuplenet.control.readiness import port_states

from .common import ERRORS, Run, location, logged, many, no_content, one
from .schemas import PatchPortIn, RequestedChassisIn, Switch, SwitchIn, SwitchPort, SwitchPortIn

routes = APIRouter(tags=["switches"], responses=ERRORS)
Recursive = Annotated[bool, Query(description="also delete everything under it (tpctl del -r)")]


@routes.get("/switches", response_model=list[Switch], summary="list switches (ls show)")
async def list_switches(run: Run) -> JSONResponse:
    return many(run, await run(lambda c: c.list_switches()))


@routes.post("/switches", status_code=201, response_model=Switch, summary="create a switch (ls add)")
async def add_switch(body: SwitchIn, run: Run) -> JSONResponse:
    ls = await run(lambda c: c.add_switch(body.name))
    return one(ls, 201, location("switches", ls.name))


@routes.get("/switches/{switch}", response_model=Switch, summary="one switch (ls show NAME)")
async def get_switch(switch: str, run: Run) -> JSONResponse:
    return one(await run(lambda c: c.get_switch(switch)))


@routes.delete("/switches/{switch}", status_code=204, summary="delete a switch (ls del [-r])")
async def delete_switch(switch: str, run: Run, recursive: Recursive = False) -> Response:
    await run(lambda c: c.delete_switch(switch, recursive=recursive))
    return no_content()


def port_json(port: Any, ready: str | None = None) -> dict:
    """A port as `tpctl lsp show -j` prints it: the model's fields, `requested_chassis`, then `ready` if known."""
    out = {**port.to_json(), "requested_chassis": port.requested_chassis}
    if ready is not None:
        out["ready"] = ready
    return out


def _ports_json(c: Controller, ports: list) -> list[dict]:
    """Ports sorted by name, each with `ready` from its chassis' report (control/readiness.py) where it applies."""
    ports = sorted(ports, key=lambda p: p.name)
    return [port_json(p, s) for p, s in zip(ports, port_states(c, ports), strict=True)]


@routes.get("/switches/{switch}/ports", response_model=list[SwitchPort], summary="list ports (lsp show)")
async def list_switch_ports(switch: str, run: Run) -> JSONResponse:
    body = await run(lambda c: _ports_json(c, c.list_switch_ports(switch)))
    logged(run.ctl)
    return JSONResponse(body)


def _add_port(c: Controller, switch: str, body: SwitchPortIn):  # noqa: ANN202 - an LSP
    if (body.ip is None) == (body.subnet is None):
        raise InvalidArgument("give exactly one of ip and subnet")
    if body.subnet is not None:
        if body.mac is not None or body.peer is not None:
            raise InvalidArgument("mac and peer cannot be given with subnet (the MAC is derived from the IP)")
        return c.allocate_switch_port(switch, body.name, body.subnet, body.gateway, body.chassis,
                                      body.requested_chassis)
    if body.gateway is not None:
        raise InvalidArgument("gateway is only used with subnet")
    return c.add_switch_port(switch, body.name, body.ip, body.mac, body.peer, body.chassis, body.requested_chassis)


@routes.post("/switches/{switch}/ports", status_code=201, response_model=SwitchPort,
             summary="create a port with an IP (lsp add) or the first free IP of a subnet")
async def add_switch_port(switch: str, body: SwitchPortIn, run: Run) -> JSONResponse:
    port = await run(lambda c: _add_port(c, switch, body))
    return one(port, 201, location("switches", switch, "ports", port.name), port_json)


@routes.post("/switches/{switch}/ports/{port}/requested-chassis", response_model=SwitchPort,
             summary="set or clear (null) the chassis a port is requested on: moves it (lsp set-requested)")
async def set_requested_chassis(switch: str, port: str, body: RequestedChassisIn, run: Run) -> JSONResponse:
    return one(await run(lambda c: c.set_requested_chassis(switch, port, body.requested_chassis)), as_json=port_json)


@routes.get("/switches/{switch}/ports/{port}", response_model=SwitchPort, summary="one port (lsp show)")
async def get_switch_port(switch: str, port: str, run: Run) -> JSONResponse:
    [body] = await run(lambda c: _ports_json(c, [c.get_switch_port(switch, port)]))
    logged(run.ctl)
    return JSONResponse(body)


@routes.delete("/switches/{switch}/ports/{port}", status_code=204, summary="delete a port (lsp del)")
async def delete_switch_port(switch: str, port: str, run: Run) -> Response:
    await run(lambda c: c.delete_switch_port(switch, port))
    return no_content()


@routes.post("/switches/{switch}/patch-ports", status_code=201, response_model=SwitchPort,
             summary="bridge the switch to an OVS bridge on one chassis (patchport add)")
async def add_patch_port(switch: str, body: PatchPortIn, run: Run) -> JSONResponse:
    port = await run(lambda c: c.add_patch_port(switch, body.name, body.chassis, body.peer_bridge))
    return one(port, 201, location("switches", switch, "ports", port.name), port_json)
