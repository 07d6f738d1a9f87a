"""`GET /trace`: tpctl trace --simulate over HTTP. The topology is read as the agents read it, every
chassis's flows are computed with the agent's own engine and walked (tuplenet.trace); no packet is sent.
A read: read-only tokens may trace. The work runs in a worker thread (it can take a while on big trees).

With the app's watch-fed cache (api/cache.py) the model and the chassis's computed flows are kept for the
cache's topology revision and rebuilt in the background when it changes (api/trace_warm.py): traces only
walk (`tpctl trace --simulate --api`), the first one after a change included unless it arrives while the
rebuild runs, in which case it waits for that rebuild."""

from __future__ import annotations

import threading
import weakref
from contextlib import nullcontext
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from .common import ERRORS
from .trace_warm import TraceWarmer

if TYPE_CHECKING:
    from .cache import TreeCache

routes = APIRouter(tags=["trace"], responses=ERRORS)


_WALK_LOCK = threading.Lock()  # one trace at a time walks a shared fabric (pipelines off the hot list build lazily)
# The documents of the traces walked on each fabric (a trace is a function of the fabric and the request): a
# repeated trace, or one the warmer replayed on a new fabric, is not walked again. Shared: never mutated.
_DOCS: weakref.WeakKeyDictionary[Any, dict[Any, dict[str, Any]]] = weakref.WeakKeyDictionary()
_DOCS_LOCK = threading.Lock()
MAX_DOCS = 64  # per fabric


def warm_traces(cache: TreeCache) -> TraceWarmer:
    """A started warmer fed by `cache`'s topology changes; call before the cache starts (its listing counts)."""
    warmer = TraceWarmer(partial(_cached_fabric, cache), _replay).start()
    cache.on_topology = warmer.changed
    return warmer


def _current(cache: Any) -> bool:
    """The cache may be the source: it is current, and no import is half written (the agents then hold the
    tree before the import, which only etcd's history has)."""
    from tuplenet.model import IMPORT_MARKER_KEY

    return cache is not None and cache.usable and cache.get(IMPORT_MARKER_KEY) is None


def _fabric(source: Any) -> Any:
    """A fabric of the topology in `source` (the cache or etcd), read as tpctl trace reads it."""
    from tuplenet.agent.etcdsync import TopologySync
    from tuplenet.trace.fabric import Fabric, Model

    changes, _ = TopologySync(source, lambda *a: None).topology_listing()
    return Fabric(Model.from_changes(changes))


def _cached_fabric(cache: Any) -> tuple[int, Any] | None:
    """(topology revision, fabric) from the cache (the revision is read first: the fabric is at least that
    new), or None when the cache cannot be the source."""
    if not _current(cache):
        return None
    revision = cache.topology_revision
    return revision, _fabric(cache)


def _replay(fabric: Any, req: Any) -> None:
    """Trace `req` on a fabric being prepared (only the builder holds it: no walk lock): the pipelines and
    tables it meets get built, and its document is kept for the first trace that asks."""
    _document(fabric, req, nullcontext())


def _document(fabric: Any, req: Any, lock: Any = _WALK_LOCK) -> dict[str, Any]:
    """The document of a checked request traced on `fabric`: kept, or walked (under `lock`) and kept."""
    from tuplenet.cli.trace import walk

    with _DOCS_LOCK:
        doc = _DOCS.get(fabric, {}).get(req)
    if doc is None:
        with lock:
            doc = walk(fabric, req)
        with _DOCS_LOCK:
            docs = _DOCS.setdefault(fabric, {})
            docs[req] = doc
            while len(docs) > MAX_DOCS:
                del docs[next(iter(docs))]
    return doc


def _trace(state: Any, fields: dict[str, Any]) -> dict[str, Any]:
    from tuplenet.trace.request import Request as TraceRequest
    from tuplenet.trace.request import checked

    req = checked(TraceRequest(**fields))
    cache = getattr(state, "cache", None)
    warmer: TraceWarmer | None = getattr(state, "trace_warmer", None)
    fabric = None
    if warmer is not None and _current(cache):
        revision = cache.topology_revision
        fabric = warmer.fabric(revision)  # waits for a rebuild that is running or due
        if fabric is None:  # the builder could not (the cache was not current at the time, or it failed)
            fabric = _fabric(cache)
            warmer.offer(revision, fabric)
    if fabric is None:
        fabric = _fabric(state.store)  # etcd itself: not kept
    doc = _document(fabric, req)
    if warmer is not None:
        warmer.used((hop["chassis"] for hop in doc["hops"]), req)
    return doc


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
