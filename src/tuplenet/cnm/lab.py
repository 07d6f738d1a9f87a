"""Docker on the namespace sandbox, for the e2e tests and the benchmark (not used by the driver).

dockerd runs in a sandbox host's network namespace with private data root, exec root, socket, pidfile and
key (lab-findings W3). Plugin discovery only looks at the fixed /run/docker/plugins, so each dockerd runs in
a mount namespace of its own with its host's plugin directory bound there. Not `ip netns exec`: that
remounts /sys for the namespace, which hides the cgroup mounts dockerd needs; nsenter switches only the
network namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from tuplenet.sandbox.netns import NetnsSandbox
from tuplenet.sandbox.procs import stop_pid, wait_for

DOCKER = "/usr/bin/docker"  # Debian's CLI (20.10), same API as the daemon
IMAGE = "localhost/bbox:1"
APPLETS = ["sh", "ping", "ip", "wget", "httpd", "sleep", "echo", "cat", "mkdir"]


def docker_missing() -> str | None:
    """Why dockerd cannot be used here, or None."""
    missing = [b for b in ("dockerd", "containerd", "runc", "busybox", "nsenter", "unshare")
               if shutil.which(b) is None]
    if missing or not os.path.exists(DOCKER):
        return f"needs Debian's docker.io and busybox-static (missing: {', '.join(missing) or DOCKER})"
    return None


def build_image_tar(workdir: str) -> str:
    """A 2 MB rootfs of static busybox (no registry needed, lab-findings W1); returns the tarball's path."""
    root = os.path.join(workdir, "rootfs")
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "www"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy(shutil.which("busybox") or "/bin/busybox", os.path.join(root, "bin", "busybox"))
    for a in APPLETS:
        link = os.path.join(root, "bin", a)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(os.path.join(root, "www", "index.html"), "w") as f:
        f.write("hello from tuplenet\n")
    tar = os.path.join(workdir, "bbroot.tar")
    subprocess.run(["tar", "-C", root, "--numeric-owner", "-cf", tar, "."], check=True)
    return tar


def start_driver(sb: NetnsSandbox, host: str, sock: str, prefix: str, *extra: str) -> subprocess.Popen[bytes]:
    """tpcnm inside `host`, serving `sock`; returns once the socket exists."""
    d = sb.host_dir(host)
    argv = [sys.executable, "-m", "tuplenet.cnm.main", "-e", sb.agent_etcd_endpoint, "-p", prefix,
            "--socket", sock, "--ovsdb", os.path.join(d, "db.sock"), "-v", *extra]
    proc = sb.spawn(host, argv, logfile=os.path.join(d, "tpcnm.log"))

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"tpcnm on {host} exited {proc.returncode}; see {d}/tpcnm.log")
        return os.path.exists(sock)

    wait_for(up, timeout=20, what=f"tpcnm on {host}")
    return proc


class Dockerd:
    """One dockerd in a sandbox host that sees `plugins` as /run/docker/plugins."""

    def __init__(self, sb: NetnsSandbox, host: str, plugins: str) -> None:
        self.sb, self.host = sb, host
        self.dir = os.path.join(sb.host_dir(host), "docker")
        os.makedirs(self.dir, exist_ok=True)
        os.makedirs("/run/docker/plugins", exist_ok=True)  # the mount point (the caller removes it)
        self.sock = os.path.join(self.dir, "docker.sock")
        tag = f"{sb.prefix}{host}"
        cmd = (f"mount --bind {plugins} /run/docker/plugins && exec dockerd --data-root {self.dir}/data "
               f"--exec-root {self.dir}/exec --pidfile {self.dir}/dockerd.pid -H unix://{self.sock} "
               f"--iptables=false --ip-masq=false --bridge=none --userland-proxy=false --containerd-namespace "
               f"{tag} --containerd-plugins-namespace {tag}p --config-file {self.dir}/daemon.json")
        with open(os.path.join(self.dir, "daemon.json"), "w") as f:  # its key, not /etc/docker/key.json
            json.dump({"deprecated-key-path": os.path.join(self.dir, "key.json")}, f)
        argv = ["nsenter", f"--net=/run/netns/{sb.ns(host)}", "unshare", "-m", "--propagation", "slave",
                "sh", "-c", cmd]
        with open(os.path.join(self.dir, "dockerd.log"), "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        wait_for(self.up, timeout=60, what=f"dockerd on {host}")

    def up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"dockerd on {self.host} exited: {self.log()}")
        return self.cli("info", "--format", "{{.Driver}}", check=False).returncode == 0

    def log(self) -> str:
        with open(os.path.join(self.dir, "dockerd.log")) as f:
            return f.read()[-3000:]

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([DOCKER, "-H", f"unix://{self.sock}", *args], capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} on {self.host}: {r.stderr.strip()}")
        return r

    def pid_of(self, container: str) -> int:
        return int(self.cli("inspect", "-f", "{{.State.Pid}}", container).stdout)

    def stop(self) -> None:
        """Remove every container, then stop dockerd (its containerd exits with it)."""
        ids = self.cli("ps", "-aq", check=False).stdout.split()
        if ids:
            self.cli("rm", "-f", *ids, check=False)
        stop_pid(self.proc.pid, timeout=20)
