"""Shared fixtures: a real etcd per test session, a fresh key prefix per test."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile

import pytest

from tuplenet.sandbox.etcd import EtcdServer

_counter = itertools.count()


@pytest.fixture(scope="session")
def etcd_server():
    base = tempfile.mkdtemp(prefix="tn-etcd-")
    server = EtcdServer(base).start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)  # its data dir: ~100 MB per session


@pytest.fixture
def etcd(etcd_server: EtcdServer) -> EtcdServer:
    """The session etcd, checked to be up (a test may have stopped or restarted it)."""
    if etcd_server.proc is None:
        etcd_server.start()
    return etcd_server


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses, so tests share one etcd without interfering."""
    return f"/t{os.getpid()}-{next(_counter)}/"


from agent_cluster import cluster  # noqa: E402,F401  (fixture)
from fixtures_sim import sim3, sim_net  # noqa: E402,F401  (fixtures)
