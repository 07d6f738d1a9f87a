"""Control and store errors as HTTP answers: one status per error class, one-line JSON body.

Body: `{"error": "<one line>", "kind": "<snake_case class>"}`. Unexpected exceptions are answered 500 with no
internals in the body (the server logs the traceback).
"""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from tuplenet.control import (
    AlreadyExists,
    Conflict,
    ControlError,
    InvalidArgument,
    NotEmpty,
    NotFound,
    VersionMismatch,
)
from tuplenet.store import StoreError, Unavailable
from tuplenet.trace.packet import TraceError

# Most specific first: the first isinstance match decides.
STATUS: list[tuple[type[Exception], int]] = [
    (InvalidArgument, 400),
    (TraceError, 400),  # a trace request that names no such port, or a bad packet field
    (NotFound, 404),
    (AlreadyExists, 409),
    (NotEmpty, 409),
    (Conflict, 409),
    (VersionMismatch, 409),
    (ControlError, 409),  # e.g. a bad record in etcd blocks the operation: a state problem, not bad input
    (Unavailable, 503),
    (StoreError, 503),
]


def kind_of(exc: BaseException) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def error_response(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": one_line(message), "kind": kind}, status_code=status, headers=headers)


def status_of(exc: Exception) -> int | None:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return None


async def on_known(_: Request, exc: Exception) -> JSONResponse:
    status = status_of(exc) or 500
    message = str(exc) or type(exc).__name__
    if isinstance(exc, StoreError) and status == 503:
        message = f"etcd unavailable: {message}"
    return error_response(status, message, kind_of(exc))


def _field(loc: tuple | list) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    """Pydantic's shape errors (missing field, wrong type, bad JSON) as 400 with one readable line."""
    errors = exc.errors()
    parts = []
    for err in errors[:5]:
        parts.append(f"{_field(err.get('loc', ()))}: {err.get('msg', 'invalid')}")
    if len(errors) > 5:
        parts.append(f"... {len(errors) - 5} more")
    return error_response(400, "invalid request: " + "; ".join(parts), "invalid_argument")


async def on_http(_: Request, exc: HTTPException) -> JSONResponse:
    return error_response(exc.status_code, str(exc.detail), kind_of(exc) if exc.status_code >= 500 else
                          {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "http_error"),
                          headers=getattr(exc, "headers", None))


async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    """A bug: answered 500 without internals; Starlette re-raises it afterwards so the server logs it."""
    return error_response(500, "internal error (see the server log)", "internal")
