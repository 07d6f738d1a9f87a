"""`sandbox up --grpc-proxy`: agents reach etcd only through an etcd grpc-proxy, and VMs still talk."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest

from conftest import e2e_skip_reason
from tuplenet.model import LS, LSP
from tuplenet.sandbox.netns import NetnsSandbox, default_mac
from tuplenet.store import Store

pytestmark = pytest.mark.e2e
PREFIX = "/tuplenet/"


@pytest.fixture(scope="module")
def sb() -> Iterator[NetnsSandbox]:
    if reason := e2e_skip_reason():
        pytest.skip(reason)
    workdir = f"/tmp/tn-e2e-gproxy-{os.getpid()}"
    s = NetnsSandbox(workdir=workdir, name_prefix="tng")
    try:
        out = subprocess.run([sys.executable, "-m", "tuplenet.sandbox.cli", "up", "--grpc-proxy", "--hosts",
                              "2", "--workdir", workdir, "--name-prefix", "tng"], capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert re.search(r"^grpc-proxy \S+ between the relay and etcd, alive$", out.stdout, re.M), out.stdout
        s = NetnsSandbox(workdir=workdir, name_prefix="tng")
        yield s
    finally:
        s.down()


def test_agents_work_through_the_proxy(sb: NetnsSandbox) -> None:
    st = sb.status()
    assert st["etcd"]["grpc_proxy_alive"] and sb.state["relay"]["connect"] == st["etcd"]["grpc_proxy"]
    store = Store(sb.etcd_endpoint, prefix=PREFIX)
    try:
        store.put(*(lambda e: (e.key, e.to_value()))(LS("LS-A", 1)))
        for name, ip in (("vm1", "10.10.1.2"), ("vm2", "10.10.1.3")):
            lsp = LSP("LS-A", name, ip, default_mac(ip))
            store.put(lsp.key, lsp.to_value())
    finally:
        store.close()
    assert sb.add_vm("vm1", host="hv1", ip="10.10.1.2/24", mac=default_mac("10.10.1.2"))["ready"]
    assert sb.add_vm("vm2", host="hv2", ip="10.10.1.3/24", mac=default_mac("10.10.1.3"))["ready"]
    r = sb.exec("vm2", ["ping", "-c", "3", "-i", "0.3", "-W", "2", "10.10.1.2"], check=False)
    assert r.returncode == 0, r.stdout
    metrics = urllib.request.urlopen(f"http://{st['etcd']['grpc_proxy']}/metrics", timeout=5).read().decode()
    watches = re.findall(r'^grpc_server_started_total\{grpc_method="Watch"[^}]*\} (\S+)$', metrics, re.M)
    assert sum(float(w) for w in watches) >= 2  # both agents' watches came through the proxy
