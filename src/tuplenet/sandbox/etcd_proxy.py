"""`etcd grpc-proxy` for tests, the sandbox and the scale bench: the watch fan-out tier in front of etcd.

Why: every agent watches the whole prefix; a grpc-proxy coalesces identical watches into one etcd watcher,
so etcd's cost per change grows with the number of proxies (one per rack / few hundred hosts), not hosts.
It serves gRPC only (no JSON gateway): agents reach it with the store's gRPC transport.
`--max-send-bytes` is raised from the proxy's 1.5 MiB default: the store reads pages of up to ~4 MiB.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Sequence

from .etcd import ETCD_BIN
from .procs import free_port, stop_pid, wait_for

MAX_SEND_BYTES = 64 << 20


class GrpcProxy:
    """A grpc-proxy on a free loopback port forwarding to `endpoints`; its files in `basedir`; stopped by
    pid."""

    def __init__(self, basedir: str, endpoints: Sequence[str] | str, port: int | None = None,
                 listen_host: str = "127.0.0.1", extra_args: Sequence[str] = ()) -> None:
        self.basedir = os.path.abspath(basedir)
        self.endpoints = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
        self.listen_host = listen_host
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.listen_host}:{self.port}"

    def command(self) -> list[str]:
        return [ETCD_BIN, "grpc-proxy", "start", "--endpoints", ",".join(self.endpoints),
                "--listen-addr", self.endpoint, "--advertise-client-url", self.endpoint,
                "--data-dir", os.path.join(self.basedir, "data"), "--max-send-bytes", str(MAX_SEND_BYTES),
                *self.extra_args]

    def start(self, timeout: float = 20.0) -> GrpcProxy:
        os.makedirs(self.basedir, exist_ok=True)
        log = open(os.path.join(self.basedir, "grpc-proxy.log"), "ab")  # the child keeps its own copy
        try:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        finally:
            log.close()
        wait_for(self.healthy, timeout=timeout, interval=0.05, what=f"etcd grpc-proxy on {self.endpoint}")
        return self

    def healthy(self) -> bool:
        """The proxy serves: it answers /health on its gRPC port. (Its answer is "false" while etcd is down or
        when etcd has authentication enabled - the proxy's own check carries no token - so it is not read.)"""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"etcd grpc-proxy exited with {self.proc.returncode}; see "
                               f"{self.basedir}/grpc-proxy.log")
        try:
            with urllib.request.urlopen(f"http://{self.endpoint}/health", timeout=1) as resp:
                return "health" in json.load(resp)
        except urllib.error.HTTPError as exc:
            try:
                return "health" in json.loads(exc.read())
            except ValueError:
                return False
        except (OSError, ValueError):
            return False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        stop_pid(self.proc.pid, sig=signal.SIGKILL if kill else signal.SIGTERM)
        self.proc.wait()
        self.proc = None

    def __enter__(self) -> GrpcProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
