"""Shared pieces of the route modules: the per-request controller and JSON answers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from tuplenet.control import Controller

from .auth import READ_METHODS
from .schemas import ErrorOut

log = logging.getLogger("tuplenet.api")
PREFIX = "/api/v2"

_E = {"model": ErrorOut}
# Error answers documented on every route (auth, bad input, missing, conflict, etcd down).
ERRORS: dict[int | str, dict[str, Any]] = {400: _E, 401: _E, 403: _E, 404: _E, 409: _E, 503: _E}


async def controller(request: Request) -> AsyncIterator[Controller]:
    """A controller per request over the app's shared (thread-safe) store; writes hold the app's write lock.

    Writes of one server are serialised: CAS keeps concurrent writers correct, but 20 of them racing on one
    switch would mostly re-plan and could exhaust the controller's retries (409 "gave up") for nothing. CAS
    still guards against other servers and tpctl. The lock is an asyncio lock, so waiting writers hold no
    worker thread and reads never wait. Async on purpose: a sync dependency costs one more thread hop.
    """
    ctl = Controller(request.app.state.store)
    if request.method in READ_METHODS:
        yield ctl
        return
    async with request.app.state.write_lock:
        yield ctl


def logged(ctl: Controller) -> None:
    for warning in ctl.warnings:
        log.warning("skipped bad record %s", warning)


def location(*parts: str) -> str:
    """Absolute path of a created resource, each name percent-encoded."""
    return PREFIX + "".join("/" + quote(p, safe="") for p in parts)


def one(obj: Any, status: int = 200, location: str | None = None) -> JSONResponse:
    headers = {"Location": location} if location else None
    return JSONResponse(obj.to_json(), status_code=status, headers=headers)


def many(ctl: Controller, objs: Sequence[Any]) -> JSONResponse:
    logged(ctl)
    return JSONResponse([o.to_json() for o in sorted(objs, key=lambda o: o.ident[-1])])


def no_content() -> Response:
    return Response(status_code=204)
