"""test_store_tls.py again over etcd's gRPC API: client-cert TLS, users, token expiry in a watch, restarts.

The tpctl and agent tests of that module are not repeated: tpctl stays on the gateway, the agent's start-up
with bad credentials runs through the same Store.
"""

from __future__ import annotations

import pytest
from test_store_tls import *  # noqa: F403 - the same tests, collected again under the gRPC transport
from test_store_tls import test_agent_refuses_to_start_with_bad_credentials as _agent
from test_store_tls import test_tpctl_over_tls_flags_and_env as _tpctl_tls
from test_store_tls import test_tpctl_with_user_flags_and_env as _tpctl_user

del _agent, _tpctl_tls, _tpctl_user
for _name in ("test_agent_refuses_to_start_with_bad_credentials", "test_tpctl_over_tls_flags_and_env",
              "test_tpctl_with_user_flags_and_env"):
    globals().pop(_name, None)


@pytest.fixture(autouse=True)
def _grpc_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUPLENET_ETCD_TRANSPORT", "grpc")
