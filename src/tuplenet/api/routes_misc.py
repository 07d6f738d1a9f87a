"""Chassis, toolbox, export/import and the topology graph."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from tuplenet.control import InvalidArgument, format_export, parse_export
from tuplenet.model import int_to_ip

from .common import ERRORS, Run, logged, operations
from .render import FORMATS, draw, entities
from .schemas import Abandoned, BooksChanged, ChassisOut, Deleted, DeviceIds, IdMembers, ImportOut, Problems

routes = APIRouter(responses=ERRORS)


def _chassis_json(row: tuple) -> dict:
    chassis, live = row
    return {**chassis.to_json(), "live": live}


@routes.get("/chassis", response_model=list[ChassisOut], tags=["chassis"], summary="list chassis (ch show)")
async def list_chassis(run: Run) -> JSONResponse:
    rows = sorted(await run(lambda c: c.list_chassis()), key=lambda r: r[0].name)
    logged(run.ctl)
    return JSONResponse([_chassis_json(r) for r in rows])


@routes.get("/chassis/{chassis}", response_model=ChassisOut, tags=["chassis"],
            summary="one chassis (ch show NAME)")
async def get_chassis(chassis: str, run: Run) -> JSONResponse:
    return JSONResponse(_chassis_json(await run(lambda c: c.get_chassis(chassis))))


@routes.delete("/chassis/{chassis}", response_model=Deleted, tags=["chassis"],
               summary="delete a chassis by name, or every chassis registered with that IP (ch del NAME|IP)")
async def delete_chassis(chassis: str, run: Run) -> JSONResponse:
    return JSONResponse({"deleted": await run(lambda c: c.delete_chassis(chassis))})


# ---- toolbox -----------------------------------------------------------------------------------------------

@routes.post("/toolbox/sync-device-map", response_model=DeviceIds, tags=["toolbox"],
             summary="rebuild globals/device_ids from the ids of all switches and routers")
async def sync_device_map(run: Run) -> JSONResponse:
    return JSONResponse({"device_ids": sorted(await run(lambda c: c.sync_device_map()))})


@routes.post("/toolbox/rebuild-ip-book", response_model=BooksChanged, tags=["toolbox"],
             summary="recompute every port-id book from the ports")
async def rebuild_ip_book(run: Run) -> JSONResponse:
    return JSONResponse({"books_changed": await run(lambda c: c.rebuild_ip_books())})


@routes.get("/toolbox/ip-conflicts", response_model=Problems, tags=["toolbox"],
            summary="ports of one switch/router sharing an IP or a port id (find-ip-conflict)")
async def ip_conflicts(run: Run) -> JSONResponse:
    problems = await run(lambda c: c.find_ip_conflicts())
    logged(run.ctl)
    return JSONResponse({"problems": problems})


@routes.get("/toolbox/id-conflicts", response_model=Problems, tags=["toolbox"],
            summary="switches/routers sharing a datapath id (find-id-conflict)")
async def id_conflicts(run: Run) -> JSONResponse:
    problems = await run(lambda c: c.find_id_conflicts())
    logged(run.ctl)
    return JSONResponse({"problems": problems})


@routes.get("/toolbox/decode-id-string", response_model=IdMembers, tags=["toolbox"],
            summary="members of a 0.3 bookkeeping bitmap (decode-id-string)")
async def decode_id_string(value: Annotated[str, Query(description="base64 bitmap")], run: Run) -> JSONResponse:
    members = await run(lambda c: c.decode_id_string(value))
    return JSONResponse({"members": [{"id": m, "ip": int_to_ip(m)} for m in members]})


# ---- export / import / graph -------------------------------------------------------------------------------

@routes.get("/export", response_class=PlainTextResponse, tags=["bulk"],
            summary="every object as '<key>TAB<value>' lines (tpctl export)")
async def export(request: Request, run: Run) -> Response:
    records, rev = await run(lambda c: c.export_records())
    prefix = getattr(request.app.state.store, "prefix", "")
    return PlainTextResponse(format_export(records, f"tuplenet export: prefix={prefix} revision={rev} "
                                                    f"records={len(records)}"))


_IMPORT_BODY = {"requestBody": {"required": True, "content": {"text/plain": {"schema": {
    "type": "string", "description": "lines as written by GET /export (tpctl export)"}}}}}


@routes.post("/import", response_model=ImportOut, tags=["bulk"], openapi_extra=_IMPORT_BODY,
             summary="validate then write an export (nothing is written if any record is bad)")
async def import_records(request: Request,
                         overwrite: Annotated[bool, Query(description="replace existing objects")] = False,
                         resume: Annotated[bool, Query(description="finish an interrupted import of the same "
                                                                   "file (tpctl import --resume)")] = False,
                         ) -> JSONResponse:
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"the import body is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    records = parse_export(text)
    run = await operations(request)  # the write lock is taken only once the whole body is in
    res = await run(lambda c: c.import_records(records, overwrite=overwrite, resume=resume))
    return JSONResponse({"created": res.created, "replaced": res.replaced, "ids_assigned": res.ids_assigned,
                         "batches": res.batches, "present": res.present, "resumed": res.resumed})


@routes.delete("/import", response_model=Abandoned, tags=["bulk"],
               summary="drop the marker of an interrupted import; what it wrote stays (tpctl import --abandon)")
async def abandon_import(run: Run) -> JSONResponse:
    marker = await run(lambda c: c.abandon_import())
    return JSONResponse({"abandoned": marker.describe()})


@routes.get("/graph", tags=["bulk"], summary="the topology drawn as Graphviz source, SVG or text (tpctl graph)",
            responses={200: {"content": {t.split(";")[0]: {} for t in FORMATS.values()}}},
            response_class=Response)
async def graph(run: Run, format: Literal["dot", "svg", "text"] = "dot") -> Response:  # noqa: A002 - query name
    objs = await run(entities)
    body = await run_in_threadpool(draw, objs, format) if format == "svg" else draw(objs, format)
    return Response(body, media_type=FORMATS[format])
