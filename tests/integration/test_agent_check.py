"""`tuplenet check` compares flows, groups and meters of ours with what the switch has."""

from __future__ import annotations

import subprocess
import sys

from agent_cluster import Cluster, tutorial


def _check(c: Cluster, host: str) -> subprocess.CompletedProcess:
    h = c.host(host)
    env = {**h.env, "TUPLENET_OVSDB_PATH": h.db_sock, "TUPLENET_RUNDIR": c.rundir(host)}
    return subprocess.run([sys.executable, "-m", "tuplenet.agent.main", "check", "-a", c.endpoint, "-p", c.prefix,
                           "-f", h.ip], env=env, capture_output=True, text=True, timeout=60)


def test_check_is_clean_then_reports_a_meter_removed_behind_the_agents_back(cluster: Cluster) -> None:
    c = cluster
    tutorial(c)
    c.start_agents("hv1")
    c.wait_converged("hv1")
    ok = _check(c, "hv1")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "groups and meters: 0 differences" in ok.stdout
    meters = c.host("hv1").ofctl("-O", "OpenFlow14", "dump-meters", "br-int")
    first = next(line.split("meter=")[1].split()[0] for line in meters.splitlines() if "meter=" in line)
    c.host("hv1").ofctl("-O", "OpenFlow14", "del-meter", "br-int", f"meter={first}")
    bad = _check(c, "hv1")
    assert bad.returncode == 1
    assert f"missing: meter {int(first):#x}" in bad.stdout
