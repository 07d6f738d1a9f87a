"""End to end on real hosts: namespaces, userspace OVS, Geneve, real agents, real ping and TCP."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from conftest import e2e_skip_reason
from tuplenet.sandbox.netns import NetnsSandbox, default_mac
from tuplenet.sandbox.procs import wait_for

pytestmark = pytest.mark.e2e
PREFIX = "/tuplenet/"
VMS = {  # name: host, switch, ip, gateway
    "vm1": ("hv1", "LS-A", "10.10.1.2", "10.10.1.1"),
    "vm2": ("hv2", "LS-A", "10.10.1.3", "10.10.1.1"),
    "vm3": ("hv3", "LS-B", "10.10.2.2", "10.10.2.1"),
    "vm5": ("hv1", "LS-C", "10.10.3.2", "10.10.3.1"),
}


class Net:
    def __init__(self, sb: NetnsSandbox) -> None:
        self.sb = sb

    def tpctl(self, *args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "tuplenet.cli.tpctl", "-e", self.sb.etcd_endpoint, "-p", PREFIX,
                            *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def ping(self, src: str, dst: str, count: int = 1, interval: str = "0.2", wait: str = "1") -> int:
        r = self.sb.exec(src, ["ping", "-c", str(count), "-i", interval, "-W", wait, dst], check=False,
                         timeout=count * 2 + 10)
        return r.returncode

    def reachable(self, src: str, dst: str, timeout: float = 30) -> None:
        wait_for(lambda: self.ping(src, dst) == 0, timeout=timeout, interval=0.1, what=f"{src} -> {dst}")

    def check(self, host: str) -> subprocess.CompletedProcess:
        h = self.sb.state["hosts"][host]
        argv = [sys.executable, "-m", "tuplenet.agent.main", "check", "-a", self.sb.agent_etcd_endpoint,
                "-p", PREFIX, "-f", h["tunnel_ip"]]
        full, env = self.sb.command(host, argv)
        env["TUPLENET_OVSDB_PATH"] = os.path.join(h["dir"], "db.sock")
        env["TUPLENET_RUNDIR"] = os.path.join(h["dir"], "tuplenet")  # the agent's: its mode and status live there
        return subprocess.run(full, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    if reason := e2e_skip_reason():
        pytest.skip(reason)
    sb = NetnsSandbox(workdir=f"/tmp/tn-e2e-agents-{os.getpid()}", name_prefix="tna")
    try:
        sb.up(hosts=3, prefix=PREFIX)
        n = Net(sb)
        for args in [("ls", "add", "LS-A"), ("ls", "add", "LS-B"), ("ls", "add", "LS-C"),
                     ("lr", "add", "R1"), ("lr", "add", "R2"),
                     ("lr", "link", "R1", "LS-A", "10.10.1.1/24"), ("lr", "link", "R1", "LS-B", "10.10.2.1/24"),
                     ("lr", "link", "R2", "LS-B", "10.10.2.254/24"), ("lr", "link", "R2", "LS-C", "10.10.3.1/24"),
                     ("lsr", "add", "R1", "to-c", "10.10.3.0/24", "10.10.2.254", "R1_to_LS-B"),
                     ("lsr", "add", "R2", "to-a", "10.10.1.0/24", "10.10.2.1", "R2_to_LS-B")]:
            n.tpctl(*args)
        for name, (host, ls, ip, gw) in VMS.items():
            n.tpctl("lsp", "add", ls, name, ip)
            sb.add_vm(name, host=host, ip=f"{ip}/24", mac=default_mac(ip), gateway=gw, iface_id=name)
        yield n
    finally:
        sb.down()


def test_ping_within_switch_across_hosts(net: Net) -> None:
    net.reachable("vm1", "10.10.1.3")
    assert net.ping("vm1", "10.10.1.3", count=5) == 0


def test_ping_across_one_router(net: Net) -> None:
    net.reachable("vm1", "10.10.2.2")
    assert net.ping("vm3", "10.10.1.2", count=5) == 0


def test_ping_across_two_routers(net: Net) -> None:
    net.reachable("vm3", "10.10.3.2")
    net.reachable("vm2", "10.10.3.2")
    r = net.sb.exec("vm2", ["ping", "-c", "1", "-W", "2", "10.10.3.2"], check=False)
    assert "ttl=62" in r.stdout  # 64 − one decrement per router


def test_tcp_transfer_content_intact(net: Net, tmp_path) -> None:
    net.reachable("vm1", "10.10.2.2")
    data = os.urandom(4 << 20)
    src = tmp_path / "payload.bin"
    src.write_bytes(data)
    server = net.sb.spawn("vm3", [sys.executable, "-c", (
        "import hashlib, socket\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('10.10.2.2', 5001)); s.listen(1); c, _ = s.accept(); h = hashlib.sha256(); n = 0\n"
        "while (b := c.recv(65536)):\n    h.update(b); n += len(b)\n"
        f"open('{tmp_path}/got', 'w').write(f'{{n}} {{h.hexdigest()}}')\n")])
    try:
        wait_for(lambda: ":5001" in net.sb.exec("vm3", ["ss", "-ltn"], check=False).stdout, timeout=10,
                 what="server listening")
        net.sb.exec("vm1", [sys.executable, "-c", (
            "import socket, sys\n"
            "c = socket.create_connection(('10.10.2.2', 5001), timeout=20)\n"
            f"c.sendall(open('{src}', 'rb').read()); c.shutdown(socket.SHUT_WR); c.recv(1)\n")], timeout=60)
        server.wait(timeout=30)
    finally:
        server.kill()
    assert (tmp_path / "got").read_text() == f"{len(data)} {hashlib.sha256(data).hexdigest()}"


def test_agent_restart_during_continuous_ping_loses_nothing(net: Net) -> None:
    net.reachable("vm1", "10.10.2.2")
    result: dict = {}

    def pinger() -> None:
        result["r"] = net.sb.exec("vm1", ["ping", "-c", "150", "-i", "0.02", "-W", "1", "10.10.2.2"],
                                  check=False, timeout=60)

    t = threading.Thread(target=pinger)
    t.start()
    for host in ("hv1", "hv3"):
        net.sb.agent_restart(host)
    t.join()
    out = result["r"].stdout
    assert " 0% packet loss" in out, out


def test_kill9_agent_recovers_and_flows_match_fresh_computation(net: Net) -> None:
    net.sb.agent_kill("hv2")
    net.sb.agent_start("hv2")
    net.reachable("vm1", "10.10.1.3")
    last: list[str] = [""]

    def same() -> bool:
        r = net.check("hv2")
        last[0] = (r.stdout + r.stderr)[-3000:]
        return r.returncode == 0

    try:
        wait_for(same, timeout=30, interval=0.2, what="hv2 flows equal a fresh computation")
    except TimeoutError:
        pytest.fail(f"hv2 flows differ from a fresh computation:\n{last[0]}")


def test_delete_port_stops_traffic_and_readd_resumes(net: Net) -> None:
    net.reachable("vm1", "10.10.1.3")
    net.tpctl("lsp", "del", "LS-A", "vm2")
    wait_for(lambda: net.ping("vm1", "10.10.1.3") != 0, timeout=15, interval=0.1, what="traffic to stop")
    net.tpctl("lsp", "add", "LS-A", "vm2", "10.10.1.3")
    net.reachable("vm1", "10.10.1.3")
