"""An on-demand agent's restart keeps what its host learned: the demand set comes back from the previous
run's status before the first computation, so the reconcile deletes none of the learned flows and the next
packet goes direct (not through the helper again)."""

from __future__ import annotations

import pytest
from test_ondemand import VM1, VM2, lookup_flows, once, packets, ping, topology

from agent_cluster import Cluster
from tuplenet.agent import tables as T
from tuplenet.sandbox.procs import wait_for


@pytest.mark.timeout(120)
def test_restart_keeps_the_learned_flows_and_the_next_packet_goes_direct(cluster: Cluster) -> None:
    c = cluster
    topology(c)
    redirected = (T.FROM_TUNNEL, 1)
    once(c, ("hv1", "vm1"), ping(VM1, VM2[0], VM2[1]), ("hv2", "vm2"))
    wait_for(lambda: lookup_flows(c, "hv1", VM2[0]), timeout=5, what="hv1 to learn vm2")
    wait_for(lambda: ["LS-A", "vm2"] in (c.status("hv1") or {}).get("ondemand", {}).get("wanted", []),
             timeout=5, what="vm2 in hv1's status")
    assert packets(c, "hv3", *redirected) == 1
    agent = c.host("hv1").agent
    agent.restart()
    pid = agent.proc.pid
    wait_for(lambda: (c.status("hv1") or {}).get("pid") == pid, timeout=20, what="the new agent ready")
    assert lookup_flows(c, "hv1", VM2[0])  # kept across the restart
    c.status_until("hv1", lambda s: s["pid"] == pid and ["LS-A", "vm2"] in s["ondemand"]["wanted"], "vm2 wanted")
    once(c, ("hv1", "vm1"), ping(VM1, VM2[0], VM2[1], 2), ("hv2", "vm2"))
    assert packets(c, "hv3", *redirected) == 1  # direct, not through the helper again
    c.wait_converged("hv1")
