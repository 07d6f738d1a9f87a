"""The agent's Prometheus endpoint: off by default, scrapes cleanly, and says what `tuplenet status` says."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent_cluster import Cluster, tutorial
from tuplenet.agent.config import ConfigError, load
from tuplenet.sandbox.procs import free_port, wait_for


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.status == 200
        return r.read().decode()


def test_metrics_endpoint_scrapes_cleanly_and_matches_status(cluster: Cluster) -> None:
    c = cluster
    tutorial(c)
    port = free_port()
    c.host("hv1").start_agent(c.endpoint, c.prefix, args=["--metrics-address", f"127.0.0.1:{port}"])
    c.start_agents("hv2")
    wait_for(lambda: c.status("hv1"), timeout=20, what="agent on hv1 ready")
    c.wait_converged("hv1", "hv2")  # hv2's claims change hv1's flows: both settled
    wait_for(lambda: _scrape(port), timeout=10, what="metrics endpoint")

    def agreeing() -> tuple[str, dict, dict] | None:
        """A scrape and a status that agree on the flows. The endpoint reads live counters and the status file
        is rewritten once events quieten, so two reads taken a moment apart may straddle a change."""
        text = _scrape(port)
        fams = {f.name: f for f in text_string_to_metric_families(text)}  # the client's own parser: strict
        flows: dict[str, float] = {}  # by stage; a stage (or "unknown") may span several tables
        for s in fams["tuplenet_flows"].samples:
            flows[s.labels["stage"]] = flows.get(s.labels["stage"], 0) + s.value
        status = c.status("hv1")
        same = (sum(flows.values()) == status["flows"]
                and fams["tuplenet_flows_installed"].samples[0].value == status["installed"])
        return (text, fams, flows) if same else None

    text, fams, flows = wait_for(agreeing, timeout=10, what="metrics saying what the status says")
    if shutil.which("promtool"):
        out = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
    assert flows["classify"] >= 2 and flows["ls_in_lookup"] >= 3
    runs = {s.labels["kind"]: s.value for s in fams["tuplenet_engine_runs"].samples}
    assert runs["full"] >= 1
    binds = {s.labels["state"]: s.value for s in fams["tuplenet_bindings"].samples}
    assert binds["bound"] == 2  # vm1 and vm3 live on hv1
    for name in ("tuplenet_groups", "tuplenet_meters", "tuplenet_etcd_watch_lag_seconds", "tuplenet_openflow_reconnects", "tuplenet_ovsdb_reconnects",
                 "tuplenet_packet_ins", "tuplenet_packet_in_drops", "tuplenet_event_errors"):
        assert name in fams, name
    # Off by default: no agent option, no listener.
    assert load(["-f", "192.168.100.2"], {}).metrics_address is None


@pytest.mark.parametrize("bad", ["9100", "host:", "host:0", "host:99999", "host:９１００"])
def test_bad_metrics_address_is_refused_in_one_line(bad: str) -> None:
    with pytest.raises(ConfigError, match="bad metrics address"):
        load(["-f", "192.168.100.2", "--metrics-address", bad], {})
