"""ACLs on real hosts (namespaces, userspace OVS, Geneve, real agents and guest kernels): a security group
with default deny and allowed service ports; a rule that blocks one port stops new connections to it while
an established, still-allowed TCP connection keeps flowing without a single lost exchange; reject answers a
real TCP connect with a reset (connection refused at once, not a timeout)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from conftest import e2e_skip_reason
from tuplenet.sandbox.netns import NetnsSandbox, default_mac
from tuplenet.sandbox.procs import wait_for

pytestmark = pytest.mark.e2e
PREFIX = "/tuplenet/"
VMS = {"client": ("hv1", "10.10.1.10"), "server": ("hv2", "10.10.1.2")}
PORTS = (7000, 7001, 7002)

SERVER = """
import socket, sys, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()
def echo(c):
    while True:
        data = c.recv(65536)
        if not data:
            break
        c.sendall(data)
for p in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
threading.Event().wait()
"""

# One long-lived connection: an exchange every 50 ms, one line per exchange, until killed.
STREAM = """
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
i = 0
while True:
    msg = f"ping-{i}".encode()
    try:
        c.sendall(msg)
        got = c.recv(64)
        print("ok" if got == msg else "BAD", i, flush=True)
    except OSError as exc:
        print("ERR", type(exc).__name__, flush=True)
        break
    i += 1
    time.sleep(0.05)
"""

# A fresh connection: OK, REFUSED (a reset) or TIMEOUT.
CONNECT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    c.sendall(b"x"); print("OK" if c.recv(1) == b"x" else "BAD")
except ConnectionRefusedError:
    print("REFUSED")
except OSError as exc:
    print("TIMEOUT" if "timed out" in str(exc) else type(exc).__name__)
"""


class Lab:
    def __init__(self, sb: NetnsSandbox) -> None:
        self.sb = sb
        self.procs: list[subprocess.Popen] = []

    def tpctl(self, *args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "tuplenet.cli.tpctl", "-e", self.sb.etcd_endpoint, "-p", PREFIX,
                            *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def connect(self, port: int, timeout: float = 1.5) -> str:
        r = self.sb.exec("client", [sys.executable, "-c", CONNECT, VMS["server"][1], str(port), str(timeout)],
                         timeout=timeout + 10)
        return r.stdout.strip()


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    if reason := e2e_skip_reason():
        pytest.skip(reason)
    sb = NetnsSandbox(workdir=f"/tmp/tn-e2e-acl-{os.getpid()}", name_prefix="tacl")
    lab = None
    try:
        sb.up(hosts=2, prefix=PREFIX)
        lab = Lab(sb)
        lab.tpctl("ls", "add", "LS-A")
        for name, (host, ip) in VMS.items():
            lab.tpctl("lsp", "add", "LS-A", name, ip)
            sb.add_vm(name, host=host, ip=f"{ip}/24", mac=default_mac(ip), iface_id=name)
        lab.procs.append(sb.spawn("server", [sys.executable, "-c", SERVER, *map(str, PORTS)]))
        # The server's security group: nothing reaches it but TCP 7000-7001 (and replies to what it opens).
        lab.tpctl("pg", "add", "servers", "LS-A/server")
        lab.tpctl("acl", "add", "pg", "servers", "deny", "out", "1", "drop")
        lab.tpctl("acl", "add", "pg", "servers", "svc", "out", "100", "allow-related", "proto=tcp", "dport=7000-7001")
        yield lab
    finally:
        if lab is not None:
            for p in lab.procs:
                p.terminate()
        sb.down()


def test_security_group_allows_only_its_ports(lab: Lab) -> None:
    wait_for(lambda: lab.connect(7000) == "OK" and lab.connect(7001) == "OK", timeout=60, interval=0.5,
             what="allowed ports reachable")
    wait_for(lambda: lab.connect(7002) == "TIMEOUT", timeout=30, interval=0.5, what="7002 dropped")


def test_blocking_a_port_keeps_an_established_allowed_connection(lab: Lab, tmp_path) -> None:
    wait_for(lambda: lab.connect(7001) == "OK", timeout=60, interval=0.5, what="7001 reachable")
    log = tmp_path / "stream.log"
    lab.procs.append(lab.sb.spawn("client", [sys.executable, "-c", STREAM, VMS["server"][1], "7000"],
                                  logfile=str(log)))

    def lines() -> list[str]:
        return log.read_text().splitlines() if log.exists() else []

    wait_for(lambda: len(lines()) >= 10, timeout=20, interval=0.1, what="the long-lived connection flowing")
    before = len(lines())
    lab.tpctl("acl", "add", "pg", "servers", "no-7001", "out", "200", "drop", "proto=tcp", "dport=7001")
    wait_for(lambda: lab.connect(7001) == "TIMEOUT", timeout=30, interval=0.2, what="7001 blocked")
    time.sleep(1.0)  # the stream keeps going after the change has taken effect
    after = lines()
    assert len(after) >= before + 20, after[-5:]
    assert all(ln.startswith("ok ") for ln in after), [ln for ln in after if not ln.startswith("ok ")][:3]
    # A new connection to the still-allowed port works too.
    assert lab.connect(7000) == "OK"


def test_reject_refuses_at_once(lab: Lab) -> None:
    lab.tpctl("acl", "add", "pg", "servers", "rej-7002", "out", "300", "reject", "proto=tcp", "dport=7002")
    t0 = time.monotonic()
    wait_for(lambda: lab.connect(7002, timeout=5) == "REFUSED", timeout=30, interval=0.2, what="7002 refused")
    assert time.monotonic() - t0 < 30
    t1 = time.monotonic()
    assert lab.connect(7002, timeout=5) == "REFUSED" and time.monotonic() - t1 < 4  # a reset, not a timeout
