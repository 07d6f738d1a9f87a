"""Port mirrors (tpctl mirror add|del|show): docs/mirroring.md."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from .common import ERRORS, Run, location, many, no_content, one
from .schemas import MirrorIn, MirrorOut

routes = APIRouter(tags=["mirrors"], responses=ERRORS)


@routes.get("/mirrors", response_model=list[MirrorOut], summary="list port mirrors (mirror show)")
async def list_mirrors(run: Run) -> JSONResponse:
    return many(run, await run(lambda c: c.list_mirrors()))


@routes.post("/mirrors", status_code=201, response_model=MirrorOut, summary="mirror a switch port (mirror add)")
async def add_mirror(body: MirrorIn, run: Run) -> JSONResponse:
    m = await run(lambda c: c.add_mirror(body.name, body.port, body.target, body.direction))
    return one(m, 201, location("mirrors", m.name))


@routes.get("/mirrors/{mirror}", response_model=MirrorOut, summary="one port mirror (mirror show NAME)")
async def get_mirror(mirror: str, run: Run) -> JSONResponse:
    return one(await run(lambda c: c.get_mirror(mirror)))


@routes.delete("/mirrors/{mirror}", status_code=204, summary="delete a port mirror (mirror del)")
async def delete_mirror(mirror: str, run: Run) -> Response:
    await run(lambda c: c.delete_mirror(mirror))
    return no_content()
