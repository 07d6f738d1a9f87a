"""A private single-member etcd server for tests, the demo and benchmarks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from .procs import free_port, stop_pid, wait_for

ETCD_BIN = shutil.which("etcd") or "/usr/bin/etcd"


@dataclass(frozen=True)
class EtcdTLS:
    """Serve clients over https with these files; `client_cert_auth` demands a certificate signed by `ca`
    (`client_cert`/`client_key` are then what the health check presents)."""

    ca: str
    cert: str
    key: str
    client_cert_auth: bool = False
    client_cert: str | None = None
    client_key: str | None = None


class EtcdServer:
    """etcd on free loopback ports with its data in `basedir`; stopped by pid. `extra_args` go to etcd as they
    are (e.g. ["--auth-token-ttl", "2"])."""

    def __init__(self, basedir: str, name: str = "default", extra_args: Sequence[str] = (),
                 tls: EtcdTLS | None = None) -> None:
        self.basedir = os.path.abspath(basedir)
        self.name = name
        self.extra_args = list(extra_args)
        self.tls = tls
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.endpoint}"

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
        if self.tls:
            args += ["--cert-file", self.tls.cert, "--key-file", self.tls.key, "--trusted-ca-file", self.tls.ca]
            if self.tls.client_cert_auth:
                args.append("--client-cert-auth")
        args += self.extra_args
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(self.healthy, timeout=timeout, interval=0.05, what=f"etcd on {self.endpoint}")
        return self

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"etcd exited with {self.proc.returncode}; see {self.basedir}/etcd.log")
        context = None
        if self.tls:
            context = ssl.create_default_context(cafile=self.tls.ca)
            if self.tls.client_cert:
                context.load_cert_chain(self.tls.client_cert, self.tls.client_key)
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1, context=context) as resp:
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
