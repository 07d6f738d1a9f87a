"""Host-switch IPFIX (IPFIX_COLLECTOR / IPFIX_SAMPLING_RATE) on simulated hosts: the agent's IPFIX row on
br-int, records decoded by the sandbox collector, removal when unset, and rows of others left alone.

The dummy datapath exports bridge-sampled IPFIX like the kernel and userspace ones (checked: one record
per sampled packet and direction while caching is off), so the traffic part needs no namespaces.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from agent_cluster import Cluster, tutorial
from tuplenet.sandbox import packets as P
from tuplenet.sandbox.ipfix_collector import IpfixCollector, Record
from tuplenet.sandbox.procs import wait_for
from tuplenet.sandbox.sim import SimHost


@pytest.fixture
def collector() -> Iterator[IpfixCollector]:
    with IpfixCollector("127.0.0.1", 0) as c:
        yield c


def domain_of(host: SimHost) -> int:
    return int(ipaddress.IPv4Address(host.ip))


def ipfix_row(host: SimHost, bridge: str = "br-int") -> dict[str, str] | None:
    """The IPFIX row `bridge` points at, as column -> ovs-vsctl text (None: no row)."""
    ref = host.vsctl("get", "Bridge", bridge, "ipfix").strip()
    if ref in ("[]", ""):
        return None
    cols = "_uuid,targets,sampling,obs_domain_id,obs_point_id,other_config,external_ids"
    out = host.vsctl("--columns=" + cols, "list", "IPFIX", ref)
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}


def start(c: Cluster, name: str, env: dict[str, str] | None = None) -> None:
    c.host(name).start_agent(c.endpoint, c.prefix, env)
    wait_for(lambda: c.status(name), timeout=20, what=f"agent on {name} ready")


def udp_frame(src, dst, sport: int, dport: int = 53, payload: bytes = b"ipfix-test") -> bytes:
    return P.eth(dst.mac, src.mac, P.ETH_IP, P.ipv4(src.ip, dst.ip, P.PROTO_UDP,
                                                   P.udp(sport, dport, payload, src.ip, dst.ip)))


def test_agents_export_records_of_vm_traffic(cluster: Cluster, collector: IpfixCollector) -> None:
    c = cluster
    vms = tutorial(c)
    env = {"IPFIX_COLLECTOR": collector.address, "IPFIX_SAMPLING_RATE": "1"}
    for name in ("hv1", "hv2"):
        start(c, name, env)
    row = wait_for(lambda: ipfix_row(c.host("hv1")), timeout=10, what="IPFIX row on hv1's br-int")
    assert row["targets"] == f'["{collector.address}"]' and row["sampling"] == "1"
    assert row["obs_domain_id"] == str(domain_of(c.host("hv1"))) and row["obs_point_id"] == "0"
    assert row["external_ids"] == "{tuplenet-role=ipfix}"
    assert row["other_config"] == '{enable-tunnel-sampling="false"}'

    vm1, vm2 = vms["vm1"], vms["vm2"]
    c.send_until("hv1", "vm1", udp_frame(vm1, vm2, 5000), "hv2", "vm2")  # the path is up
    n = 5
    frame = udp_frame(vm1, vm2, 6000)
    mark = c.host("hv2").tx_mark("vm2")
    for _ in range(n):
        c.host("hv1").inject("vm1", frame)
    c.host("hv2").wait_tx_after("vm2", mark, n, timeout=5)

    def flow(domain: int, direction: int):
        return lambda r: (r.domain == domain and r.get("flowDirection") == direction
                          and r.get("sourceTransportPort") == 6000 and not r.options)

    ip_len = len(frame) - 14
    for host, direction in (("hv1", 0), ("hv2", 1)):  # in from vm1 on hv1, out to vm2 on hv2
        got: list[Record] = collector.wait_records(flow(domain_of(c.host(host)), direction), count=n, timeout=10)
        assert len(got) == n, got  # sampling 1, no cache: one record per packet
        for r in got:
            assert (r.get("sourceIPv4Address"), r.get("destinationIPv4Address")) == (vm1.ip, vm2.ip)
            assert (r.get("protocolIdentifier"), r.get("destinationTransportPort")) == (17, 53)
            assert (r.get("packetDeltaCount"), r.get("octetDeltaCount")) == (1, ip_len)
    assert not collector.errors
    assert not collector.records(lambda r: r.domain == domain_of(c.host("hv3")))  # hv3's agent not started


def test_restart_without_collector_removes_only_our_row(cluster: Cluster, collector: IpfixCollector) -> None:
    c = cluster
    hv1 = c.host("hv1")
    hv1.vsctl("--", "set", "Bridge", "br0", "ipfix=@i", "--", "--id=@i", "create", "IPFIX",
              'targets="127.0.0.1:9"', "sampling=7", "external_ids:owner=someone")
    foreign = ipfix_row(hv1, "br0")
    start(c, "hv1", {"IPFIX_COLLECTOR": collector.address, "IPFIX_SAMPLING_RATE": "64"})
    ours = wait_for(lambda: ipfix_row(hv1), timeout=10, what="our IPFIX row on br-int")
    assert ours["sampling"] == "64"
    hv1.stop_agents()
    assert ipfix_row(hv1) == ours  # a stopped agent leaves the switch as it is (0.3: headless data plane)

    start(c, "hv1")  # no IPFIX_COLLECTOR
    wait_for(lambda: ipfix_row(hv1) is None, timeout=10, what="our IPFIX row gone from br-int")
    assert hv1.vsctl("--columns=_uuid", "find", "IPFIX", "external_ids:tuplenet-role=ipfix").strip() == ""
    assert ipfix_row(hv1, "br0") == foreign


def test_foreign_row_on_br_int_is_left_alone(cluster: Cluster, collector: IpfixCollector) -> None:
    c = cluster
    hv1 = c.host("hv1")
    hv1.vsctl("--may-exist", "add-br", "br-int", "--", "set", "Bridge", "br-int", "fail-mode=secure",
              "ipfix=@i", "--", "--id=@i", "create", "IPFIX", 'targets="127.0.0.1:9"', "sampling=7")
    foreign = ipfix_row(hv1)
    start(c, "hv1", {"IPFIX_COLLECTOR": collector.address, "IPFIX_SAMPLING_RATE": "1"})
    agent = hv1.agent
    wait_for(lambda: "IPFIX not configured" in agent.output(), timeout=10, what="the agent to report the row")
    assert "did not create" in agent.output()
    assert ipfix_row(hv1) == foreign


def test_local_ovs_ipfix_fixed_in_place_and_reconverged(sim3) -> None:
    """LocalOvs keeps its row: a changed wish edits the same row, a row deleted by hand comes back, a row
    someone else put in its place is left alone, and None removes ours."""
    from tuplenet.agent.ovsdb import LocalOvs, OvsdbError
    from tuplenet.agent.ovsdb_ipfix import IpfixSpec

    hv1 = sim3["hv1"]
    with LocalOvs(hv1.db_sock).start() as lo:
        lo.ensure_bridge()
        lo.set_ipfix(IpfixSpec(("127.0.0.1:4739",), 64, obs_domain_id=1)).result(10)
        first = ipfix_row(hv1)
        lo.set_wishes("ipfix", {(): IpfixSpec(("127.0.0.1:4739",), 1, obs_domain_id=1)}).result(10)
        second = ipfix_row(hv1)
        assert second["_uuid"] == first["_uuid"] and second["sampling"] == "1"
        hv1.vsctl("clear", "Bridge", "br-int", "ipfix")
        third = wait_for(lambda: ipfix_row(hv1), timeout=10, what="our row re-created")
        assert third["sampling"] == "1" and third["external_ids"] == "{tuplenet-role=ipfix}"
        hv1.vsctl("--", "set", "Bridge", "br-int", "ipfix=@i", "--", "--id=@i", "create", "IPFIX",
                  'targets="127.0.0.1:9"')
        theirs = ipfix_row(hv1)
        with pytest.raises(OvsdbError, match="did not create"):
            lo.set_ipfix(IpfixSpec(("127.0.0.1:4739",), 2)).result(10)
        lo.set_ipfix(None).result(10)
        assert ipfix_row(hv1) == theirs
        hv1.vsctl("clear", "Bridge", "br-int", "ipfix")
        lo.set_ipfix(IpfixSpec(("127.0.0.1:4739",), 2)).result(10)
        lo.set_ipfix(None).result(10)
        assert ipfix_row(hv1) is None
        with pytest.raises(ValueError, match="bad IPFIX collector"):
            lo.set_wishes("ipfix", {(): IpfixSpec(("nowhere",), 2)})
