"""tpcnm's handler layer on the in-memory store and a recording host: docker's request sequence, every
refusal as a protocol error, and nothing left behind by a refused or undone request."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tuplenet.cnm.driver import CnmDriver
from tuplenet.cnm.host import HostError, veth_names
from tuplenet.cnm.protocol import handle
from tuplenet.control import Controller
from tuplenet.control.memstore import MemStore

NID, NID2 = "8506bfcd" + "a" * 56, "77aa0011" + "b" * 56
EID, EID2 = "6ac7f49d" + "c" * 56, "1234abcd" + "d" * 56
OPTS = {"com.docker.network.endpoint.exposedports": [], "com.docker.network.portmap": []}


class FakeHost:
    """Records ports like LinuxHost would create them; `fail`/`ready` steer the failure paths."""

    def __init__(self) -> None:
        self.ports: dict[str, tuple[str, str, int]] = {}
        self.fail: str | None = None
        self.ready = True
        self.waited: list[float] = []

    def add_port(self, eid: str, iface_id: str, mac: str, mtu: int) -> None:
        if self.fail:
            raise HostError(self.fail)
        self.ports[eid] = (iface_id, mac, mtu)

    def has_port(self, eid: str) -> bool:
        return eid in self.ports

    def wait_ready(self, eid: str, timeout: float) -> bool:
        self.waited.append(timeout)
        return self.ready

    def delete_port(self, eid: str) -> bool:
        return self.ports.pop(eid, None) is not None


def make_driver(**kw: Any) -> tuple[CnmDriver, FakeHost]:
    host = FakeHost()
    return CnmDriver(Controller(MemStore()), host, "hv1", **kw), host


def call(d: CnmDriver, method: str, body: Any = None, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    return handle(d, f"/{method}", data)


def ok(d: CnmDriver, method: str, body: Any = None) -> dict:
    status, answer = call(d, method, body)
    assert status == 200 and "Err" not in answer, answer
    return answer


def err(d: CnmDriver, method: str, body: Any = None, raw: bytes | None = None, status: int = 200) -> str:
    got, answer = call(d, method, body, raw)
    assert got == status and set(answer) == {"Err"} and isinstance(answer["Err"], str), answer
    assert not answer["Err"].startswith("internal error"), answer
    return answer["Err"]


def create_net(d: CnmDriver, nid: str = NID, generic: dict | None = None, pool: str = "10.99.0.0/24",
               gw: str = "10.99.0.1/24") -> dict:
    opts = {"com.docker.network.enable_ipv6": False, "com.docker.network.generic": generic or {}}
    return call(d, "NetworkDriver.CreateNetwork", {
        "NetworkID": nid, "Options": opts, "IPv6Data": [],
        "IPv4Data": [{"AddressSpace": "LocalDefault", "Gateway": gw, "Pool": pool}]})[1]


def create_ep(d: CnmDriver, eid: str = EID, addr: str = "10.99.0.2/24", mac: str = "", nid: str = NID) -> dict:
    return call(d, "NetworkDriver.CreateEndpoint", {
        "NetworkID": nid, "EndpointID": eid, "Options": OPTS,
        "Interface": {"Address": addr, "AddressIPv6": "", "MacAddress": mac}})[1]


def ids(nid: str = NID, eid: str = EID) -> dict:
    return {"NetworkID": nid, "EndpointID": eid}


def entity_keys(d: CnmDriver) -> set[str]:
    return {k for k in d.store.data if k.startswith("entity_view/")}


def test_docker_sequence_with_router_creates_and_removes_everything():
    d, host = make_driver()
    d.ctl.add_router("R1")
    before = entity_keys(d)
    assert ok(d, "Plugin.Activate") == {"Implements": ["NetworkDriver", "IpamDriver"]}
    assert ok(d, "NetworkDriver.GetCapabilities") == {"Scope": "local", "ConnectivityScope": "global"}
    assert create_net(d, generic={"switch": "web", "router": "R1"}) == {}
    link = d.ctl.get_switch_port("web", "web_to_R1")
    assert (link.ip, d.ctl.get_router_port("R1", "R1_to_web").prefix) == ("10.99.0.1", 24)

    assert create_ep(d) == {"Interface": {"MacAddress": "f2:01:0a:63:00:02"}}
    port = d.ctl.get_switch_port("web", EID)
    assert (port.ip, port.mac, port.chassis) == ("10.99.0.2", "f2:01:0a:63:00:02", "hv1")
    assert host.ports[EID] == (EID, "f2:01:0a:63:00:02", 1400)

    assert ok(d, "NetworkDriver.Join", {**ids(), "SandboxKey": "/run/docker/netns/9ba4", "Options": OPTS}) == {
        "InterfaceName": {"SrcName": veth_names(EID)[1], "DstPrefix": "eth"}, "Gateway": "10.99.0.1"}
    assert host.waited == [10.0]
    assert ok(d, "NetworkDriver.ProgramExternalConnectivity", {**ids(), "Options": OPTS}) == {}
    info = ok(d, "NetworkDriver.EndpointOperInfo", ids())["Value"]
    assert (info["ip"], info["switch"], info["veth"]) == ("10.99.0.2", "web", "tpe" + EID[:12])
    assert ok(d, "NetworkDriver.RevokeExternalConnectivity", ids()) == {}
    assert ok(d, "NetworkDriver.Leave", ids()) == {}
    assert ok(d, "NetworkDriver.DeleteEndpoint", ids()) == {}
    assert host.ports == {}
    assert ok(d, "NetworkDriver.DeleteNetwork", {"NetworkID": NID}) == {}
    assert entity_keys(d) == before  # switch, link ports and their bookkeeping are gone, the router stays
    assert not [k for k in d.store.data if k.startswith("cnm/")]


def test_given_mac_is_used_and_not_echoed_and_no_router_means_no_gateway():
    d, host = make_driver()
    create_net(d)
    assert create_ep(d, mac="02:42:0A:63:00:07") == {"Interface": {}}
    assert d.ctl.get_switch_port(NID, EID).mac == "02:42:0a:63:00:07"  # switch named by the network id (0.3)
    answer = ok(d, "NetworkDriver.Join", ids())
    assert "Gateway" not in answer


def test_missing_objects_are_protocol_errors():
    d, _ = make_driver()
    for method in ("DeleteNetwork", "CreateEndpoint", "Join", "Leave", "DeleteEndpoint", "EndpointOperInfo",
                   "ProgramExternalConnectivity"):
        assert "not found" in err(d, f"NetworkDriver.{method}", {**ids(), "Interface": {"Address": "10.99.0.2/24"}})
    create_net(d)
    for method in ("Join", "Leave", "DeleteEndpoint", "EndpointOperInfo"):
        assert f"endpoint {EID} not found" in err(d, f"NetworkDriver.{method}", ids())
    assert ok(d, "NetworkDriver.RevokeExternalConnectivity", ids()) == {}


def test_malformed_requests():
    d, _ = make_driver()
    assert "malformed JSON" in err(d, "NetworkDriver.CreateNetwork", raw=b"{nope", status=400)
    assert "JSON object" in err(d, "NetworkDriver.CreateNetwork", raw=b"[1]", status=400)
    assert "unsupported method" in err(d, "NetworkDriver.Nope", {}, status=404)
    assert err(d, "NetworkDriver.CreateNetwork", {}) == "missing NetworkID"
    assert "bad NetworkID" in err(d, "NetworkDriver.DeleteNetwork", {"NetworkID": "../x"})
    assert "must be a string" in err(d, "NetworkDriver.DeleteNetwork", {"NetworkID": 5})
    assert "local-scope" in err(d, "NetworkDriver.AllocateNetwork", {"NetworkID": NID})


@pytest.mark.parametrize("generic,pool,gw,msg", [
    ({"colour": "red"}, "10.99.0.0/24", "10.99.0.1/24", "unknown driver option 'colour'"),
    ({"mtu": "99999"}, "10.99.0.0/24", "10.99.0.1/24", "bad mtu 99999"),
    ({"router": "nope"}, "10.99.0.0/24", "10.99.0.1/24", "unable to get router nope"),
    ({"switch": "a,b"}, "10.99.0.0/24", "10.99.0.1/24", "bad switch name"),
    ({}, "10.99.0.1/24", "10.99.0.1/24", "bad IPv4 pool"),
    ({}, "10.99.0.0/31", "", "no room"),
    ({}, "10.99.0.0/24", "10.98.0.1/24", "not a host address"),
])
def test_bad_network_requests_leave_nothing(generic, pool, gw, msg):
    d, _ = make_driver()
    before = dict(d.store.data)
    assert msg in create_net(d, generic=generic, pool=pool, gw=gw)["Err"]
    assert {k: v for k, v in d.store.data.items() if k != "globals/version"} == \
        {k: v for k, v in before.items() if k != "globals/version"}


def test_ipv6_refused():
    d, _ = make_driver()
    body = {"NetworkID": NID, "Options": {"com.docker.network.enable_ipv6": True},
            "IPv4Data": [{"Pool": "10.99.0.0/24", "Gateway": "10.99.0.1/24"}]}
    assert "IPv6" in err(d, "NetworkDriver.CreateNetwork", body)


def test_bad_endpoints_and_host_failure_roll_back_the_port():
    d, host = make_driver()
    create_net(d)
    assert "not in the network's subnet" in create_ep(d, addr="10.98.0.2/24")["Err"]
    assert "is the network's gateway" in create_ep(d, addr="10.99.0.1/24")["Err"]
    assert "bad MAC" in create_ep(d, mac="zz")["Err"]
    assert "no IPv4 address" in create_ep(d, addr="")["Err"]
    host.fail = "creating veth: RTNETLINK answers: File exists"
    assert create_ep(d)["Err"] == host.fail
    assert d.ctl.list_switch_ports(NID) == []
    host.fail = None
    assert "Err" not in create_ep(d)
    assert create_ep(d) == {"Interface": {"MacAddress": "f2:01:0a:63:00:02"}}  # a retry is fine
    assert "conflict" in create_ep(d, eid=EID2, addr="10.99.0.2/24")["Err"]  # same address elsewhere


def test_join_waits_for_readiness_and_says_why_it_gave_up():
    d, host = make_driver(ready_timeout=2.5)
    create_net(d)
    create_ep(d)
    host.ready = False
    assert "did not mark its port ready within 2.5s" in err(d, "NetworkDriver.Join", ids())
    host.ports.clear()
    assert "no interface on this host" in err(d, "NetworkDriver.Join", ids())


def test_two_hosts_share_a_switch_and_the_last_removes_it():
    d, _ = make_driver()
    d.ctl.add_router("R1")
    opts = {"switch": "shared", "router": "R1"}
    assert create_net(d, NID, opts) == {}
    assert create_net(d, NID2, opts) == {}  # the second host's docker network adopts it
    assert "use the same settings" in create_net(d, "c" * 64, {"switch": "shared"}, "10.5.0.0/16",
                                                 "10.5.0.1/16")["Err"]
    assert ok(d, "NetworkDriver.DeleteNetwork", {"NetworkID": NID}) == {}
    d.ctl.get_switch("shared")
    assert ok(d, "NetworkDriver.DeleteNetwork", {"NetworkID": NID2}) == {}
    assert d.ctl.list_switches() == [] and d.ctl.list_router_ports("R1") == []


def test_operator_switch_is_adopted_and_kept():
    d, _ = make_driver()
    d.ctl.add_switch("ops")
    assert create_net(d, generic={"switch": "ops"}) == {}
    ok(d, "NetworkDriver.DeleteNetwork", {"NetworkID": NID})
    assert [s.name for s in d.ctl.list_switches()] == ["ops"]


def test_recreate_is_idempotent_but_not_with_other_settings():
    d, _ = make_driver()
    assert create_net(d) == {} and create_net(d) == {}
    assert "exists with other settings" in create_net(d, pool="10.7.0.0/24", gw="10.7.0.1/24")["Err"]


def test_damaged_record_is_a_protocol_error():
    d, _ = make_driver()
    create_net(d)
    d.store.put(f"cnm/network/{NID}", '{"switch": "x", "subnet": "nonsense", "mtu": 1400}')
    assert "bad cnm network record: subnet 'nonsense'" in create_ep(d)["Err"]
    d.store.put(f"cnm/network/{NID}", "not json")
    assert "bad cnm network record" in err(d, "NetworkDriver.Join", ids())
