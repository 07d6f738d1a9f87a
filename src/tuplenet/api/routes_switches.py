"""Switches, switch ports (with IPAM) and patch ports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response

from tuplenet.control import Controller, InvalidArgument

from .common import ERRORS, controller, location, many, no_content, one
from .schemas import PatchPortIn, Switch, SwitchIn, SwitchPort, SwitchPortIn

routes = APIRouter(tags=["switches"], responses=ERRORS)
Ctl = Annotated[Controller, Depends(controller)]
Recursive = Annotated[bool, Query(description="also delete everything under it (tpctl del -r)")]


@routes.get("/switches", response_model=list[Switch], summary="list switches (ls show)")
def list_switches(ctl: Ctl) -> JSONResponse:
    return many(ctl, ctl.list_switches())


@routes.post("/switches", status_code=201, response_model=Switch, summary="create a switch (ls add)")
def add_switch(body: SwitchIn, ctl: Ctl) -> JSONResponse:
    ls = ctl.add_switch(body.name)
    return one(ls, 201, location("switches", ls.name))


@routes.get("/switches/{switch}", response_model=Switch, summary="one switch (ls show NAME)")
def get_switch(switch: str, ctl: Ctl) -> JSONResponse:
    return one(ctl.get_switch(switch))


@routes.delete("/switches/{switch}", status_code=204, summary="delete a switch (ls del [-r])")
def delete_switch(switch: str, ctl: Ctl, recursive: Recursive = False) -> Response:
    ctl.delete_switch(switch, recursive=recursive)
    return no_content()


@routes.get("/switches/{switch}/ports", response_model=list[SwitchPort], summary="list ports (lsp show)")
def list_switch_ports(switch: str, ctl: Ctl) -> JSONResponse:
    return many(ctl, ctl.list_switch_ports(switch))


@routes.post("/switches/{switch}/ports", status_code=201, response_model=SwitchPort,
             summary="create a port with an IP (lsp add) or the first free IP of a subnet")
def add_switch_port(switch: str, body: SwitchPortIn, ctl: Ctl) -> JSONResponse:
    if (body.ip is None) == (body.subnet is None):
        raise InvalidArgument("give exactly one of ip and subnet")
    if body.subnet is not None:
        if body.mac is not None or body.peer is not None:
            raise InvalidArgument("mac and peer cannot be given with subnet (the MAC is derived from the IP)")
        port = ctl.allocate_switch_port(switch, body.name, body.subnet, body.gateway, body.chassis)
    else:
        if body.gateway is not None:
            raise InvalidArgument("gateway is only used with subnet")
        port = ctl.add_switch_port(switch, body.name, body.ip, body.mac, body.peer, body.chassis)
    return one(port, 201, location("switches", switch, "ports", port.name))


@routes.get("/switches/{switch}/ports/{port}", response_model=SwitchPort, summary="one port (lsp show)")
def get_switch_port(switch: str, port: str, ctl: Ctl) -> JSONResponse:
    return one(ctl.get_switch_port(switch, port))


@routes.delete("/switches/{switch}/ports/{port}", status_code=204, summary="delete a port (lsp del)")
def delete_switch_port(switch: str, port: str, ctl: Ctl) -> Response:
    ctl.delete_switch_port(switch, port)
    return no_content()


@routes.post("/switches/{switch}/patch-ports", status_code=201, response_model=SwitchPort,
             summary="bridge the switch to an OVS bridge on one chassis (patchport add)")
def add_patch_port(switch: str, body: PatchPortIn, ctl: Ctl) -> JSONResponse:
    port = ctl.add_patch_port(switch, body.name, body.chassis, body.peer_bridge)
    return one(port, 201, location("switches", switch, "ports", port.name))
