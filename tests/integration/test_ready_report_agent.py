"""Port readiness in etcd with real agents: `tpctl lsp show` says ready=true once the port's flows are in on
the chassis it is bound to, false while that chassis reports it is not, and unknown once the agent is gone
(its report lives under its liveness lease). Plus tpctl's plain output and a garbage report."""

from __future__ import annotations

import json

from test_tpctl_helpers import ok, run

from agent_cluster import Cluster
from tuplenet.model import LR, LS, LSP
from tuplenet.sandbox.procs import wait_for
from tuplenet.store import Store

MAC1, MAC2 = "f2:01:0a:00:00:02", "f2:01:0a:00:00:03"


def states(etcd, prefix: str) -> dict[str, str | None]:
    return {p["name"]: p.get("ready") for p in json.loads(ok(etcd, prefix, "-j", "lsp", "show", "ls1"))}


def mark(c: Cluster, host: str, iface: str) -> str | None:
    out = c.host(host).vsctl("--if-exists", "get", "Interface", iface, "external_ids:tuplenet-installed")
    return out.strip().strip('"') or None


def test_lsp_show_follows_the_bound_agent(cluster: Cluster, etcd, prefix: str) -> None:
    c = cluster
    c.put(LS("ls1", 1), LR("lr1", 2))
    c.link("lr1", "ls1", "10.0.0.1", 24, "f2:01:0a:00:00:01")
    c.put(LSP("ls1", "vm2", "10.0.0.3", MAC2, None, "hv2"))  # recorded on hv2, no interface there
    assert states(etcd, prefix) == {"ls1_to_lr1": None, "vm2": "unknown"}  # no agent reports yet
    for h in ("hv1", "hv2"):
        c.host(h).env["TUPLENET_LIVENESS_TTL"] = "2"  # the report goes with the lease: quickly here
    c.start_agents("hv1", "hv2")
    wait_for(lambda: states(etcd, prefix)["vm2"] == "false", timeout=10, what="hv2 reports vm2 not ready")

    c.vm("hv1", "ls1", "vm1", "10.0.0.2", MAC1)
    wait_for(lambda: states(etcd, prefix)["vm1"] == "true", timeout=15, interval=0.05, what="vm1 ready")
    assert mark(c, "hv1", "vm1") == "true"  # the OVSDB mark and the report agree
    assert states(etcd, prefix) == {"ls1_to_lr1": None, "vm1": "true", "vm2": "false"}
    report, live = c.store.get("communicate/ready/hv1"), c.store.get("liveness/chassis/hv1")
    assert json.loads(report.value) == {"ready": {"ls1": ["vm1"]}}  # one key for the chassis
    assert report.lease and report.lease == live.lease  # under the agent's liveness lease
    plain = ok(etcd, prefix, "lsp", "show", "ls1", "vm1")
    assert plain == ("vm1:\n  - ip     : 10.0.0.2\n  - mac    : f2:01:0a:00:00:02\n  - peer   : \n"
                     "  - chassis: hv1\n  - ready  : true\n\n")
    assert "ready" not in ok(etcd, prefix, "lsp", "show", "ls1", "ls1_to_lr1")  # router-facing: none

    c.host("hv1").del_vm_port("vm1")  # the VM goes: its flows go, the report follows
    wait_for(lambda: states(etcd, prefix)["vm1"] == "false", timeout=10, what="vm1 no longer ready")
    c.host("hv1").add_vm_port("vm1", "vm1")
    wait_for(lambda: states(etcd, prefix)["vm1"] == "true", timeout=10, what="vm1 ready again")

    c.host("hv1").agent.kill()  # kill -9: nothing cleans up, the lease expires
    wait_for(lambda: states(etcd, prefix)["vm1"] == "unknown", timeout=10, what="hv1's report gone with its lease")
    assert states(etcd, prefix)["vm2"] == "false"  # hv2 still reports


def test_garbage_report_reads_as_unknown_with_a_warning(etcd, prefix: str) -> None:
    with Store(etcd.endpoint, prefix=prefix) as s:
        ok(etcd, prefix, "ls", "add", "ls1")
        s.put("entity_view/LS/ls1/lsp/a", "ip=10.0.0.2,mac=f2:01:0a:00:00:02,chassis=hv1")
        s.put("entity_view/LS/ls1/lsp/b", "ip=10.0.0.3,mac=f2:01:0a:00:00:03,chassis=hv2")
        s.put("communicate/ready/hv1", '{"ready": {"ls1": [1, 2]}}')
        s.put("communicate/ready/hv2", '{"ready": {"ls1": ["b"]}}')
        r = run(etcd, prefix, "lsp", "show", "ls1")
        assert r.rc == 0
        assert "a:\n  - ip     : 10.0.0.2\n  - mac    : f2:01:0a:00:00:02\n  - peer   : \n  - chassis: hv1\n" \
            "  - ready  : unknown\n" in r.out
        assert "  - chassis: hv2\n  - ready  : true\n" in r.out
        assert r.err == ("warning: skipped bad record communicate/ready/hv1: readiness report: bad port list for "
                         "switch 'ls1'\n")
        s.delete_prefix("")
