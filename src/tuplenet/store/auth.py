"""etcd user/password authentication: one token per store, fetched lazily and renewed when etcd refuses it.

etcd's gateway takes the token from /v3/auth/authenticate as a bare `Authorization: <token>` header. Simple
tokens expire (--auth-token-ttl, default 300 s idle) and vanish when etcd restarts; a request refused for its
token never ran, so it is safe to fetch a new token and send it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .errors import GRPC_PERMISSION_DENIED, GRPC_UNAUTHENTICATED, AuthFailed, StoreError
from .security import EtcdSecurity

# (user, password, timeout) -> token ("" when etcd has authentication disabled)
Authenticator = Callable[[str, str, "float | None"], str]


def token_refused(message: str) -> bool:
    """etcd says the request's token is bad or missing (an error answer or a watch's cancel reason)."""
    return "invalid auth token" in message or "user name is empty" in message


MIN_STEP = 0.05  # s: the least a step of send() gets once its caller's timeout is spent (then it fails fast)


class Auth:
    """The current token of one store; thread-safe, at most one authentication in flight."""

    def __init__(self, security: EtcdSecurity, authenticate: Authenticator) -> None:
        self.user = security.user
        self._password = security.password or ""
        self._authenticate = authenticate
        self._token: str | None = None
        self._lock = threading.Lock()
        self.renewals = 0

    def token(self, timeout: float | None = None, stale: str | None = None) -> str | None:
        """The token to send (None without a user); a new one if none yet or the current one is `stale`."""
        if not self.user:
            return None
        with self._lock:
            if self._token is None or (stale is not None and self._token == stale):
                if self._token is not None:
                    self.renewals += 1
                self._token = None
                self._token = self._authenticate(self.user, self._password, timeout)
            return self._token

    def cached(self) -> str | None:
        """The token in hand, without fetching one (None without a user or before the first login)."""
        return self._token

    def send(self, request: Callable[[str | None, float | None], dict], etcd_error: type[StoreError],
             timeout: float | None) -> dict:
        """request(token, timeout) with the current token; once more with a fresh one when etcd refuses it (the
        refused request never ran, so resending is safe even for writes). Shared by both transports.
        `timeout` bounds the whole: each step (login, request, login, resend) gets what is left of it."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(deadline - time.monotonic(), MIN_STEP)

        token = self.token(left())
        try:
            return request(token, left())
        except etcd_error as exc:
            if not self.rejected(exc):
                raise self.explain(exc) from None
        token = self.token(left(), stale=token)
        try:
            return request(token, left())
        except etcd_error as exc:
            raise self.explain(exc) from None

    def rejected(self, exc: StoreError) -> bool:
        """True if `exc` is etcd refusing our token, which a fresh token cures (only with a user to log in)."""
        code = getattr(exc, "code", 0)
        return bool(self.user) and (code == GRPC_UNAUTHENTICATED or token_refused(str(exc)))

    def explain(self, exc: StoreError) -> StoreError:
        """`exc` with what the operator has to do when it is about credentials."""
        text = str(exc)
        if "user name is empty" in text and not self.user:
            return AuthFailed(f"{text}: etcd has authentication enabled; give a user with --user USER[:PASSWORD] "
                              "or ETCDCTL_USER")
        if getattr(exc, "code", 0) == GRPC_PERMISSION_DENIED:
            who = f"etcd user {self.user!r}" if self.user else "no etcd user given: --user USER[:PASSWORD]"
            exc.args = (f"{text} ({who})",)
        return exc
