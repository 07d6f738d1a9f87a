"""Bearer-token auth on every request, as a pure ASGI middleware (runs before routing, so no path escapes).

Two token sets: full tokens may do everything, read tokens only GET/HEAD (a write with one is 403). Tokens
are compared as SHA-256 digests with hmac.compare_digest against every configured token, so neither the
content nor the length of a guess shows in the timing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

READ_METHODS = frozenset({"GET", "HEAD"})


def _digest(token: str | bytes) -> bytes:
    raw = token.encode("utf-8", "surrogateescape") if isinstance(token, str) else token
    return hashlib.sha256(raw).digest()


def read_tokens(path: str) -> list[str]:
    """Tokens from a file: one per line; blank lines and lines starting with '#' are ignored."""
    with open(path, encoding="utf-8") as fh:
        tokens = [line.strip() for line in fh if line.strip() and not line.lstrip().startswith("#")]
    if not tokens:
        raise ValueError(f"{path}: no token in the file")
    return tokens


class Auth:
    """The configured tokens; `check(header, method)` gives None (allowed), 401 or 403."""

    def __init__(self, tokens: Iterable[str], read_tokens: Iterable[str] = ()) -> None:
        self.full = [_digest(t) for t in tokens if t]
        self.read = [_digest(t) for t in read_tokens if t]
        if not self.full and not self.read:
            raise ValueError("no API token configured")

    @classmethod
    def from_sources(cls, token_file: str | None = None, read_token_file: str | None = None,
                     env: dict[str, str] | None = None) -> Auth:
        """Files first, then TUPLENET_API_TOKEN / TUPLENET_API_READ_TOKEN from the environment."""
        env = os.environ if env is None else env
        full = read_tokens(token_file) if token_file else []
        read = read_tokens(read_token_file) if read_token_file else []
        if env.get("TUPLENET_API_TOKEN"):
            full.append(env["TUPLENET_API_TOKEN"].strip())
        if env.get("TUPLENET_API_READ_TOKEN"):
            read.append(env["TUPLENET_API_READ_TOKEN"].strip())
        return cls(full, read)

    @staticmethod
    def _member(digest: bytes, digests: list[bytes]) -> bool:
        found = False
        for d in digests:  # no early exit: the time does not depend on which token matched
            found |= hmac.compare_digest(digest, d)
        return found

    def check(self, authorization: bytes | None, method: str) -> int | None:
        if not authorization:
            return 401
        scheme, _, token = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            return 401
        digest = _digest(token.strip())
        if self._member(digest, self.full):
            return None
        if self._member(digest, self.read):
            return None if method in READ_METHODS else 403
        return 401


_MESSAGES = {401: ("missing or invalid bearer token", "unauthorized"),
             403: ("this token may only read (GET)", "forbidden")}


class AuthMiddleware:
    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app, self.auth = app, auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        status = self.auth.check(header, scope["method"])
        if status is None:
            await self.app(scope, receive, send)
            return
        message, kind = _MESSAGES[status]
        body = json.dumps({"error": message, "kind": kind}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="tuplenet"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
