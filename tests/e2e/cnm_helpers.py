"""tpcnm on namespace hosts for the e2e tests: start the driver in a host, talk to it like dockerd does,
and play dockerd's part with a sandbox namespace (move the veth in, rename, address, default route)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import httpx

from tuplenet.sandbox.netns import NetnsSandbox
from tuplenet.sandbox.procs import stop_pid, wait_for

PREFIX = "/tuplenet/"
OPTS = {"com.docker.network.endpoint.exposedports": [], "com.docker.network.portmap": []}


class Driver:
    """One tpcnm process inside a sandbox host, serving `sock`."""

    def __init__(self, sb: NetnsSandbox, host: str, sock: str, *extra: str) -> None:
        self.sb, self.host, self.sock = sb, host, sock
        d = sb.host_dir(host)
        self.log = os.path.join(d, "tpcnm.log")
        argv = [sys.executable, "-m", "tuplenet.cnm.main", "-e", sb.agent_etcd_endpoint, "-p", PREFIX,
                "--socket", sock, "--ovsdb", os.path.join(d, "db.sock"), "-v", *extra]
        self.proc = sb.spawn(host, argv, logfile=self.log)
        wait_for(self.answers, timeout=20, what=f"tpcnm on {host}")

    def answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"tpcnm on {self.host} exited {self.proc.returncode}: {self.logtext()}")
        return os.path.exists(self.sock) and self.post("Plugin.Activate")[1] == {"Implements": ["NetworkDriver", "IpamDriver"]}

    def logtext(self) -> str:
        try:
            with open(self.log) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def post(self, method: str, body: Any = None, raw: bytes | None = None) -> tuple[int, dict]:
        """POST like dockerd: no Content-Type, the socket's path as Host, empty body for the first two calls."""
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        with httpx.Client(transport=httpx.HTTPTransport(uds=self.sock), timeout=60) as c:
            r = c.post(f"http://plugin/{method}", content=data, headers={"Host": self.sock})
        return r.status_code, r.json()

    def ok(self, method: str, body: Any = None) -> dict:
        status, answer = self.post(method, body)
        assert status == 200 and "Err" not in answer, (method, answer, self.logtext())
        return answer

    def stop(self) -> None:
        stop_pid(self.proc.pid)
        self.proc.wait(timeout=5)


def network_body(nid: str, pool: str, gateway: str, **generic: str) -> dict:
    return {"NetworkID": nid, "IPv6Data": [],
            "Options": {"com.docker.network.enable_ipv6": False, "com.docker.network.generic": generic},
            "IPv4Data": [{"AddressSpace": "LocalDefault", "Gateway": gateway, "Pool": pool}]}


def endpoint_body(nid: str, eid: str, address: str) -> dict:
    return {"NetworkID": nid, "EndpointID": eid, "Options": OPTS,
            "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": ""}}


class Sandbox:
    """dockerd's part for one container: a namespace that receives the driver's interface."""

    def __init__(self, sb: NetnsSandbox, host: str, name: str) -> None:
        self.sb, self.host, self.ns = sb, host, name
        self.hns = sb.ns(host)
        run(["ip", "netns", "add", name])
        run(["ip", "-n", name, "link", "set", "lo", "up"])

    def attach(self, join: dict, address: str) -> None:
        src = join["InterfaceName"]["SrcName"]
        dev = join["InterfaceName"]["DstPrefix"] + "0"
        run(["ip", "-n", self.hns, "link", "set", src, "netns", self.ns])
        run(["ip", "-n", self.ns, "link", "set", src, "name", dev])
        run(["ip", "-n", self.ns, "addr", "add", address, "dev", dev])
        run(["ip", "-n", self.ns, "link", "set", dev, "up"])
        if join.get("Gateway"):
            run(["ip", "-n", self.ns, "route", "add", "default", "via", join["Gateway"]])

    def detach(self, src: str) -> None:
        """What dockerd does at Leave: the interface goes back to the host under its old name."""
        run(["ip", "-n", self.ns, "link", "set", "eth0", "down"])
        run(["ip", "-n", self.ns, "link", "set", "eth0", "name", src])
        run(["ip", "-n", self.ns, "link", "set", src, "netns", self.hns])

    def ping(self, dst: str, count: int = 1) -> int:
        return subprocess.run(["ip", "netns", "exec", self.ns, "ping", "-c", str(count), "-i", "0.2", "-W", "1",
                               dst], capture_output=True, timeout=count * 2 + 10).returncode

    def remove(self) -> None:
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)


def run(argv: list[str]) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"{' '.join(argv)}: {r.stderr}"
    return r.stdout


def link_exists(sb: NetnsSandbox, host: str, name: str) -> bool:
    return subprocess.run(["ip", "-n", sb.ns(host), "link", "show", name], capture_output=True).returncode == 0
