"""Shared pieces of the route modules: how a request runs its control-layer call, and JSON answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from tuplenet.control import Controller
from tuplenet.control.memstore import MemStore

from .auth import READ_METHODS
from .cache import RevisionRecorder
from .schemas import ErrorOut

log = logging.getLogger("tuplenet.api")
PREFIX = "/api/v2"
WRITE_VISIBLE_TIMEOUT = 5.0  # longest a write waits for the read cache to show it
T = TypeVar("T")

_E = {"model": ErrorOut}
# Error answers documented on every route (auth, bad input, missing, conflict, etcd down).
ERRORS: dict[int | str, dict[str, Any]] = {400: _E, 401: _E, 403: _E, 404: _E, 409: _E, 503: _E}


class Ops:
    """Runs one request's control-layer call: reads from the cache inline on the event loop (memory only, no
    thread hop), anything that talks to etcd in a worker thread. A write holds the server's write lock and
    then waits until the cache shows it, so whoever reads this server after the answer sees the change."""

    def __init__(self, ctl: Controller, inline: bool, lock: asyncio.Lock | None = None,
                 recorder: RevisionRecorder | None = None, cache: Any = None) -> None:
        self.ctl, self.inline, self.lock, self.recorder, self.cache = ctl, inline, lock, recorder, cache

    async def __call__(self, fn: Callable[[Controller], T]) -> T:
        if self.lock is None:
            return fn(self.ctl) if self.inline else await run_in_threadpool(fn, self.ctl)
        async with self.lock:
            result = fn(self.ctl) if self.inline else await run_in_threadpool(fn, self.ctl)
            rec, cache = self.recorder, self.cache
            if rec is not None and rec.revision and cache is not None and cache.usable:
                await run_in_threadpool(cache.wait_for, rec.revision, WRITE_VISIBLE_TIMEOUT)
        return result


async def operations(request: Request) -> Ops:
    """The Ops of a request. Writes of one server are serialised by its write lock: CAS keeps concurrent
    writers correct, but 20 of them racing on one switch would mostly re-plan and could exhaust the
    controller's retries (409 "gave up"); CAS still guards against other servers and tpctl. It is an asyncio
    lock, so waiting writers hold no worker thread and reads never wait. (A plain async dependency: a
    generator one costs an exit stack per request.)"""
    state = request.app.state
    store, cache = state.store, state.cache
    in_memory = isinstance(store, MemStore)
    if request.method in READ_METHODS:
        if in_memory:
            return Ops(Controller(store), inline=True)
        if cache is not None and cache.usable and "no-cache" not in request.headers.get("cache-control", ""):
            return Ops(Controller(cache), inline=True)
        return Ops(Controller(store), inline=False)
    if in_memory:
        return Ops(Controller(store), inline=True, lock=state.write_lock)
    recorder = RevisionRecorder(store)
    return Ops(Controller(recorder), inline=False, lock=state.write_lock, recorder=recorder, cache=cache)


Run = Annotated[Ops, Depends(operations)]


def logged(ctl: Controller) -> None:
    for warning in ctl.warnings:
        log.warning("skipped bad record %s", warning)


def location(*parts: str) -> str:
    """Absolute path of a created resource, each name percent-encoded."""
    return PREFIX + "".join("/" + quote(p, safe="") for p in parts)


def one(obj: Any, status: int = 200, location: str | None = None,
        as_json: Callable[[Any], Any] = lambda o: o.to_json()) -> JSONResponse:
    headers = {"Location": location} if location else None
    return JSONResponse(as_json(obj), status_code=status, headers=headers)


def many(ops: Ops, objs: Sequence[Any]) -> JSONResponse:
    logged(ops.ctl)
    return JSONResponse([o.to_json() for o in sorted(objs, key=lambda o: o.ident[-1])])


def no_content() -> Response:
    return Response(status_code=204)
