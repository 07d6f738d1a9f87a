"""`GET /trace`: tpctl trace --simulate over HTTP. The topology is read as the agents read it, every
chassis's flows are computed with the agent's own engine and walked (tuplenet.trace); no packet is sent.
A read: read-only tokens may trace. The work runs in a worker thread (it can take a while on big trees).

With the app's watch-fed cache (api/cache.py) the model and the chassis's computed flows are kept for the
cache's revision: traces between two topology changes only walk (`tpctl trace --simulate --api`)."""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from .common import ERRORS

routes = APIRouter(tags=["trace"], responses=ERRORS)


_WARM_LOCK = threading.Lock()  # one trace at a time walks the shared fabric (its pipelines build lazily)


def _trace(state: Any, fields: dict[str, Any]) -> dict[str, Any]:
    from tuplenet.agent.etcdsync import TopologySync
    from tuplenet.cli.trace import walk
    from tuplenet.model import IMPORT_MARKER_KEY
    from tuplenet.trace.fabric import Fabric, Model
    from tuplenet.trace.request import Request as TraceRequest
    from tuplenet.trace.request import checked

    req = checked(TraceRequest(**fields))
    cache = getattr(state, "cache", None)
    # the cache when it is current; etcd itself while it is not, or while an import is half written (the
    # agents then hold the tree before the import, which only etcd's history has)
    warm_ok = cache is not None and cache.usable and cache.get(IMPORT_MARKER_KEY) is None
    with _WARM_LOCK:
        warm = getattr(state, "trace_warm", None)
        rev = cache.topology_revision if warm_ok else None
        if warm is None or rev is None or warm[0] != rev:
            source = cache if warm_ok else state.store
            changes, _ = TopologySync(source, lambda *a: None).topology_listing()  # as tpctl trace loads it
            warm = (rev, Fabric(Model.from_changes(changes)))
            state.trace_warm = warm if rev is not None else None
        return walk(warm[1], req)


@routes.get("/trace", summary="where would this packet go? (tpctl trace --simulate)",
            responses={200: {"content": {"application/json": {}, "text/plain": {}}}}, response_class=Response)
async def trace(request: Request,
                src_port: Annotated[str, Query(description="where the packet enters: LS/PORT")],
                dst_ip: str | None = None, dst_mac: str | None = None, src_ip: str | None = None,
                src_mac: str | None = None,
                proto: Annotated[str, Query(description="icmp (echo request), tcp, udp or arp")] = "icmp",
                ttl: int = 64, sport: int = 12345, dport: int = 80, icmp_type: int = 8,
                frame: Annotated[str | None, Query(description="the whole Ethernet frame in hex")] = None,
                format: Literal["json", "text"] = "json",  # noqa: A002 - query name
                brief: Annotated[bool, Query(description="text: hide pass-through steps")] = False) -> Response:
    fields = {"src_port": src_port, "dst_ip": dst_ip, "dst_mac": dst_mac, "src_ip": src_ip, "src_mac": src_mac,
              "proto": proto.lower(), "ttl": ttl, "sport": sport, "dport": dport, "icmp_type": icmp_type,
              "frame": frame}
    doc = await run_in_threadpool(_trace, request.app.state, fields)
    if format == "text":
        from tuplenet.trace.report import to_text

        return PlainTextResponse(to_text(doc, brief=brief))
    return JSONResponse(doc)
