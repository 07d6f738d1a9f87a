"""A real container runtime on TupleNet: Debian's podman (CNI backend) runs busybox containers on two namespace
hosts of the sandbox, each host with its own podman configuration and storage; tpcni is the network's plugin.

Podman runs with `nsenter --net=<host namespace>` (only the network namespace is entered: podman's netns and
overlay mounts must stay visible to the next podman command, which `ip netns exec` would hide in a private
mount namespace). Containers get addresses from their switch, ping across hosts and through a router, and
`podman rm` releases the lsp and the OVS port.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from conftest import e2e_skip_reason
from tuplenet.cni.runtime import write_launcher
from tuplenet.control import Controller
from tuplenet.sandbox.netns import NetnsSandbox
from tuplenet.sandbox.procs import wait_for
from tuplenet.store import Store

pytestmark = pytest.mark.e2e
PREFIX = "/tuplenet/"
BUSYBOX = "/bin/busybox"
IMAGE = "localhost/tn-bbox:1"
NETWORKS = {"tn": ("LS-A", "10.10.1.0/24"), "tnb": ("LS-B", "10.10.2.0/24")}


def build_rootfs_tar(workdir: str) -> str:
    """A busybox-static root filesystem as a tarball for `podman import` (no registry needed)."""
    root = os.path.join(workdir, "rootfs")
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy(BUSYBOX, os.path.join(root, "bin", "busybox"))
    for applet in ("sh", "ping", "ip", "sleep", "cat"):
        os.symlink("busybox", os.path.join(root, "bin", applet))
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(os.path.join(root, "etc", "group"), "w") as f:
        f.write("root:x:0:\n")
    tar = os.path.join(workdir, "rootfs.tar")
    subprocess.run(["tar", "-C", root, "--numeric-owner", "-cf", tar, "."], check=True)
    return tar


class PodmanHost:
    """Podman on one sandbox host: private containers.conf, storage and CNI network directory."""

    def __init__(self, sb: NetnsSandbox, host: str, workdir: str, bindir: str) -> None:
        self.sb, self.host = sb, host
        self.dir = os.path.join(workdir, host)
        netdir = os.path.join(self.dir, "cni")
        os.makedirs(netdir, exist_ok=True)
        self.conf = os.path.join(self.dir, "containers.conf")
        self.storage = os.path.join(self.dir, "storage.conf")
        with open(self.conf, "w") as f:
            f.write(f"""[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[network]
network_backend = "cni"
cni_plugin_dirs = ["{bindir}", "/usr/lib/cni"]
network_config_dir = "{netdir}"
default_network = "tn"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{self.dir}/events.log"
runtime = "runc"
tmp_dir = "{self.dir}/tmp"
""")
        with open(self.storage, "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\ngraphroot = "{self.dir}/storage"\nrunroot = "{self.dir}/run"\n')
        for net, (switch, subnet) in NETWORKS.items():
            plugin = {"type": "tpcni", "switch": switch, "subnet": subnet, "etcdEndpoints": sb.agent_etcd_endpoint,
                      "etcdPrefix": PREFIX, "ovsdbSocket": os.path.join(sb.host_dir(host), "db.sock")}
            with open(os.path.join(netdir, f"{net}.conflist"), "w") as f:
                json.dump({"cniVersion": "1.0.0", "name": net, "plugins": [plugin]}, f)

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CONTAINERS_CONF": self.conf, "CONTAINERS_STORAGE_CONF": self.storage}
        r = subprocess.run(["nsenter", f"--net=/run/netns/{self.sb.ns(self.host)}", "podman", *args], env=env,
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} on {self.host}: {r.returncode} {r.stderr.strip()}")
        return r

    def ip(self, container: str, net: str) -> str:
        return self("inspect", "-f", f"{{{{.NetworkSettings.Networks.{net}.IPAddress}}}}", container).stdout.strip()

    def cleanup(self) -> None:
        self("rm", "-af", "-t0", check=False)
        self("rmi", "-af", check=False)
        mounts = [line.split()[1] for line in open("/proc/self/mounts") if f" {self.dir}/" in line]
        for m in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)


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
            hosts[h] = PodmanHost(sb, h, workdir, bindir)
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
