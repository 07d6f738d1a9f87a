"""Podman (CNI backend) on sandbox hosts with tpcni networks: for the e2e test, the bench and trying it by hand.

Each host gets a private containers.conf, storage and CNI network directory, and podman runs with
`nsenter --net=<host namespace>`: only the network namespace is entered, because podman's netns files and
overlay mounts must stay visible to the next podman command (`ip netns exec` would hide them in a private mount
namespace). Images come from a busybox-static root filesystem (no registry needed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

BUSYBOX = "/bin/busybox"
IMAGE = "localhost/tn-bbox:1"


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


class PodmanError(RuntimeError):
    """A podman command failed; the message has the command and its stderr."""


class PodmanHost:
    """Podman on one sandbox host: private containers.conf, storage and CNI network directory."""

    def __init__(self, sb: Any, host: str, workdir: str, bindir: str, networks: dict[str, tuple[str, str]],
                 etcd_prefix: str = "/tuplenet/", env: dict[str, str] | None = None) -> None:
        self.sb, self.host, self.env = sb, host, dict(env or {})
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
default_network = "{next(iter(networks))}"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{self.dir}/events.log"
runtime = "runc"
tmp_dir = "{self.dir}/tmp"
""")
        with open(self.storage, "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\ngraphroot = "{self.dir}/storage"\nrunroot = "{self.dir}/run"\n')
        for net, (switch, subnet) in networks.items():
            plugin = {"type": "tpcni", "switch": switch, "subnet": subnet, "etcdEndpoints": sb.agent_etcd_endpoint,
                      "etcdPrefix": etcd_prefix, "ovsdbSocket": os.path.join(sb.host_dir(host), "db.sock")}
            with open(os.path.join(netdir, f"{net}.conflist"), "w") as f:
                json.dump({"cniVersion": "1.0.0", "name": net, "plugins": [plugin]}, f)

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.env, "CONTAINERS_CONF": self.conf, "CONTAINERS_STORAGE_CONF": self.storage}
        r = subprocess.run(["nsenter", f"--net=/run/netns/{self.sb.ns(self.host)}", "podman", *args], env=env,
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise PodmanError(f"podman {' '.join(args)} on {self.host}: {r.returncode} {r.stderr.strip()}")
        return r

    def ip(self, container: str, net: str) -> str:
        return self("inspect", "-f", f"{{{{.NetworkSettings.Networks.{net}.IPAddress}}}}", container).stdout.strip()

    def cleanup(self) -> None:
        self("rm", "-af", "-t0", check=False)
        self("rmi", "-af", check=False)
        mounts = [line.split()[1] for line in open("/proc/self/mounts") if f" {self.dir}/" in line]
        for m in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)


