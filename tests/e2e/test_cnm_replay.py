"""tpcnm against real hosts: dockerd's documented request sequence (lab-findings W3) replayed over the
plugin socket to drivers on two namespace hosts with real agents, OVS and etcd; the test plays dockerd's
part in the sandbox (move, rename, address, route) and pings across hosts and through a router."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
from cnm_helpers import PREFIX, Driver, Sandbox, endpoint_body, link_exists, network_body

from conftest import e2e_skip_reason
from tuplenet.control import Controller
from tuplenet.sandbox.netns import NetnsSandbox
from tuplenet.store import Store

pytestmark = pytest.mark.e2e
N1, N2, N3 = "a1" * 32, "b2" * 32, "c3" * 32  # docker network ids: web on hv1, web on hv2, db on hv2
E1, E2, E3 = "e1" * 32, "e2" * 32, "e3" * 32


class Env:
    def __init__(self, sb: NetnsSandbox) -> None:
        self.sb = sb
        self.ctl = Controller(Store(sb.etcd_endpoint, prefix=PREFIX))
        self.drivers = {h: Driver(sb, h, os.path.join(sb.host_dir(h), "plugins", "tuplenet.sock"))
                        for h in ("hv1", "hv2")}
        self.boxes: list[Sandbox] = []


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    if reason := e2e_skip_reason():
        pytest.skip(reason)
    sb = NetnsSandbox(workdir=f"/tmp/tn-cnm-{os.getpid()}", name_prefix="cnmrp")
    e = None
    try:
        sb.up(hosts=2, prefix=PREFIX)
        sb.wait_agents()
        Controller(Store(sb.etcd_endpoint, prefix=PREFIX)).add_router("R1")
        e = Env(sb)
        yield e
    finally:
        if e:
            for box in e.boxes:
                box.remove()
            for d in e.drivers.values():
                d.stop()
        sb.down()


def test_docker_sequence_two_hosts_ping_and_clean_up(env: Env) -> None:
    d1, d2, ctl, sb = env.drivers["hv1"], env.drivers["hv2"], env.ctl, env.sb
    for d in (d1, d2):
        assert d.ok("Plugin.Activate") == {"Implements": ["NetworkDriver", "IpamDriver"]}
        assert d.ok("NetworkDriver.GetCapabilities") == {"Scope": "local", "ConnectivityScope": "global"}
    d1.ok("NetworkDriver.CreateNetwork", network_body(N1, "10.77.0.0/24", "10.77.0.1/24", switch="web", router="R1"))
    d2.ok("NetworkDriver.CreateNetwork", network_body(N2, "10.77.0.0/24", "10.77.0.1/24", switch="web", router="R1"))
    d2.ok("NetworkDriver.CreateNetwork", network_body(N3, "10.78.1.0/24", "10.78.1.1/24", switch="db", router="R1"))
    assert ctl.get_switch_port("web", "web_to_R1").ip == "10.77.0.1"

    plan = [(d1, "hv1", N1, E1, "10.77.0.2/24"), (d2, "hv2", N2, E2, "10.77.0.3/24"),
            (d2, "hv2", N3, E3, "10.78.1.2/24")]
    for d, host, nid, eid, addr in plan:
        answer = d.ok("NetworkDriver.CreateEndpoint", endpoint_body(nid, eid, addr))
        switch = "db" if nid == N3 else "web"
        port = ctl.get_switch_port(switch, eid)
        assert answer == {"Interface": {"MacAddress": port.mac}}
        assert (port.ip, port.chassis) == (addr.split("/")[0], host)  # bound at creation, no agent write needed
        veth = "tpe" + eid[:12]
        assert sb.ovs(host, "get", "Interface", veth, "external_ids:iface-id").strip().strip('"') == eid
        join = d.ok("NetworkDriver.Join", {"NetworkID": nid, "EndpointID": eid, "SandboxKey": "/x", "Options": {}})
        assert join == {"InterfaceName": {"SrcName": "tpc" + eid[:12], "DstPrefix": "eth"},
                        "Gateway": addr.rsplit(".", 1)[0] + ".1"}
        # Join answered only after the agent marked the port's flows installed
        assert sb.ovs(host, "get", "Interface", veth, "external_ids:tuplenet-installed").strip() == '"true"'
        d.ok("NetworkDriver.ProgramExternalConnectivity", {"NetworkID": nid, "EndpointID": eid, "Options": {}})
        info = d.ok("NetworkDriver.EndpointOperInfo", {"NetworkID": nid, "EndpointID": eid})["Value"]
        assert (info["ip"], info["chassis"], info["switch"]) == (port.ip, host, switch)
        box = Sandbox(sb, host, f"cnmrp-c-{eid[:4]}")
        env.boxes.append(box)
        box.attach(join, addr)

    c1 = env.boxes[0]
    assert c1.ping("10.77.0.3", count=3) == 0  # same switch, other host: the first packets already arrive
    assert c1.ping("10.78.1.2", count=3) == 0  # through the distributed router to the other switch
    assert c1.ping("10.77.0.1") == 0  # the router answers on the gateway

    for (d, host, nid, eid, _), box in zip(plan, env.boxes, strict=True):
        ids = {"NetworkID": nid, "EndpointID": eid}
        d.ok("NetworkDriver.RevokeExternalConnectivity", ids)
        d.ok("NetworkDriver.Leave", ids)
        box.detach("tpc" + eid[:12])
        d.ok("NetworkDriver.DeleteEndpoint", ids)
        assert not link_exists(sb, host, "tpe" + eid[:12]) and not link_exists(sb, host, "tpc" + eid[:12])
        assert "tpe" + eid[:12] not in sb.ovs(host, "list-ports", "br-int")
        status, answer = d.post("NetworkDriver.DeleteEndpoint", ids)
        assert status == 200 and "not found" in answer["Err"]
    assert ctl.list_switch_ports("web") == [ctl.get_switch_port("web", "web_to_R1")]
    d1.ok("NetworkDriver.DeleteNetwork", {"NetworkID": N1})
    ctl.get_switch("web")  # still used by hv2's network
    d2.ok("NetworkDriver.DeleteNetwork", {"NetworkID": N2})
    d2.ok("NetworkDriver.DeleteNetwork", {"NetworkID": N3})
    assert ctl.list_switches() == [] and ctl.list_router_ports("R1") == []
    assert ctl.store.get_prefix("cnm/")[0] == []


def test_protocol_errors_over_the_socket(env: Env) -> None:
    d1, d2 = env.drivers["hv1"], env.drivers["hv2"]
    assert d1.post("NetworkDriver.CreateNetwork", raw=b"{not json")[0] == 400
    status, answer = d1.post("NetworkDriver.DeleteNetwork", {"NetworkID": "f" * 64})
    assert status == 200 and answer["Err"].startswith("network " + "f" * 64 + " not found")
    assert d1.post("NetworkDriver.Frobnicate", {})[0] == 404
    d1.ok("NetworkDriver.CreateNetwork", network_body(N1, "10.79.0.0/24", "10.79.0.1/24", switch="err"))
    d2.ok("NetworkDriver.CreateNetwork", network_body(N2, "10.79.0.0/24", "10.79.0.1/24", switch="err"))
    d1.ok("NetworkDriver.CreateEndpoint", endpoint_body(N1, E1, "10.79.0.2/24"))
    # the same address from the other host's docker (independent IPAM) is refused, not duplicated
    status, answer = d2.post("NetworkDriver.CreateEndpoint", endpoint_body(N2, E2, "10.79.0.2/24"))
    assert "conflict" in answer["Err"]
    assert not link_exists(env.sb, "hv2", "tpe" + E2[:12])
    status, answer = d2.post("NetworkDriver.Join", {"NetworkID": N2, "EndpointID": E1})
    assert "has no interface on this host" in answer["Err"]  # E1 lives on hv1
    d1.ok("NetworkDriver.DeleteEndpoint", {"NetworkID": N1, "EndpointID": E1})
    d1.ok("NetworkDriver.DeleteNetwork", {"NetworkID": N1})
    d2.ok("NetworkDriver.DeleteNetwork", {"NetworkID": N2})
    assert d1.proc.poll() is None and d2.proc.poll() is None


def test_second_driver_on_a_live_socket_refuses_to_start(env: Env) -> None:
    d1, sb = env.drivers["hv1"], env.sb
    argv = [sys.executable, "-m", "tuplenet.cnm.main", "-e", sb.agent_etcd_endpoint, "-p", PREFIX,
            "--socket", d1.sock, "--ovsdb", os.path.join(sb.host_dir("hv1"), "db.sock")]
    r = sb.exec("hv1", argv, check=False)
    assert r.returncode == 1 and r.stderr.strip() == f"tpcnm: another process answers on {d1.sock}; stop it first"
    assert d1.answers()


def test_join_times_out_without_an_agent(env: Env) -> None:
    sb = env.sb
    sock = os.path.join(sb.host_dir("hv1"), "plugins", "quick.sock")
    quick = Driver(sb, "hv1", sock, "--ready-timeout", "2")
    try:
        sb.agent_stop("hv1")
        quick.ok("NetworkDriver.CreateNetwork", network_body(N1, "10.80.0.0/24", "10.80.0.1/24"))
        quick.ok("NetworkDriver.CreateEndpoint", endpoint_body(N1, E1, "10.80.0.2/24"))
        status, answer = quick.post("NetworkDriver.Join", {"NetworkID": N1, "EndpointID": E1})
        assert "did not mark its port ready within 2s" in answer["Err"]
        quick.ok("NetworkDriver.DeleteEndpoint", {"NetworkID": N1, "EndpointID": E1})
        quick.ok("NetworkDriver.DeleteNetwork", {"NetworkID": N1})
    finally:
        quick.stop()
        sb.agent_start("hv1")
    assert quick.proc.returncode == 0  # SIGTERM is a clean exit ...
    assert not os.path.exists(sock)  # ... that removes the socket (docker would otherwise find a dead plugin)


def test_restarted_driver_carries_on(env: Env) -> None:
    """Docker keeps its networks and endpoints while the driver restarts: all the driver needs is in etcd
    and in the kernel, so the calls that follow a restart work."""
    d1 = env.drivers["hv1"]
    d1.ok("NetworkDriver.CreateNetwork", network_body(N1, "10.81.0.0/24", "10.81.0.1/24", switch="rs", router="R1"))
    d1.ok("NetworkDriver.CreateEndpoint", endpoint_body(N1, E1, "10.81.0.2/24"))
    d1.stop()
    d1 = env.drivers["hv1"] = Driver(env.sb, "hv1", d1.sock)
    ids = {"NetworkID": N1, "EndpointID": E1}
    assert d1.ok("NetworkDriver.Join", ids)["Gateway"] == "10.81.0.1"
    assert d1.ok("NetworkDriver.EndpointOperInfo", ids)["Value"]["ip"] == "10.81.0.2"
    d1.ok("NetworkDriver.Leave", ids)
    d1.ok("NetworkDriver.DeleteEndpoint", ids)
    d1.ok("NetworkDriver.DeleteNetwork", {"NetworkID": N1})
    assert env.ctl.list_switches() == [] and env.ctl.list_router_ports("R1") == []


def test_concurrent_calls_from_both_hosts(env: Env) -> None:
    """dockerd sends calls concurrently (many containers starting): addresses from both hosts' IPAM are
    distinct, and every endpoint gets its port, veth and readiness."""
    from concurrent.futures import ThreadPoolExecutor

    d1, d2 = env.drivers["hv1"], env.drivers["hv2"]
    pools = [d.ok("IpamDriver.RequestPool", {"Pool": "10.82.0.0/24", "V6": False})["PoolID"] for d in (d1, d2)]
    for d, pool in zip((d1, d2), pools, strict=True):  # docker asks for the gateway at network create
        gw = {"PoolID": pool, "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}
        assert d.ok("IpamDriver.RequestAddress", gw)["Address"] == "10.82.0.1/24"
    for d, nid in ((d1, N1), (d2, N2)):
        d.ok("NetworkDriver.CreateNetwork", network_body(nid, "10.82.0.0/24", "10.82.0.1/24", switch="cc"))

    def start(i: int) -> str:
        d, pool, nid = (d1, pools[0], N1) if i % 2 else (d2, pools[1], N2)
        addr = d.ok("IpamDriver.RequestAddress", {"PoolID": pool, "Address": "", "Options": {}})["Address"]
        eid = f"{i:02d}" * 32
        d.ok("NetworkDriver.CreateEndpoint", endpoint_body(nid, eid, addr))
        d.ok("NetworkDriver.Join", {"NetworkID": nid, "EndpointID": eid, "SandboxKey": "", "Options": {}})
        return addr

    with ThreadPoolExecutor(8) as ex:
        addrs = list(ex.map(start, range(16)))
    assert len(set(addrs)) == 16
    ports = [p for p in env.ctl.list_switch_ports("cc")]
    assert sorted(f"{p.ip}/24" for p in ports) == sorted(addrs)
    for i in range(16):
        d, pool, nid = (d1, pools[0], N1) if i % 2 else (d2, pools[1], N2)
        d.ok("NetworkDriver.DeleteEndpoint", {"NetworkID": nid, "EndpointID": f"{i:02d}" * 32})
        d.ok("IpamDriver.ReleaseAddress", {"PoolID": pool, "Address": addrs[i].split("/")[0]})
    d1.ok("NetworkDriver.DeleteNetwork", {"NetworkID": N1})
    d2.ok("NetworkDriver.DeleteNetwork", {"NetworkID": N2})
    assert env.ctl.list_switches() == []
    assert [kv.key for kv in env.ctl.store.get_prefix("cnm/")[0]] == ["cnm/ipam/10.82.0.0-24/10.82.0.1"]
