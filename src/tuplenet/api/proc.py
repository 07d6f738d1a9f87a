"""Run tuplenet-api as a child process on a free loopback port (tests, benchmarks, demos).

Its own directory holds the token file and the log; it is stopped by pid.
"""

from __future__ import annotations

import http.client
import os
import secrets
import ssl
import subprocess
import sys

from tuplenet.sandbox.procs import free_port, stop_pid, wait_for


class ApiProcess:
    def __init__(self, basedir: str, endpoints: str, prefix: str, extra_args: tuple[str, ...] = (),
                 tls: dict[str, str] | None = None) -> None:
        """`tls`: server `cert`, `key`, optional `client_ca` (mTLS) and, for the readiness probe,
        `ca` plus `client_cert`/`client_key` when mTLS is on."""
        self.basedir = os.path.abspath(basedir)
        self.endpoints, self.prefix, self.extra_args, self.tls = endpoints, prefix, extra_args, tls
        self.port = free_port()
        self.token = secrets.token_urlsafe(24)
        self.read_token = secrets.token_urlsafe(24)
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        os.makedirs(self.basedir, exist_ok=True)
        files = {}
        for name, token in (("tokens", self.token), ("read-tokens", self.read_token)):
            path = files[name] = os.path.join(self.basedir, name)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(f"# {name}\n{token}\n")
            os.chmod(path, 0o600)
        args = [sys.executable, "-m", "tuplenet.api.main", "-e", self.endpoints, "-p", self.prefix,
                "--listen", f"127.0.0.1:{self.port}", "--token-file", files["tokens"],
                "--read-token-file", files["read-tokens"], *self.extra_args]
        if self.tls:
            args += ["--tls-cert", self.tls["cert"], "--tls-key", self.tls["key"]]
            if self.tls.get("client_ca"):
                args += ["--tls-client-ca", self.tls["client_ca"]]
        return args

    def start(self, timeout: float = 20.0) -> ApiProcess:
        argv = self.argv()
        log = open(os.path.join(self.basedir, "api.log"), "ab")  # noqa: SIM115 - handed to the child
        env = {k: v for k, v in os.environ.items() if not k.startswith("TUPLENET_API_")}
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                     start_new_session=True)
        log.close()
        wait_for(self.ready, timeout=timeout, interval=0.05, what=f"tuplenet-api on port {self.port}")
        return self

    def connection(self, timeout: float = 10.0) -> http.client.HTTPConnection:
        if not self.tls:
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        ctx = ssl.create_default_context(cafile=self.tls.get("ca"))
        ctx.check_hostname = False
        if self.tls.get("client_cert"):
            ctx.load_cert_chain(self.tls["client_cert"], self.tls["client_key"])
        return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=ctx)

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            with open(os.path.join(self.basedir, "api.log"), encoding="utf-8", errors="replace") as fh:
                tail = fh.read()[-2000:]
            raise RuntimeError(f"tuplenet-api exited with {self.proc.returncode}: {tail}")
        conn = self.connection(timeout=1.0)
        try:
            conn.request("GET", "/api/v2/health", headers={"Authorization": f"Bearer {self.token}"})
            return conn.getresponse().status in (200, 503)
        except OSError:
            return False
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc.pid)
            self.proc.wait(timeout=10)
            self.proc = None
