"""A private single-member etcd server for tests, the demo and benchmarks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.request

from .procs import free_port, stop_pid, wait_for

ETCD_BIN = shutil.which("etcd") or "/usr/bin/etcd"


class EtcdServer:
    """etcd on free loopback ports with its data in `basedir`; stopped by pid."""

    def __init__(self, basedir: str, name: str = "default") -> None:
        self.basedir = os.path.abspath(basedir)
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def start(self, timeout: float = 20.0) -> EtcdServer:
        os.makedirs(self.basedir, exist_ok=True)
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [
            ETCD_BIN, "--name", self.name, "--data-dir", os.path.join(self.basedir, "data"),
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"{self.name}={peer}",
            "--logger", "zap", "--log-outputs", os.path.join(self.basedir, "etcd.log"),
        ]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(self.healthy, timeout=timeout, interval=0.05, what=f"etcd on {self.endpoint}")
        return self

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"etcd exited with {self.proc.returncode}; see {self.basedir}/etcd.log")
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as resp:
                return json.load(resp).get("health") == "true"
        except OSError:
            return False

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        stop_pid(self.proc.pid, sig=signal.SIGKILL if kill else signal.SIGTERM)
        self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> EtcdServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
