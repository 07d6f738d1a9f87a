"""Load-balancer health checks on real hosts (namespaces, userspace OVS, Geneve, real agents and guest
kernels): a TCP service behind a VIP with two backends on two hosts; killing one backend's server takes it
out of service within 2 x the check interval and new connections all reach the other; restarting it
brings it back. Backend b1 reaches the monitor address through its default gateway (router port), b2
through an on-link 169.254.0.0/16 route - the two ways docs/lb.md names."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from conftest import e2e_skip_reason
from tuplenet.sandbox.netns import NetnsSandbox, default_mac
from tuplenet.sandbox.procs import wait_for
from tuplenet.store import Store

pytestmark = pytest.mark.e2e
PREFIX = "/tuplenet/"
VIP, PORT, INTERVAL = "10.10.1.100", 8080, 1.0
VMS = {"client": ("hv1", "10.10.1.10"), "b1": ("hv2", "10.10.1.2"), "b2": ("hv3", "10.10.1.3")}
KEY = "communicate/lb_health/LS/LS-A/web/{ip}:8080"

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[2]))); s.listen(64)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[1].encode() + b"\\n"); c.close()
"""

# An HTTP health endpoint (port 8081): 200 on /healthz unless the flag file exists, then 503.
HTTP = """
import http.server, os, sys
flag = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 503 if os.path.exists(flag) else (200 if self.path == "/healthz" else 404)
        self.send_response(code); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8081), H).serve_forever()
"""

CLIENT = """
import socket, sys
for _ in range(int(sys.argv[1])):
    try:
        c = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=2)
        print(c.recv(64).decode().strip() or "EMPTY"); c.close()
    except OSError as exc:
        print("ERR", type(exc).__name__)
"""


class Lab:
    def __init__(self, sb: NetnsSandbox) -> None:
        self.sb = sb
        self.store = Store(sb.etcd_endpoint, prefix=PREFIX)
        self.servers: dict[str, subprocess.Popen] = {}

    def tpctl(self, *args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "tuplenet.cli.tpctl", "-e", self.sb.etcd_endpoint, "-p", PREFIX,
                            *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def serve(self, vm: str) -> None:
        self.servers[vm] = self.sb.spawn(vm, [sys.executable, "-c", SERVER, vm, str(PORT)])

    def flag(self, vm: str) -> str:
        return os.path.join(self.sb.workdir, f"{vm}-unhealthy")

    def serve_http(self, vm: str) -> None:
        self.servers[f"{vm}-http"] = self.sb.spawn(vm, [sys.executable, "-c", HTTP, self.flag(vm)])

    def kill(self, vm: str) -> None:
        p = self.servers.pop(vm)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=10)

    def connect(self, n: int) -> list[str]:
        r = self.sb.exec("client", [sys.executable, "-c", CLIENT, str(n), VIP, str(PORT)], timeout=5 * n + 10)
        return r.stdout.split("\n")[:-1]

    def verdict(self, vm: str, key: str = KEY) -> str | None:
        kv = self.store.get(key.format(ip=VMS[vm][1]))
        return kv.value if kv is not None else None


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    if reason := e2e_skip_reason():
        pytest.skip(reason)
    sb = NetnsSandbox(workdir=f"/tmp/tn-e2e-lbhc-{os.getpid()}", name_prefix="tnh")
    lab = None
    try:
        sb.up(hosts=3, prefix=PREFIX)
        lab = Lab(sb)
        for args in [("ls", "add", "LS-A"), ("lr", "add", "R1"), ("lr", "link", "R1", "LS-A", "10.10.1.1/24")]:
            lab.tpctl(*args)
        for name, (host, ip) in VMS.items():
            lab.tpctl("lsp", "add", "LS-A", name, ip)
            sb.add_vm(name, host=host, ip=f"{ip}/24", mac=default_mac(ip),
                      gateway=None if name == "b2" else "10.10.1.1", iface_id=name)
        sb.exec("b2", ["ip", "route", "add", "169.254.0.0/16", "dev", "eth0"])  # on-link monitor address
        for vm in ("b1", "b2"):
            lab.serve(vm)
            lab.serve_http(vm)
        lab.tpctl("lb", "add", "ls", "LS-A", "web", f"{VIP}:{PORT}", f"10.10.1.2:{PORT},10.10.1.3:{PORT}",
                  "check=tcp", f"interval={int(INTERVAL)}", "rise=2", "fall=2")
        yield lab
    finally:
        if lab is not None:
            lab.store.close()
        sb.down()


def test_dead_backend_leaves_service_within_two_intervals_and_returns(lab: Lab) -> None:
    # Both backends serve through the VIP, and neither has a verdict.
    wait_for(lambda: {"b1", "b2"} <= set(lab.connect(10)), timeout=60, interval=0.5, what="both backends via VIP")
    assert lab.verdict("b1") is None and lab.verdict("b2") is None

    # b1's server dies: the kernel resets the probes; b1 is out within 2 x interval.
    lab.kill("b1")
    t0 = time.monotonic()
    wait_for(lambda: lab.verdict("b1"), timeout=10, interval=0.02, what="b1 marked down")
    took = time.monotonic() - t0
    assert lab.verdict("b1") == "state=down,chassis=hv2"
    assert took <= 2 * INTERVAL + 0.5, f"b1 out of service after {took:.2f}s"

    # Clients recover: every new connection reaches b2 (once the group has dropped b1).
    wait_for(lambda: lab.connect(10) == ["b2"] * 10, timeout=10, interval=0.2, what="all connections to b2")
    assert lab.verdict("b2") is None

    # b1 comes back: its verdict goes and it serves again.
    lab.serve("b1")
    wait_for(lambda: lab.verdict("b1") is None, timeout=15, interval=0.05, what="b1 back in service")
    wait_for(lambda: "b1" in lab.connect(10), timeout=15, interval=0.2, what="b1 serving via the VIP again")


HTTP_KEY = "communicate/lb_health/LS/LS-A/api/{ip}:8081"


def test_http_check_follows_the_status_a_real_server_returns(lab: Lab) -> None:
    """The agent's own TCP (SYN, GET, reset) against real guest kernels and an HTTP server: 2xx keeps a
    backend in service, a 503 takes it out, and it returns with 2xx."""
    lab.tpctl("lb", "add", "ls", "LS-A", "api", "10.10.1.101:8081", "10.10.1.2:8081,10.10.1.3:8081",
              "check=http:/healthz", "interval=1", "rise=2", "fall=2")
    time.sleep(3 * INTERVAL)  # several probes of each backend
    assert lab.verdict("b1", HTTP_KEY) is None and lab.verdict("b2", HTTP_KEY) is None
    open(lab.flag("b2"), "w").close()
    try:
        t0 = time.monotonic()
        wait_for(lambda: lab.verdict("b2", HTTP_KEY), timeout=10, interval=0.02, what="b2 marked down (503)")
        assert time.monotonic() - t0 <= 2 * INTERVAL + 0.5
        assert lab.verdict("b2", HTTP_KEY) == "state=down,chassis=hv3" and lab.verdict("b1", HTTP_KEY) is None
    finally:
        os.unlink(lab.flag("b2"))
    wait_for(lambda: lab.verdict("b2", HTTP_KEY) is None, timeout=10, interval=0.05, what="b2 back (200)")
    lab.tpctl("lb", "del", "ls", "LS-A", "api")
