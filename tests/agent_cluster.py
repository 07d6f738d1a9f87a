"""A simulated cluster for agent tests: real etcd, three dummy-datapath hosts, real agents."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from tuplenet.agent import check
from tuplenet.agent.config import load
from tuplenet.model import LR, LRP, LS, LSP, LSR
from tuplenet.sandbox import packets as P
from tuplenet.sandbox.procs import wait_for
from tuplenet.sandbox.sim import SimHost, SimNetwork
from tuplenet.store import Store


class Cluster:
    def __init__(self, net: SimNetwork, endpoint: str, prefix: str) -> None:
        self.net = net
        self.endpoint = endpoint
        self.prefix = prefix
        self.store = Store(endpoint, prefix=prefix)
        self._last_diff: dict[str, tuple] = {}

    def host(self, name: str) -> SimHost:
        return self.net[name]

    # topology ---------------------------------------------------------------------------------
    def put(self, *entities: object) -> int:
        rev = 0
        for e in entities:
            rev = self.store.put(e.key, e.to_value())
        return rev

    def delete(self, *entities: object) -> None:
        for e in entities:
            self.store.delete(e.key)

    def link(self, lr: str, ls: str, ip: str, prefix: int, mac: str) -> tuple[LRP, LSP]:
        lrp = LRP(lr, f"{lr}_to_{ls}", ip, prefix, mac, f"{ls}_to_{lr}")
        lsp = LSP(ls, f"{ls}_to_{lr}", ip, mac, f"{lr}_to_{ls}")
        self.put(lrp, lsp)
        return lrp, lsp

    def vm(self, host: str, ls: str, name: str, ip: str, mac: str) -> LSP:
        lsp = LSP(ls, name, ip, mac, None, host)
        self.put(lsp)
        self.host(host).add_vm_port(name, name)
        return lsp

    # agents -----------------------------------------------------------------------------------
    def start_agents(self, *names: str) -> None:
        for n in names or list(self.net.hosts):
            self.host(n).start_agent(self.endpoint, self.prefix)
        for n in names or list(self.net.hosts):
            wait_for(lambda n=n: self.status(n), timeout=20, what=f"agent on {n} ready")

    def cfg(self, name: str):
        h = self.host(name)
        env = {**h.env, "ONDEMAND": "0", **(h.agent.env if h.agent else {})}  # the agent's own mode
        return load(["-a", self.endpoint, "-p", self.prefix, "-f", h.ip],
                    {**env, "TUPLENET_OVSDB_PATH": h.db_sock, "TUPLENET_RUNDIR": self.rundir(name)})

    def rundir(self, name: str) -> str:
        return os.path.join(self.host(name).dir, "tuplenet")

    def status(self, name: str) -> dict | None:
        try:
            with open(os.path.join(self.rundir(name), "status.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def status_until(self, name: str, pred, what: str, timeout: float = 10.0) -> dict:
        """The agent's status once `pred(status)` holds: it is rewritten once the agent's events quieten
        (agent/status.py StatusPacer), so a test reads it after the effect it checks, not in the same instant."""
        def ok() -> dict | None:
            st = self.status(name)
            try:
                return st if st is not None and pred(st) else None
            except (KeyError, TypeError):
                return None
        return wait_for(ok, timeout=timeout, what=what)

    def converged(self, name: str) -> bool:
        missing, extra, *_ = check.diff(self.cfg(name))
        self._last_diff[name] = (missing, extra)
        return not missing and not extra

    def wait_converged(self, *names: str, timeout: float = 20.0) -> None:
        for n in names or list(self.net.hosts):
            try:
                wait_for(lambda n=n: self.converged(n), timeout=timeout, interval=0.05,
                         what=f"flows on {n} to match a fresh computation")
            except TimeoutError as exc:
                missing, extra = self._last_diff.get(n, ([], []))
                agent = self.host(n).agent
                detail = [f"{len(missing)} missing, {len(extra)} extra; agent alive: {agent and agent.alive()}",
                          *(f"missing {f.to_text()}" for f in missing[:5]), *(f"extra {hex(c)}" for c in extra[:5])]
                raise TimeoutError(f"{exc}\n" + "\n".join(detail)) from None

    def flows(self, name: str) -> list[str]:
        return self.host(name).dump_flows()

    # packets ----------------------------------------------------------------------------------
    def send_until(self, src_host: str, src_port: str, frame: bytes, dst_host: str, dst_port: str,
                   timeout: float = 10.0) -> P.Frame:
        """Inject `frame` until it shows up on the destination port (flows converge asynchronously)."""
        dst = self.host(dst_host)
        mark = dst.tx_mark(dst_port)

        def attempt() -> list[bytes]:
            self.host(src_host).inject(src_port, frame)
            try:
                return dst.wait_tx_after(dst_port, mark, 1, timeout=0.3)
            except TimeoutError:
                return []

        got = wait_for(attempt, timeout=timeout, interval=0.0, what=f"frame at {dst_host}:{dst_port}")
        return P.parse(got[-1])

    def expect_none(self, src_host: str, src_port: str, frame: bytes, dst_host: str, dst_port: str,
                    wait: float = 0.5) -> None:
        dst = self.host(dst_host)
        mark = dst.tx_mark(dst_port)
        self.host(src_host).inject(src_port, frame)
        with pytest.raises(TimeoutError):
            dst.wait_tx_after(dst_port, mark, 1, timeout=wait)


def tutorial(c: Cluster) -> dict[str, LSP]:
    """0.3 tutorial topology: LS-A and LS-B behind LR-central; vm1/vm3 on hv1, vm2 on hv2, vm4 on hv3."""
    c.put(LS("LS-A", 1), LS("LS-B", 2), LR("LR-central", 3))
    c.link("LR-central", "LS-A", "10.10.1.1", 24, "f2:01:0a:0a:01:01")
    c.link("LR-central", "LS-B", "10.10.2.1", 24, "f2:01:0a:0a:02:01")
    c.put(LSR("LR-central", "outside", "0.0.0.0", 0, "10.10.2.254", "LR-central_to_LS-B"))
    return {
        "vm1": c.vm("hv1", "LS-A", "vm1", "10.10.1.2", "f2:01:0a:0a:01:02"),
        "vm2": c.vm("hv2", "LS-A", "vm2", "10.10.1.3", "f2:01:0a:0a:01:03"),
        "vm3": c.vm("hv1", "LS-B", "vm3", "10.10.2.2", "f2:01:0a:0a:02:02"),
        "vm4": c.vm("hv3", "LS-B", "vm4", "10.10.2.3", "f2:01:0a:0a:02:03"),
    }


def derived_mac(ip: str) -> str:
    """The MAC tpctl derives from an IP (f2:01 + the address bytes)."""
    return "f2:01:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


def router_chain(c: Cluster) -> None:
    """0.3's static-route chain: LS-A–LR-A(hv1)–LS-B–LR-B(hv2)–LS-C–LR-C(hv1)–LS-D–LR-D(hv2)."""
    c.put(LS("LS-A", 1), LS("LS-B", 2), LS("LS-C", 3), LS("LS-D", 4),
          LR("LR-A", 11, "hv1"), LR("LR-B", 12, "hv2"), LR("LR-C", 13, "hv1"), LR("LR-D", 14, "hv2"))
    for lr, ls, ip in (("LR-A", "LS-A", "10.10.1.1"), ("LR-A", "LS-B", "10.10.2.1"),
                       ("LR-B", "LS-B", "10.10.2.2"), ("LR-B", "LS-C", "10.10.3.2"),
                       ("LR-C", "LS-C", "10.10.3.3"), ("LR-C", "LS-D", "10.10.4.3"),
                       ("LR-D", "LS-D", "10.10.4.4")):
        c.link(lr, ls, ip, 24, derived_mac(ip))
    fwd, back = "10.10.4.0", "10.10.1.0"
    c.put(LSR("LR-A", "fwd", fwd, 24, "10.10.2.2", "LR-A_to_LS-B"),
          LSR("LR-B", "fwd", fwd, 24, "10.10.3.3", "LR-B_to_LS-C"),
          LSR("LR-B", "back", back, 24, "10.10.2.1", "LR-B_to_LS-B"),
          LSR("LR-C", "back", back, 24, "10.10.3.2", "LR-C_to_LS-C"),
          LSR("LR-D", "back", back, 24, "10.10.4.3", "LR-D_to_LS-D"))


@pytest.fixture
def cluster(sim3: SimNetwork, etcd, prefix: str) -> Iterator[Cluster]:
    c = Cluster(sim3, etcd.endpoint, prefix)
    try:
        yield c
    finally:
        c.store.close()
