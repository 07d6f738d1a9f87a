"""The agent refuses to start, with one clear line and a non-zero exit, when something essential is missing."""

from __future__ import annotations

import os
import subprocess
import sys

from tuplenet.sandbox.sim import SimNetwork


def run_agent(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tuplenet.agent.main", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def base_env(sim_net: SimNetwork, tmp_path) -> tuple[dict[str, str], list[str]]:
    hv = sim_net.add_host("hv1", "192.168.100.2")
    env = {**hv.env, "TUPLENET_RUNDIR": str(tmp_path / "run"), "TUPLENET_OVSDB_PATH": hv.db_sock, "ONDEMAND": "0"}
    return env, ["-f", hv.ip, "-a", "127.0.0.1:1", "-p", "/t/"]


def test_bad_tunnel_ip(sim_net: SimNetwork, tmp_path) -> None:
    env, args = base_env(sim_net, tmp_path)
    r = run_agent(["-f", "300.1.2.3", "-a", "127.0.0.1:1"], env)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == "tuplenet: bad tunnel IP '300.1.2.3'"
    r = run_agent(["-f", "nosuchif0", "-a", "127.0.0.1:1"], env)
    assert r.returncode == 2 and "no IPv4 address on interface(s) 'nosuchif0'" in r.stderr


def test_ovsdb_unreachable(sim_net: SimNetwork, tmp_path) -> None:
    env, args = base_env(sim_net, tmp_path)
    env["TUPLENET_OVSDB_PATH"] = str(tmp_path / "missing.sock")
    env["TUPLENET_OVSDB_TIMEOUT"] = "2"
    r = run_agent(args, env)
    assert r.returncode == 1
    assert "cannot reach OVSDB at" in r.stderr and "missing.sock" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_system_id(sim_net: SimNetwork, tmp_path) -> None:
    env, args = base_env(sim_net, tmp_path)
    sim_net["hv1"].vsctl("remove", "Open_vSwitch", ".", "external_ids", "system-id")
    r = run_agent(args, env)
    assert r.returncode == 1
    assert "external_ids:system-id is not set" in r.stderr
    assert not os.path.exists(tmp_path / "run" / "tuplenet.pid")


def test_etcd_unreachable(sim_net: SimNetwork, tmp_path) -> None:
    env, args = base_env(sim_net, tmp_path)
    r = run_agent(args, env)
    assert r.returncode == 1
    assert "cannot read the topology from etcd 127.0.0.1:1" in r.stderr
    assert "Traceback" not in r.stderr
