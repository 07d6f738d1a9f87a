"""Patch lsps the agent must ignore: peer bridge = the integration bridge, or a name taken by a port the
agent did not create. Records written straight to etcd (tpctl refuses them)."""

from __future__ import annotations

from agent_cluster import Cluster
from tuplenet.model import LS, LSP
from tuplenet.sandbox.procs import wait_for

PATCH_IP, PATCH_MAC = "255.255.255.255", "ff:ff:ff:ff:ff:ee"


def test_bad_patch_ports_are_ignored_and_foreign_ports_untouched(cluster: Cluster) -> None:
    c = cluster
    h = c.host("hv1")
    h.add_vm_port("eth0")  # someone else's port on br-int (no iface-id)
    h.vsctl("add-br", "br-phy")
    before = h.vsctl("get", "Interface", "eth0", "type", "options", "external_ids")
    c.put(LS("ls1", 1), LS("ls2", 2), LS("ls3", 3),
          LSP("ls1", "pbad", PATCH_IP, PATCH_MAC, "br-int", "hv1"),  # crashed the agent at every start
          LSP("ls2", "eth0", PATCH_IP, PATCH_MAC, "br-phy", "hv1"),  # would retype eth0 into a patch port
          LSP("ls3", "pgood", PATCH_IP, PATCH_MAC, "br-phy", "hv1"))
    c.start_agents("hv1")
    wait_for(lambda: "pgood" in h.vsctl("list-ports", "br-int").split(), timeout=10, what="the good patch port")
    st = wait_for(lambda: (s := c.status("hv1")) and s["ovsdb"].get("foreign_ports") == 1 and s, timeout=10,
                  what="foreign port reported")
    assert st["ovsdb"]["patch_ignored"] == 1
    assert h.agent.alive()
    assert h.vsctl("get", "Interface", "eth0", "type", "options", "external_ids") == before
    assert "pbad" not in h.vsctl("list-ports", "br-int").split()
    assert "eth0-peer" not in h.vsctl("list-ports", "br-phy").split()
    log = open(h.agent.logfile).read()
    assert log.count("ignoring patch port pbad") == 1
    # A restart does not crash either.
    h.agent.stop()
    h.start_agent(c.endpoint, c.prefix)
    wait_for(lambda: (s := c.status("hv1")) and s["pid"] == h.agent.pid, timeout=20, what="restarted agent")
    assert h.agent.alive()
