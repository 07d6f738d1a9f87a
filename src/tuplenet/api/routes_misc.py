"""Chassis, toolbox, export/import and the topology graph."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from tuplenet.control import Controller, InvalidArgument, format_export, parse_export
from tuplenet.model import int_to_ip

from .common import ERRORS, controller, logged
from .render import FORMATS, draw
from .schemas import BooksChanged, ChassisOut, Deleted, DeviceIds, IdMembers, ImportOut, Problems

routes = APIRouter(responses=ERRORS)
Ctl = Annotated[Controller, Depends(controller)]


def _chassis_json(row: tuple) -> dict:
    chassis, live = row
    return {**chassis.to_json(), "live": live}


@routes.get("/chassis", response_model=list[ChassisOut], tags=["chassis"], summary="list chassis (ch show)")
def list_chassis(ctl: Ctl) -> JSONResponse:
    rows = sorted(ctl.list_chassis(), key=lambda r: r[0].name)
    logged(ctl)
    return JSONResponse([_chassis_json(r) for r in rows])


@routes.get("/chassis/{chassis}", response_model=ChassisOut, tags=["chassis"],
            summary="one chassis (ch show NAME)")
def get_chassis(chassis: str, ctl: Ctl) -> JSONResponse:
    return JSONResponse(_chassis_json(ctl.get_chassis(chassis)))


@routes.delete("/chassis/{chassis}", response_model=Deleted, tags=["chassis"],
               summary="delete a chassis by name, or every chassis registered with that IP (ch del NAME|IP)")
def delete_chassis(chassis: str, ctl: Ctl) -> JSONResponse:
    return JSONResponse({"deleted": ctl.delete_chassis(chassis)})


# ---- toolbox -----------------------------------------------------------------------------------------------

@routes.post("/toolbox/sync-device-map", response_model=DeviceIds, tags=["toolbox"],
             summary="rebuild globals/device_ids from the ids of all switches and routers")
def sync_device_map(ctl: Ctl) -> JSONResponse:
    return JSONResponse({"device_ids": sorted(ctl.sync_device_map())})


@routes.post("/toolbox/rebuild-ip-book", response_model=BooksChanged, tags=["toolbox"],
             summary="recompute every port-id book from the ports")
def rebuild_ip_book(ctl: Ctl) -> JSONResponse:
    return JSONResponse({"books_changed": ctl.rebuild_ip_books()})


@routes.get("/toolbox/ip-conflicts", response_model=Problems, tags=["toolbox"],
            summary="ports of one switch/router sharing an IP or a port id (find-ip-conflict)")
def ip_conflicts(ctl: Ctl) -> JSONResponse:
    problems = ctl.find_ip_conflicts()
    logged(ctl)
    return JSONResponse({"problems": problems})


@routes.get("/toolbox/id-conflicts", response_model=Problems, tags=["toolbox"],
            summary="switches/routers sharing a datapath id (find-id-conflict)")
def id_conflicts(ctl: Ctl) -> JSONResponse:
    problems = ctl.find_id_conflicts()
    logged(ctl)
    return JSONResponse({"problems": problems})


@routes.get("/toolbox/decode-id-string", response_model=IdMembers, tags=["toolbox"],
            summary="members of a 0.3 bookkeeping bitmap (decode-id-string)")
def decode_id_string(value: Annotated[str, Query(description="base64 bitmap")]) -> JSONResponse:
    members = Controller.decode_id_string(value)
    return JSONResponse({"members": [{"id": m, "ip": int_to_ip(m)} for m in members]})


# ---- export / import / graph -------------------------------------------------------------------------------

@routes.get("/export", response_class=PlainTextResponse, tags=["bulk"],
            summary="every object as '<key>TAB<value>' lines (tpctl export)")
def export(ctl: Ctl) -> Response:
    records, rev = ctl.export_records()
    header = f"tuplenet export: prefix={getattr(ctl.store, 'prefix', '')} revision={rev} records={len(records)}"
    return PlainTextResponse(format_export(records, header))


_IMPORT_BODY = {"requestBody": {"required": True, "content": {"text/plain": {"schema": {
    "type": "string", "description": "lines as written by GET /export (tpctl export)"}}}}}


@routes.post("/import", response_model=ImportOut, tags=["bulk"], openapi_extra=_IMPORT_BODY,
             summary="validate then write an export (nothing is written if any record is bad)")
async def import_records(request: Request, ctl: Ctl,
                         overwrite: Annotated[bool, Query(description="replace existing objects")] = False,
                         ) -> JSONResponse:
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"the import body is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    res = await run_in_threadpool(lambda: ctl.import_records(parse_export(text), overwrite=overwrite))
    return JSONResponse({"created": res.created, "replaced": res.replaced, "ids_assigned": res.ids_assigned,
                         "batches": res.batches})


@routes.get("/graph", tags=["bulk"], summary="the topology drawn as Graphviz source, SVG or text (tpctl graph)",
            responses={200: {"content": {t.split(";")[0]: {} for t in FORMATS.values()}}},
            response_class=Response)
def graph(ctl: Ctl, format: Literal["dot", "svg", "text"] = "dot") -> Response:  # noqa: A002 - query name
    return Response(draw(ctl, format), media_type=FORMATS[format])

