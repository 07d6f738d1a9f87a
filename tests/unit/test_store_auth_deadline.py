"""Auth.send: the caller's timeout bounds the login, the request, the re-login and the resend together (a
stopping agent gives etcd 1 s; each step used to get the whole timeout, four in a row)."""

from __future__ import annotations

import itertools
import time

import pytest

from tuplenet.store.auth import MIN_STEP, Auth
from tuplenet.store.errors import GRPC_UNAUTHENTICATED
from tuplenet.store.security import EtcdSecurity
from tuplenet.store.transport import EtcdError


def slow_login(took: float, given: list[float | None]):
    def authenticate(user: str, password: str, timeout: float | None) -> str:
        given.append(timeout)
        time.sleep(took)
        return f"token-{len(given)}"

    return authenticate


def test_each_step_gets_what_is_left_of_the_timeout() -> None:
    logins: list[float | None] = []
    auth = Auth(EtcdSecurity(user="u", password="p"), slow_login(0.2, logins))
    sent: list[tuple[str | None, float | None]] = []

    def request(token: str | None, timeout: float | None) -> dict:
        sent.append((token, timeout))
        time.sleep(0.2)
        if len(sent) == 1:
            raise EtcdError("etcdserver: invalid auth token", GRPC_UNAUTHENTICATED)
        return {"ok": True}

    t0 = time.monotonic()
    assert auth.send(request, EtcdError, 1.0) == {"ok": True}
    assert time.monotonic() - t0 < 1.5
    assert [tok for tok, _ in sent] == ["token-1", "token-2"]
    assert logins[0] == pytest.approx(1.0, abs=0.05)
    budgets = [logins[0], sent[0][1], logins[1], sent[1][1]]  # each 0.2 s less than the one before
    for before, after in itertools.pairwise(budgets):
        assert before is not None and after is not None and after < before - 0.15


def test_a_spent_timeout_leaves_each_step_the_minimum_and_none_means_the_transports_own() -> None:
    auth = Auth(EtcdSecurity(user="u", password="p"), slow_login(0.3, []))
    got: list[float | None] = []
    auth.send(lambda token, t: got.append(t) or {}, EtcdError, 0.1)
    assert got == [MIN_STEP]
    plain = Auth(EtcdSecurity(), slow_login(0, []))  # no user: no login
    plain.send(lambda token, t: got.append(t) or {}, EtcdError, None)
    assert got[-1] is None
