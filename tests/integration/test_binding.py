"""Binding claims on simulated hosts: one iface-id on two chassis converges (no flap), requested_chassis
moves a port, a dead owner's port is taken over; the readiness mark follows the installed flows."""

from __future__ import annotations

import threading
import time

from agent_cluster import Cluster
from tuplenet.model import LS, LSP
from tuplenet.sandbox import packets as P
from tuplenet.sandbox.procs import wait_for
from tuplenet.store import Store

X_MAC, Y_MAC = "f2:01:0a:00:00:05", "f2:01:0a:00:00:06"
X_KEY = "entity_view/LS/ls1/lsp/vmx"
WINDOW = 3.0  # s: how long the lsp key is watched for writes once both hosts have the interface


class KeyWrites:
    """Counts the writes to one etcd key from a revision on (a watch in a thread)."""

    def __init__(self, endpoint: str, prefix: str, key: str, revision: int) -> None:
        self.store = Store(endpoint, prefix=prefix)
        self.watch = self.store.watch(key, revision)
        self.values: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for batch in self.watch:
                self.values += [ev.kv.value for ev in batch.events if ev.type == "PUT"]
        except Exception:  # noqa: BLE001 - closed
            pass

    def close(self) -> None:
        self.watch.close()
        self.store.close()


def chassis_of(c: Cluster) -> str | None:
    kv = c.store.get(X_KEY)
    if kv is None:
        return None
    fields = dict(p.split("=", 1) for p in kv.value.split(","))
    return fields.get("chassis")


def setup(c: Cluster, env: dict[str, str] | None = None) -> None:
    """vmx (unbound) in ls1, vmy on hv3 to send from; agents on all three hosts; vmx plugged on hv1 first."""
    c.put(LS("ls1", 1), LSP("ls1", "vmx", "10.0.0.5", X_MAC), LSP("ls1", "vmy", "10.0.0.6", Y_MAC, None, "hv3"))
    for h in ("hv1", "hv2", "hv3"):
        c.host(h).start_agent(c.endpoint, c.prefix, extra_env=env)
    for h in ("hv1", "hv2", "hv3"):
        wait_for(lambda h=h: c.status(h), timeout=20, what=f"agent on {h} ready")
    c.host("hv3").add_vm_port("vmy", "vmy")
    c.host("hv1").add_vm_port("vmx", "vmx")
    wait_for(lambda: chassis_of(c) == "hv1", timeout=10, what="vmx bound to hv1")


def reaches(c: Cluster, host: str) -> None:
    f = P.icmp_frame(Y_MAC, X_MAC, "10.0.0.6", "10.0.0.5")
    assert c.send_until("hv3", "vmy", f, host, "vmx").raw == f


def test_same_iface_id_on_two_live_chassis_does_not_flap(cluster: Cluster) -> None:
    c = cluster
    setup(c)
    writes = KeyWrites(c.endpoint, c.prefix, X_KEY, c.store.revision() + 1)
    try:
        c.host("hv2").add_vm_port("vmx", "vmx")
        time.sleep(WINDOW)  # a measurement window: writes must stay bounded over it
    finally:
        writes.close()
    assert len(writes.values) <= 2, f"{len(writes.values)} writes: {writes.values[:4]}"
    assert chassis_of(c) == "hv1"
    wait_for(lambda: "vmx" in c.status("hv2").get("bindings", {}).get("conflicts", {}), timeout=10,
             what="hv2 reports the conflict")
    st = c.status("hv2")["bindings"]
    assert st["conflicts"]["vmx"] == {"lsp": "ls1/vmx", "chassis": "hv1"}
    assert c.status("hv1")["bindings"]["bound"] == 1
    c.wait_converged("hv1", "hv2", "hv3")
    reaches(c, "hv1")
    c.expect_none("hv3", "vmy", P.icmp_frame(Y_MAC, X_MAC, "10.0.0.6", "10.0.0.5"), "hv2", "vmx")
    log = open(c.host("hv2").agent.logfile).read()
    assert log.count("iface-id vmx: ls1/vmx is bound to live chassis hv1") == 1


def test_requested_chassis_moves_the_port(cluster: Cluster) -> None:
    c = cluster
    setup(c)
    c.host("hv2").add_vm_port("vmx", "vmx")
    wait_for(lambda: "vmx" in c.status("hv2").get("bindings", {}).get("conflicts", {}), timeout=10,
             what="hv2 reports the conflict")
    writes = KeyWrites(c.endpoint, c.prefix, X_KEY, c.store.revision() + 1)
    try:
        c.put(LSP("ls1", "vmx", "10.0.0.5", X_MAC, None, "hv1", requested_chassis="hv2"))
        wait_for(lambda: chassis_of(c) == "hv2", timeout=10, what="vmx moved to hv2")
        time.sleep(WINDOW)
    finally:
        writes.close()
    assert len(writes.values) == 2, writes.values  # the operator's and hv2's claim; hv1 never takes it back
    assert chassis_of(c) == "hv2"
    c.wait_converged("hv1", "hv2", "hv3")
    reaches(c, "hv2")
    wait_for(lambda: "vmx" in c.status("hv1")["bindings"]["conflicts"], timeout=10, what="hv1 reports it")


def test_a_port_requested_on_a_chassis_is_reached_there_before_its_claim(cluster: Cluster) -> None:
    """Peers tunnel to the requested chassis while the port is still unbound in etcd (no claim trip on the
    port-up path); once plugged there and claimed, frames arrive."""
    c = cluster
    c.put(LS("ls1", 1), LSP("ls1", "vmx", "10.0.0.5", X_MAC, requested_chassis="hv2"),
          LSP("ls1", "vmy", "10.0.0.6", Y_MAC, None, "hv3"))
    for h in ("hv2", "hv3"):
        c.host(h).start_agent(c.endpoint, c.prefix)
    c.host("hv3").add_vm_port("vmy", "vmy")
    hv2 = "".join(f"{int(b):02x}" for b in c.host("hv2").ip.split("."))
    wait_for(lambda: [f for f in c.flows("hv3") if f"dl_dst={X_MAC}" in f and hv2 in f], timeout=20,
             what="hv3's flow to reach vmx through hv2")
    assert chassis_of(c) is None  # nobody has claimed it: the flow came from the request alone
    c.host("hv2").add_vm_port("vmx", "vmx")
    wait_for(lambda: chassis_of(c) == "hv2", timeout=10, what="vmx bound to hv2")
    reaches(c, "hv2")


def test_a_port_requested_here_and_plugged_before_the_agent_starts_is_claimed_at_start(cluster: Cluster) -> None:
    c = cluster
    c.put(LS("ls1", 1), LSP("ls1", "vmx", "10.0.0.5", X_MAC, requested_chassis="hv2"),
          LSP("ls1", "vmy", "10.0.0.6", Y_MAC, None, "hv3"))
    c.host("hv2").add_vm_port("vmx", "vmx")
    for h in ("hv2", "hv3"):
        c.host(h).start_agent(c.endpoint, c.prefix)
    c.host("hv3").add_vm_port("vmy", "vmy")
    wait_for(lambda: chassis_of(c) == "hv2", timeout=10, what="vmx claimed by hv2 at start")
    reaches(c, "hv2")


def test_dead_owner_port_is_taken_over(cluster: Cluster) -> None:
    c = cluster
    setup(c, env={"TUPLENET_LIVENESS_TTL": "2"})
    c.host("hv2").add_vm_port("vmx", "vmx")
    wait_for(lambda: "vmx" in c.status("hv2").get("bindings", {}).get("conflicts", {}), timeout=10,
             what="hv2 reports the conflict")
    assert chassis_of(c) == "hv1"
    c.host("hv1").agent.kill()  # no clean stop: the liveness key goes only when its lease expires
    wait_for(lambda: chassis_of(c) == "hv2", timeout=15, what="vmx taken over by hv2")
    c.wait_converged("hv2", "hv3")
    reaches(c, "hv2")


def test_iface_id_naming_ports_in_two_switches_binds_only_where_unambiguous(cluster: Cluster) -> None:
    c = cluster
    c.put(LS("ls1", 1), LS("ls2", 2), LSP("ls1", "vmz", "10.0.0.7", "f2:01:0a:00:00:07"),
          LSP("ls2", "vmz", "10.1.0.7", "f2:01:0a:01:00:07"))
    c.start_agents("hv1")
    c.host("hv1").add_vm_port("vmz", "vmz")
    wait_for(lambda: "vmz" in c.status("hv1")["bindings"]["ambiguous"], timeout=10, what="ambiguity reported")
    assert c.status("hv1")["bindings"]["ambiguous"]["vmz"] == ["ls1/vmz", "ls2/vmz"]
    for ls in ("ls1", "ls2"):
        assert "chassis" not in c.store.get(f"entity_view/LS/{ls}/lsp/vmz").value
    c.wait_converged("hv1")
    ofport = c.host("hv1").ofport("vmz")
    assert not classify_flows(c, "hv1", ofport)
    # The operator records the binding on one of them: that one is used.
    c.put(LSP("ls2", "vmz", "10.1.0.7", "f2:01:0a:01:00:07", None, "hv1"))
    wait_for(lambda: "vmz" not in c.status("hv1")["bindings"]["ambiguous"], timeout=10, what="resolved")
    c.wait_converged("hv1")
    assert any("set_field:0x2->metadata" in f for f in classify_flows(c, "hv1", ofport))  # ls2's datapath
    assert not any("set_field:0x1->metadata" in f for f in classify_flows(c, "hv1", ofport))


def classify_flows(c: Cluster, host: str, ofport: int) -> list[str]:
    """Table 0 (omitted in OVS's text) flows matching frames from `ofport`."""
    return [f for f in c.flows(host) if "table=" not in f and (f"in_port={ofport} " in f or f"in_port={ofport}," in f)]


def installed_mark(c: Cluster, host: str, iface: str) -> str | None:
    out = c.host(host).vsctl("--if-exists", "get", "Interface", iface, "external_ids:tuplenet-installed")
    return out.strip().strip('"') or None


def test_readiness_mark_follows_installed_flows(cluster: Cluster) -> None:
    c = cluster
    c.put(LS("ls1", 1), LSP("ls1", "vmx", "10.0.0.5", X_MAC, None, "hv1"))
    c.start_agents("hv1")
    c.host("hv1").add_vm_port("vmx", "vmx")
    wait_for(lambda: installed_mark(c, "hv1", "vmx") == "true", timeout=10, what="readiness mark")
    ofport = c.host("hv1").ofport("vmx")
    assert classify_flows(c, "hv1", ofport)  # set after the flows are in
    c.delete(LSP("ls1", "vmx", "10.0.0.5", X_MAC))
    wait_for(lambda: installed_mark(c, "hv1", "vmx") is None, timeout=10, what="mark removed")
    assert not classify_flows(c, "hv1", ofport)
