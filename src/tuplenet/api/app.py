"""The ASGI app: routes under /api/v2, error mapping, bearer auth before routing, the OpenAPI document."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

import tuplenet
from tuplenet.control import ControlError
from tuplenet.store import Store, StoreError
from tuplenet.trace.packet import TraceError

from . import errors, routes_lbs, routes_mirrors, routes_misc, routes_routers, routes_switches, routes_trace
from .auth import Auth, AuthMiddleware
from .cache import TreeCache
from .common import ERRORS, PREFIX
from .limits import DEFAULT_MAX_BODY, BodyLimit
from .routes_acls import routes as acl_routes

TITLE = "TupleNet management API"
DESCRIPTION = ("Every tpctl operation as JSON over HTTP, served by the same control layer (validation, "
               "compare-and-swap). Every request needs `Authorization: Bearer <token>`.")


class CacheState(BaseModel):
    usable: bool = Field(description="reads are served from memory (else straight from etcd)")
    revision: int = Field(description="every change up to this etcd revision is in the cache")


class TraceModelState(BaseModel):
    revision: int = Field(description="GET /trace walks the topology as of this etcd revision (0: none yet)")
    rebuilds: int = Field(description="models rebuilt in the background after topology changes")
    building: bool = Field(description="a rebuild runs or is due (a trace now waits for it)")


class Health(BaseModel):
    status: str
    revision: int = Field(description="etcd's current revision")
    version: str
    cache: CacheState | None
    trace: TraceModelState | None = Field(None, description="GET /trace's warm model (with the cache)")


health_router = APIRouter(tags=["health"], responses=ERRORS)


@health_router.get("/health", response_model=Health, summary="the API is up and etcd answers")
async def health(request: Request) -> JSONResponse:
    state = request.app.state
    revision = (await run_in_threadpool(state.store.txn, [], [])).revision
    cache, warmer = state.cache, state.trace_warmer
    return JSONResponse({"status": "ok", "revision": revision, "version": tuplenet.__version__,
                         "cache": {"usable": cache.usable, "revision": cache.revision} if cache else None,
                         "trace": warmer.state() if warmer else None})


def build_routes(app: FastAPI) -> None:
    for r in (health_router, routes_switches.routes, routes_routers.routes, routes_mirrors.routes, routes_misc.routes,
              routes_trace.routes, routes_lbs.routes, acl_routes):
        app.include_router(r, prefix=PREFIX)


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document with the bearer scheme required on every operation."""
    if app.openapi_schema is None:
        doc = get_openapi(title=TITLE, version=tuplenet.__version__, description=DESCRIPTION, routes=app.routes)
        doc.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
        app.openapi_schema = doc
    return app.openapi_schema


def create_app(store: Any, auth: Auth | None, threads: int | None = None, cache: bool = True,
               max_body: int = DEFAULT_MAX_BODY) -> FastAPI:
    """An app over `store` (tuplenet.store.Store or control.memstore.MemStore); `auth` None only in tests
    of the routes themselves (the server entry point always requires tokens). `threads` sizes the pool that
    runs the blocking etcd calls (anyio's default is 40). `cache`: serve reads from a watch-fed copy of the
    tree (tuplenet.api.cache), started with the app's lifespan. `max_body`: larger request bodies get 413."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if threads:
            anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        if cache and isinstance(store, Store):
            tree = TreeCache(store)
            app.state.trace_warmer = routes_trace.warm_traces(tree)  # fed by the cache from its first listing
            app.state.cache = tree.start()
        try:
            yield
        finally:
            if app.state.cache is not None:
                app.state.cache.stop()
                app.state.cache = None
            if app.state.trace_warmer is not None:
                app.state.trace_warmer.stop()
                app.state.trace_warmer = None

    app = FastAPI(title=TITLE, version=tuplenet.__version__, description=DESCRIPTION, docs_url=None,
                  redoc_url=None, openapi_url=None, lifespan=lifespan, redirect_slashes=False)
    app.state.store = store
    app.state.cache = None
    app.state.trace_warmer = None
    app.state.write_lock = asyncio.Lock()
    build_routes(app)

    @app.get(PREFIX + "/openapi.json", include_in_schema=False)
    def openapi_json() -> JSONResponse:
        return JSONResponse(openapi_document(app))

    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    app.add_exception_handler(ControlError, errors.on_known)
    app.add_exception_handler(StoreError, errors.on_known)
    app.add_exception_handler(TraceError, errors.on_known)
    app.add_exception_handler(RequestValidationError, errors.on_validation)
    app.add_exception_handler(HTTPException, errors.on_http)
    app.add_exception_handler(Exception, errors.on_unexpected)
    app.add_middleware(BodyLimit, max_body=max_body)
    if auth is not None:
        app.add_middleware(AuthMiddleware, auth=auth)  # added last: runs first, before any body is read
    return app
