"""Load balancers on real hosts (namespaces, userspace OVS, Geneve, real agents and guest kernels): a TCP echo
service behind a switch VIP (client on hv1, backends on hv2 and hv3; bytes both ways, connections spread),
a backend reaching its own VIP (hairpin), UDP, and a VIP on a router pinned to hv1 reached from another
subnet."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from conftest import e2e_skip_reason
from tuplenet.sandbox.netns import NetnsSandbox, default_mac
from tuplenet.sandbox.procs import wait_for

pytestmark = pytest.mark.e2e
PREFIX = "/tuplenet/"
VIP, RVIP, PORT = "10.10.1.100", "10.20.0.100", 7000
VMS = {"client": ("hv1", "LS-A", "10.10.1.10"), "b1": ("hv2", "LS-A", "10.10.1.2"), "b2": ("hv3", "LS-A", "10.10.1.3"),
       "far": ("hv2", "LS-B", "10.10.2.10")}

SERVER = """
import socket, sys, threading
name, port = sys.argv[1], int(sys.argv[2])
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    while True:
        c, _ = s.accept()
        data = c.recv(65536)
        c.sendall(name.encode() + b":" + data); c.close()
def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", port))
    while True:
        data, peer = u.recvfrom(2048)
        u.sendto(name.encode() + b":" + data, peer)
threading.Thread(target=udp, daemon=True).start()
tcp()
"""

CLIENT = """
import socket, sys
proto, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for i in range(n):
    msg = f"hello-{i}-".encode() * 50
    try:
        if proto == "tcp":
            c = socket.create_connection((host, port), timeout=2); c.sendall(msg)
            got = b""
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                got += chunk
            c.close()
        else:
            c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.settimeout(2); c.connect((host, port))
            c.send(msg); got, peer = c.recvfrom(65536)[0], c.getpeername()
        name, _, echoed = got.partition(b":")
        print(name.decode() if echoed == msg else "BAD")
    except OSError as exc:
        print("ERR", type(exc).__name__)
"""


class Lab:
    def __init__(self, sb: NetnsSandbox) -> None:
        self.sb = sb
        self.servers: list[subprocess.Popen] = []

    def tpctl(self, *args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "tuplenet.cli.tpctl", "-e", self.sb.etcd_endpoint, "-p", PREFIX,
                            *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def connect(self, vm: str, host: str, n: int, proto: str = "tcp") -> list[str]:
        r = self.sb.exec(vm, [sys.executable, "-c", CLIENT, proto, host, str(PORT), str(n)], timeout=5 * n + 10)
        return r.stdout.split("\n")[:-1]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    if reason := e2e_skip_reason():
        pytest.skip(reason)
    sb = NetnsSandbox(workdir=f"/tmp/tn-e2e-lb-{os.getpid()}", name_prefix="tlb")
    lab = None
    try:
        sb.up(hosts=3, prefix=PREFIX)
        lab = Lab(sb)
        for args in [("ls", "add", "LS-A"), ("ls", "add", "LS-B"), ("lr", "add", "R1", "hv1"),
                     ("lr", "link", "R1", "LS-A", "10.10.1.1/24"), ("lr", "link", "R1", "LS-B", "10.10.2.1/24")]:
            lab.tpctl(*args)
        for name, (host, ls, ip) in VMS.items():
            lab.tpctl("lsp", "add", ls, name, ip)
            sb.add_vm(name, host=host, ip=f"{ip}/24", mac=default_mac(ip), gateway=ip.rsplit(".", 1)[0] + ".1",
                      iface_id=name)
        for vm in ("b1", "b2"):
            lab.servers.append(sb.spawn(vm, [sys.executable, "-c", SERVER, vm, str(PORT)]))
        lab.tpctl("lb", "add", "ls", "LS-A", "web", f"{VIP}:{PORT}", f"10.10.1.2:{PORT},10.10.1.3:{PORT}")
        lab.tpctl("lb", "add", "ls", "LS-A", "dns", f"{VIP}:{PORT}", f"10.10.1.2:{PORT},10.10.1.3:{PORT}",
                  "protocol=udp")
        lab.tpctl("lb", "add", "lr", "R1", "rweb", f"{RVIP}:{PORT}", f"10.10.1.2:{PORT},10.10.1.3:{PORT}")
        yield lab
    finally:
        if lab is not None:
            for p in lab.servers:
                p.terminate()
        sb.down()


def test_tcp_service_behind_a_switch_vip(lab: Lab) -> None:
    got = wait_for(lambda: (r := lab.connect("client", VIP, 20)) and set(r) == {"b1", "b2"} and r,
                   timeout=60, interval=0.5, what="echoes from both backends through the VIP")
    assert len(got) == 20 and set(got) == {"b1", "b2"}  # every byte echoed back, from either backend


def test_udp_through_the_vip(lab: Lab) -> None:
    got = wait_for(lambda: (r := lab.connect("client", VIP, 10, "udp")) and all(x in ("b1", "b2") for x in r) and r,
                   timeout=30, interval=0.5, what="UDP answers through the VIP")
    assert len(got) == 10


def test_hairpin_backend_reaches_its_own_vip(lab: Lab) -> None:
    got = wait_for(lambda: (r := lab.connect("b1", VIP, 10)) and "b1" in r and all(x in ("b1", "b2") for x in r)
                   and r, timeout=30, interval=0.5, what="b1 through its own VIP, itself among the answers")
    assert len(got) == 10


def test_router_vip_on_a_pinned_router(lab: Lab) -> None:
    got = wait_for(lambda: (r := lab.connect("far", RVIP, 10)) and all(x in ("b1", "b2") for x in r) and r,
                   timeout=30, interval=0.5, what="LS-B client through the router's VIP")
    assert len(got) == 10


def test_router_hairpin_backend_reaches_the_router_vip(lab: Lab) -> None:
    got = wait_for(lambda: (r := lab.connect("b1", RVIP, 10)) and "b1" in r and all(x in ("b1", "b2") for x in r)
                   and r, timeout=30, interval=0.5, what="b1 through the router's VIP, itself among the answers")
    assert len(got) == 10
