"""A real container runtime on TupleNet: Debian's podman (CNI backend) runs busybox containers on two namespace
hosts of the sandbox, each host with its own podman configuration and storage; tpcni is the network's plugin.

Podman runs with `nsenter --net=<host namespace>` (only the network namespace is entered: podman's netns and
overlay mounts must stay visible to the next podman command, which `ip netns exec` would hide in a private
mount namespace). Containers get addresses from their switch, ping across hosts and through a router, and
`podman rm` releases the lsp and the OVS port.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator

import pytest

from conftest import e2e_skip_reason
from tuplenet.cni.podmanlab import BUSYBOX, IMAGE, PodmanHost, build_rootfs_tar
from tuplenet.cni.runtime import write_launcher
from tuplenet.control import Controller
from tuplenet.sandbox.netns import NetnsSandbox
from tuplenet.sandbox.procs import wait_for
from tuplenet.store import Store

pytestmark = pytest.mark.e2e
PREFIX = "/tuplenet/"
NETWORKS = {"tn": ("LS-A", "10.10.1.0/24"), "tnb": ("LS-B", "10.10.2.0/24")}


@pytest.fixture(scope="module")
def podman() -> Iterator[tuple[NetnsSandbox, dict[str, PodmanHost], Controller]]:
    if reason := e2e_skip_reason():
        pytest.skip(reason)
    if shutil.which("podman") is None or shutil.which("runc") is None or not os.path.exists(BUSYBOX):
        pytest.skip("needs podman, runc and busybox-static")
    workdir = f"/tmp/tn-podman-{os.getpid()}"
    sb = NetnsSandbox(workdir=f"/tmp/tn-e2e-cni-{os.getpid()}", name_prefix="tpm")
    hosts: dict[str, PodmanHost] = {}
    store = None
    try:
        sb.up(hosts=2, prefix=PREFIX)
        sb.wait_agents()
        store = Store(sb.etcd_endpoint, PREFIX)
        ctl = Controller(store)
        for ls in ("LS-A", "LS-B"):
            ctl.add_switch(ls)
        ctl.add_router("R1")
        ctl.link("R1", "LS-A", "10.10.1.1/24")
        ctl.link("R1", "LS-B", "10.10.2.1/24")
        os.makedirs(workdir, exist_ok=True)
        bindir = os.path.join(workdir, "cni-bin")
        write_launcher(bindir, sys.executable)
        tar = build_rootfs_tar(workdir)
        for h in ("hv1", "hv2"):
            hosts[h] = PodmanHost(sb, h, workdir, bindir, NETWORKS, PREFIX)
            hosts[h]("import", "--change", 'CMD ["/bin/sh"]', tar, IMAGE)
        yield sb, hosts, ctl
    finally:
        for p in hosts.values():
            p.cleanup()
        if store is not None:
            store.close()
        sb.down()
        shutil.rmtree(workdir, ignore_errors=True)


def _ping(p: PodmanHost, container: str, ip: str) -> bool:
    return p("exec", container, "ping", "-c1", "-W1", ip, check=False).returncode == 0


def test_podman_containers_across_hosts_and_router(podman) -> None:
    sb, hosts, ctl = podman
    hv1, hv2 = hosts["hv1"], hosts["hv2"]
    hv1("run", "-d", "--name", "c1", "--network", "tn", IMAGE, "sleep", "600")
    hv2("run", "-d", "--name", "c2", "--network", "tn", IMAGE, "sleep", "600")
    hv2("run", "-d", "--name", "c3", "--network", "tnb", IMAGE, "sleep", "600")
    ip1, ip2, ip3 = hv1.ip("c1", "tn"), hv2.ip("c2", "tn"), hv2.ip("c3", "tnb")
    lsps = {p.ip: p for ls in ("LS-A", "LS-B") for p in ctl.list_switch_ports(ls) if p.name.startswith("lsp-")}
    assert lsps[ip1].chassis == "hv1" and lsps[ip2].chassis == "hv2" and lsps[ip3].chassis == "hv2"
    assert ip1.startswith("10.10.1.") and ip2.startswith("10.10.1.") and ip3.startswith("10.10.2.")
    assert "default via 10.10.1.1" in hv1("exec", "c1", "ip", "route").stdout
    # Ready before the container starts: its first packet (to its router, on its own host) gets through.
    assert _ping(hv1, "c1", "10.10.1.1")
    wait_for(lambda: _ping(hv1, "c1", ip2), timeout=20, what="c1 -> c2 across hosts")
    wait_for(lambda: _ping(hv1, "c1", ip3), timeout=20, what="c1 -> c3 across hosts through R1")
    assert _ping(hv2, "c3", ip1)

    for p, names in ((hv1, ["c1"]), (hv2, ["c2", "c3"])):
        p("rm", "-f", "-t0", *names)
    left = [p.name for ls in ("LS-A", "LS-B") for p in ctl.list_switch_ports(ls) if p.name.startswith("lsp-")]
    assert left == []
    for h in ("hv1", "hv2"):
        assert [p for p in sb.ovs(h, "list-ports", "br-int").split() if p.startswith("tp")
                and not p.startswith("tupleNet")] == []
        assert not re.search(r"^\d+: tp[0-9a-f]{11}@", sb.exec(h, ["ip", "-o", "link"]).stdout, re.M)
