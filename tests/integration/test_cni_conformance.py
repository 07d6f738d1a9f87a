"""tpcni driven exactly as a CNI runtime drives it (env + stdin JSON, plugin found on CNI_PATH), on real hosts:
namespace hosts with userspace OVS and real agents, real etcd, container namespaces, Debian's reference plugins
chained after ours. Checks addresses, routes, MTU, etcd and OVS state, first-packet reachability across hosts
and through a router, idempotent DEL (also after a crash half way), CHECK, STATUS, GC, concurrency and the
error answer of every failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tuplenet.cni.plugin import host_names, lsp_name
from tuplenet.cni.runtime import Runtime, write_launcher
from tuplenet.control import Controller
from tuplenet.sandbox.netns import NetnsSandbox
from tuplenet.sandbox.procs import wait_for
from tuplenet.store import Store

PREFIX = "/tuplenet/"
REF_PLUGINS = "/usr/lib/cni"
NEEDED = ("ip", "nsenter", "ovs-vswitchd", "ovsdb-server", "ovs-vsctl", "etcd", "iptables", "tc")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    missing = [b for b in NEEDED if shutil.which(b) is None]
    missing += [p for p in ("tuning", "bandwidth", "portmap") if not os.path.exists(f"{REF_PLUGINS}/{p}")]
    return f"missing: {', '.join(missing)}" if missing else None


class Lab:
    """The sandbox plus helpers: a runtime per host, container namespaces, etcd and OVS views."""

    def __init__(self, sb: NetnsSandbox, bindir: str) -> None:
        self.sb, self.bindir = sb, bindir
        self.store = Store(sb.etcd_endpoint, PREFIX)
        self.ctl = Controller(self.store)
        self.netns: list[str] = []
        self._n = 0

    def runtime(self, host: str) -> Runtime:
        return Runtime([self.bindir, REF_PLUGINS], prefix=["nsenter", f"--net=/run/netns/{self.sb.ns(host)}"])

    def conf(self, host: str, switch: str = "LS-A", subnet: str = "10.10.1.0/24", **extra: Any) -> dict[str, Any]:
        return {"cniVersion": "1.0.0", "name": "tn", "type": "tpcni", "switch": switch, "subnet": subnet,
                "etcdEndpoints": self.sb.agent_etcd_endpoint, "etcdPrefix": PREFIX,
                "ovsdbSocket": os.path.join(self.sb.host_dir(host), "db.sock"), **extra}

    def netlist(self, host: str, *chained: dict[str, Any], version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
        tp = self.conf(host, **extra)
        tp.pop("cniVersion"), tp.pop("name")
        return {"cniVersion": version, "name": "tn", "plugins": [tp, *chained]}

    def new_netns(self, tag: str) -> str:
        self._n += 1
        name = f"tnc{os.getpid() % 10000}-{tag}{self._n}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.netns.append(name)
        return f"/run/netns/{name}"

    def in_ns(self, netns: str, *cmd: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", f"--net={netns}", *cmd], capture_output=True, text=True, timeout=timeout)

    def lsps(self, switch: str = "LS-A") -> dict[str, Any]:
        return {p.name: p for p in self.ctl.list_switch_ports(switch)}

    def ovs_ports(self, host: str) -> list[str]:
        return self.sb.ovs(host, "list-ports", "br-int").split()

    def iface_ids(self, host: str, port: str) -> dict[str, str]:
        out = self.sb.ovs(host, "--format=json", "--columns=external_ids", "list", "Interface", port)
        return dict(json.loads(out)["data"][0][0][1])

    def host_link(self, host: str, name: str) -> bool:
        return self.sb.exec(host, ["ip", "link", "show", name], check=False).returncode == 0

    def assert_released(self, host: str, cid: str, ifname: str = "eth0", switch: str = "LS-A") -> None:
        host_if, _ = host_names(cid, ifname)
        assert lsp_name(ifname, cid) not in self.lsps(switch)
        assert host_if not in self.ovs_ports(host)
        assert not self.host_link(host, host_if)

    def close(self) -> None:
        for name in self.netns:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.store.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if reason := _skip_reason():
        pytest.skip(reason)
    sb = NetnsSandbox(workdir=f"/tmp/tn-cni-{os.getpid()}", name_prefix="tcn")
    bindir = str(tmp_path_factory.mktemp("cni-bin"))
    write_launcher(bindir, sys.executable)
    lab = None
    try:
        sb.up(hosts=2, prefix=PREFIX)
        sb.wait_agents()
        lab = Lab(sb, bindir)
        ctl = lab.ctl
        for ls in ("LS-A", "LS-B", "LS-T"):
            ctl.add_switch(ls)
        ctl.add_router("R1")
        ctl.link("R1", "LS-A", "10.10.1.1/24")
        ctl.link("R1", "LS-B", "10.10.2.1/24")
        yield lab
    finally:
        if lab is not None:
            lab.close()
        sb.down()


def _add(lab: Lab, host: str, cid: str, netns: str, **conf: Any) -> dict[str, Any]:
    r = lab.runtime(host).invoke("tpcni", "ADD", lab.conf(host, **conf), cid, netns, "eth0")
    assert r.status == 0, (r.stdout, r.stderr)
    return r.json


def _del(lab: Lab, host: str, cid: str, netns: str, **conf: Any) -> None:
    r = lab.runtime(host).invoke("tpcni", "DEL", lab.conf(host, **conf), cid, netns, "eth0")
    assert r.status == 0 and r.stdout.strip() == "", (r.stdout, r.stderr)


def test_version(lab: Lab) -> None:
    r = lab.runtime("hv1").invoke("tpcni", "VERSION", {"cniVersion": "0.4.0"})
    assert r.status == 0
    assert r.json["cniVersion"] == "0.4.0"
    assert {"0.3.1", "0.4.0", "1.0.0", "1.1.0"} <= set(r.json["supportedVersions"])


def test_add_check_del(lab: Lab) -> None:
    """Result, interface, routes, lsp with chassis, OVS port with iface-id and ready mark; the first ping to
    the router answers; CHECK passes; DEL removes everything and a second DEL succeeds."""
    netns, cid = lab.new_netns("a"), "c0ffee01"
    res = _add(lab, "hv1", cid, netns, mtu=1350)
    host_if, host_mac = host_names(cid, "eth0")
    name = lsp_name("eth0", cid)
    lsp = lab.lsps()[name]
    assert res["cniVersion"] == "1.0.0"
    assert res["interfaces"] == [{"name": host_if, "mac": host_mac},
                                 {"name": "eth0", "mac": lsp.mac, "sandbox": netns}]
    assert res["ips"] == [{"address": f"{lsp.ip}/24", "gateway": "10.10.1.1", "interface": 1}]
    assert res["routes"] == [{"dst": "0.0.0.0/0"}]
    assert lsp.chassis == "hv1" and lsp.ip.startswith("10.10.1.") and lsp.ip != "10.10.1.1"
    ids = lab.iface_ids("hv1", host_if)
    assert ids["iface-id"] == name and ids.get("tuplenet-installed") == "true"
    link = json.loads(lab.in_ns(netns, "ip", "-j", "addr", "show", "eth0").stdout)[0]
    assert link["mtu"] == 1350 and link["address"] == lsp.mac
    assert f"{lsp.ip}/24" in [f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"]]
    assert "default via 10.10.1.1 dev eth0" in lab.in_ns(netns, "ip", "route").stdout
    # Ready means forwarding: the very first echo request gets its answer.
    assert lab.in_ns(netns, "ping", "-c1", "-W2", "10.10.1.1").returncode == 0

    conf = lab.conf("hv1", mtu=1350, prevResult=res)
    r = lab.runtime("hv1").invoke("tpcni", "CHECK", conf, cid, netns, "eth0")
    assert r.status == 0 and r.stdout.strip() == "", r.stdout

    _del(lab, "hv1", cid, netns)
    lab.assert_released("hv1", cid)
    assert lab.in_ns(netns, "ip", "link", "show", "eth0").returncode != 0
    _del(lab, "hv1", cid, netns)  # idempotent
    _del(lab, "hv1", cid, "")  # the runtime may have lost the netns already


def _pings(netns: str, ip: str) -> bool:
    return subprocess.run(["nsenter", f"--net={netns}", "ping", "-c1", "-W1", ip], capture_output=True).returncode == 0


def test_across_hosts_and_router(lab: Lab) -> None:
    """Across hosts in one switch and through R1. Once the hosts' underlay knows each other (the first frame
    into a Geneve tunnel waits for the underlay's ARP in OVS's userspace datapath), a new container's very
    first packet to another host is answered: ADD returned only after its flows were in."""
    a, b, c, d = (lab.new_netns(t) for t in ("x1", "x2", "x3", "x4"))
    ra = _add(lab, "hv1", "cross1", a)
    rb = _add(lab, "hv2", "cross2", b)
    rc = _add(lab, "hv2", "cross3", c, switch="LS-B", subnet="10.10.2.0/24")
    ip_a, ip_b, ip_c = (r["ips"][0]["address"].split("/")[0] for r in (ra, rb, rc))
    assert rc["ips"][0]["gateway"] == "10.10.2.1"
    try:
        wait_for(lambda: _pings(a, ip_b), timeout=20, what="a -> b, same switch, other host")
        assert _pings(a, ip_c)  # through R1, other host
        assert _pings(c, ip_a)
        _add(lab, "hv1", "cross4", d)
        assert _pings(d, ip_c) and _pings(d, ip_b)  # first packets of a new container
    finally:
        _del(lab, "hv1", "cross1", a)
        _del(lab, "hv2", "cross2", b)
        _del(lab, "hv2", "cross3", c, switch="LS-B", subnet="10.10.2.0/24")
        _del(lab, "hv1", "cross4", d)


def test_chained_reference_plugins(lab: Lab) -> None:
    """tpcni then tuning, bandwidth and portmap (Debian's containernetworking-plugins) as one list, in CNI
    0.4.0: each later plugin works from our prevResult; DEL of the list undoes all of them."""
    netns, cid = lab.new_netns("ch"), "chain01"
    netlist = lab.netlist("hv1",
                          {"type": "tuning", "mtu": 1300, "sysctl": {"net.ipv4.conf.eth0.rp_filter": "0"}},
                          {"type": "bandwidth", "ingressRate": 8000000, "ingressBurst": 80000,
                           "egressRate": 8000000, "egressBurst": 80000},
                          {"type": "portmap", "capabilities": {"portMappings": True}, "snat": False},
                          version="0.4.0")
    rc = {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]}
    rt = lab.runtime("hv1")
    res = rt.add(netlist, cid, netns, "eth0", runtime_config=rc)
    host_if, _ = host_names(cid, "eth0")
    ip = res["ips"][0]["address"].split("/")[0]
    assert res["cniVersion"] == "0.4.0" and res["ips"][0]["version"] == "4"
    assert '"mtu":1300' in lab.in_ns(netns, "ip", "-j", "link", "show", "eth0").stdout.replace(" ", "")
    assert lab.in_ns(netns, "cat", "/proc/sys/net/ipv4/conf/eth0/rp_filter").stdout.strip() == "0"
    assert "tbf" in lab.sb.exec("hv1", ["tc", "qdisc", "show", "dev", host_if]).stdout
    nat = lab.sb.exec("hv1", ["iptables-save", "-t", "nat"]).stdout
    assert "18080" in nat and f"{ip}:80" in nat
    assert lab.in_ns(netns, "ping", "-c1", "-W2", "10.10.1.1").returncode == 0
    # CHECK down the list except portmap: its 1.1.1 CHECK looks for an IPv6 chain it never creates for an
    # IPv4-only container and fails whatever the plugin before it did.
    rt.check({**netlist, "plugins": netlist["plugins"][:3]}, cid, netns, "eth0", res)

    rt.delete(netlist, cid, netns, "eth0", prev=res, runtime_config=rc)
    lab.assert_released("hv1", cid)
    assert "18080" not in lab.sb.exec("hv1", ["iptables-save", "-t", "nat"]).stdout


def test_del_after_crash_half_way(lab: Lab) -> None:
    """An ADD killed at any point leaves some of lsp / veth / OVS port; DEL removes whatever is there."""
    netns = lab.new_netns("cr")
    # Killed after the etcd write: only the lsp.
    lab.ctl.allocate_switch_port("LS-A", lsp_name("eth0", "crash1"), "10.10.1.0/24", "10.10.1.1", "hv1")
    # Killed after the veth and the OVS port, before the address: all three, no address.
    lab.ctl.allocate_switch_port("LS-A", lsp_name("eth0", "crash2"), "10.10.1.0/24", "10.10.1.1", "hv1")
    host_if, mac = host_names("crash2", "eth0")
    lab.sb.exec("hv1", ["ip", "link", "add", host_if, "address", mac, "type", "veth", "peer", "name", "eth0",
                        "netns", netns])
    lab.sb.ovs("hv1", "add-port", "br-int", host_if, "--", "set", "Interface", host_if,
               f"external_ids:iface-id={lsp_name('eth0', 'crash2')}")
    for cid in ("crash1", "crash2"):
        _del(lab, "hv1", cid, netns)
        lab.assert_released("hv1", cid)
    assert lab.in_ns(netns, "ip", "link", "show", "eth0").returncode != 0


def _batch_ip_running() -> bool:
    return any(open(f"/proc/{p}/cmdline", "rb").read() == b"ip\0-batch\0-\0"
               for p in os.listdir("/proc") if p.isdigit() and os.path.exists(f"/proc/{p}/cmdline"))


@pytest.mark.parametrize("after", [0.02, 0.15, 0.3, 0.6, 1.0])
def test_del_after_add_killed(lab: Lab, after: float) -> None:
    """SIGKILL the plugin `after` seconds into an ADD (a runtime timeout), then DEL: nothing remains."""
    netns, cid = lab.new_netns("k"), f"kill{int(after * 1000)}"
    proc = lab.runtime("hv1").start("tpcni", "ADD", lab.conf("hv1"), cid, netns, "eth0")
    try:
        proc.wait(timeout=after)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    # An `ip` the plugin started lives on for a moment; DEL after it is done (a runtime would delete the
    # sandbox anyway, which takes the veth pair with it).
    wait_for(lambda: not _batch_ip_running(), timeout=10, what="the killed plugin's ip to finish")
    _del(lab, "hv1", cid, netns)
    lab.assert_released("hv1", cid)


def test_del_keeps_a_port_another_chassis_owns(lab: Lab) -> None:
    """A DEL on hv1 for an lsp now bound to hv2 (the workload moved) must not remove hv2's port."""
    name = lsp_name("eth0", "moved1")
    lab.ctl.allocate_switch_port("LS-A", name, "10.10.1.0/24", "10.10.1.1", "hv2")
    try:
        _del(lab, "hv1", "moved1", "")
        assert name in lab.lsps()
    finally:
        lab.ctl.delete_switch_port("LS-A", name)


def test_concurrent_adds_get_distinct_addresses(lab: Lab) -> None:
    jobs = [("hv1" if i % 2 else "hv2", f"par{i}", lab.new_netns(f"p{i}")) for i in range(10)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda j: lab.runtime(j[0]).invoke("tpcni", "ADD", lab.conf(j[0]), j[1], j[2],
                                                                   "eth0"), jobs))
    try:
        assert [r.status for r in results] == [0] * 10, [r.stdout for r in results if r.status]
        ips = [r.json["ips"][0]["address"] for r in results]
        assert len(set(ips)) == 10
        lsps = lab.lsps()
        assert sorted(f"{lsps[lsp_name('eth0', cid)].ip}/24" for _, cid, _ in jobs) == sorted(ips)
    finally:
        for host, cid, netns in jobs:
            _del(lab, host, cid, netns)
            lab.assert_released(host, cid)


def test_gc_releases_attachments_not_listed(lab: Lab) -> None:
    keep, drop = lab.new_netns("gk"), lab.new_netns("gd")
    _add(lab, "hv1", "gckeep", keep)
    _add(lab, "hv1", "gcdrop", drop)
    lab.ctl.allocate_switch_port("LS-A", lsp_name("eth0", "gcorphan"), "10.10.1.0/24", "10.10.1.1", "hv1")
    conf = lab.conf("hv1", **{"cni.dev/valid-attachments": [{"containerID": "gckeep", "ifname": "eth0"}]})
    conf["cniVersion"] = "1.1.0"
    r = lab.runtime("hv1").invoke("tpcni", "GC", conf)
    assert r.status == 0, r.stdout
    lab.assert_released("hv1", "gcdrop")
    lab.assert_released("hv1", "gcorphan")
    assert lsp_name("eth0", "gckeep") in lab.lsps()
    assert lab.in_ns(keep, "ping", "-c1", "-W2", "10.10.1.1").returncode == 0
    _del(lab, "hv1", "gckeep", keep)


def test_status(lab: Lab) -> None:
    rt = lab.runtime("hv1")
    ok = rt.invoke("tpcni", "STATUS", {**lab.conf("hv1"), "cniVersion": "1.1.0"})
    assert ok.status == 0 and ok.stdout.strip() == ""
    bad = rt.invoke("tpcni", "STATUS", {**lab.conf("hv1", switch="nope"), "cniVersion": "1.1.0"})
    assert bad.status != 0 and bad.json["code"] == 50 and "nope" in bad.json["msg"]


def _error(lab: Lab, host: str, stdin: Any, cid: str = "err1", netns: str | None = None, ifname: str = "eth0",
           command: str = "ADD") -> dict[str, Any]:
    r = lab.runtime(host).invoke("tpcni", command, stdin, cid, lab.new_netns("e") if netns is None else netns,
                                 ifname)
    assert r.status != 0, r.stdout
    assert set(r.json) >= {"cniVersion", "code", "msg"}, r.stdout
    assert "Traceback" not in r.stdout + r.stderr
    return r.json


@pytest.mark.parametrize("case, code, words", [
    ("bad-json", 6, "not valid JSON"),
    ("old-version", 1, "not supported"),
    ("no-switch-field", 7, "switch is required"),
    ("unknown-switch", 7, "switch nope does not exist"),
    ("bad-subnet", 7, "subnet"),
    ("gateway-outside", 7, "gateway"),
    ("bad-netns", 3, "does not exist"),
    ("no-container-id", 4, "CNI_CONTAINERID"),
    ("bad-ifname", 4, "CNI_IFNAME"),
    ("etcd-down", 11, "etcd unavailable"),
    ("ovsdb-down", 11, "OVSDB"),
])
def test_errors_leave_nothing(lab: Lab, case: str, code: int, words: str) -> None:
    c = lab.conf("hv1")
    stdin: Any = c
    kw: dict[str, Any] = {}
    if case == "bad-json":
        stdin = '{"cniVersion": "1.0.0", "name": '
    elif case == "old-version":
        stdin = {**c, "cniVersion": "0.2.0"}
    elif case == "no-switch-field":
        stdin = {k: v for k, v in c.items() if k != "switch"}
    elif case == "unknown-switch":
        stdin = {**c, "switch": "nope"}
    elif case == "bad-subnet":
        stdin = {**c, "subnet": "10.10.1.0/33"}
    elif case == "gateway-outside":
        stdin = {**c, "gateway": "10.99.0.1"}
    elif case == "bad-netns":
        kw["netns"] = "/run/netns/does-not-exist"
    elif case == "no-container-id":
        kw["cid"] = ""
    elif case == "bad-ifname":
        kw["ifname"] = "eth0/../x"
    elif case == "etcd-down":
        stdin = {**c, "etcdEndpoints": "172.31.0.254:1", "etcdTimeout": 0.5}
    elif case == "ovsdb-down":
        stdin = {**c, "ovsdbSocket": "/nonexistent/db.sock"}
    before = set(lab.lsps())
    err = _error(lab, "hv1", stdin, **kw)
    assert err["code"] == code and words in err["msg"], err
    assert set(lab.lsps()) == before
    assert not any(p.startswith("tp") and not p.startswith("tupleNet") for p in lab.ovs_ports("hv1"))
    assert not re.search(r"^\d+: tp[0-9a-f]{11}@", lab.sb.exec("hv1", ["ip", "-o", "link"]).stdout, re.M)


def test_exhausted_subnet(lab: Lab) -> None:
    """LS-T 10.10.9.0/29 with gateway .1: five containers fit (.2-.6); the sixth gets code 101 and leaves
    nothing; releasing one makes room again."""
    conf = {"switch": "LS-T", "subnet": "10.10.9.0/29", "readinessTimeout": 0}
    jobs = [(f"ex{i}", lab.new_netns(f"x{i}")) for i in range(6)]
    try:
        got = [_add(lab, "hv1", cid, ns, **conf)["ips"][0]["address"] for cid, ns in jobs[:5]]
        assert sorted(got) == [f"10.10.9.{i}/29" for i in range(2, 7)]
        err = _error(lab, "hv1", lab.conf("hv1", **conf), cid="ex5", netns=jobs[5][1])
        assert err["code"] == 101 and "no free IP" in err["msg"]
        assert lsp_name("eth0", "ex5") not in lab.lsps("LS-T")
        _del(lab, "hv1", "ex0", jobs[0][1], **conf)
        assert _add(lab, "hv1", "ex5", jobs[5][1], **conf)["ips"][0]["address"] == "10.10.9.2/29"
    finally:
        for cid, ns in jobs:
            _del(lab, "hv1", cid, ns, **conf)


def test_subnet_from_the_linked_router_port(lab: Lab) -> None:
    """Without "subnet" the switch's subnet and gateway come from the router port linked to it; a switch
    without a router port is a configuration error that leaves nothing behind."""
    netns = lab.new_netns("sn")
    c = {k: v for k, v in lab.conf("hv1", switch="LS-B").items() if k != "subnet"}
    r = lab.runtime("hv1").invoke("tpcni", "ADD", c, "subnet1", netns, "eth0")
    assert r.status == 0, r.stdout
    ip = r.json["ips"][0]
    assert ip["address"].startswith("10.10.2.") and ip["address"].endswith("/24") and ip["gateway"] == "10.10.2.1"
    assert lab.in_ns(netns, "ping", "-c1", "-W2", "10.10.2.1").returncode == 0
    assert lab.runtime("hv1").invoke("tpcni", "DEL", c, "subnet1", netns, "eth0").status == 0
    lab.assert_released("hv1", "subnet1", switch="LS-B")
    err = _error(lab, "hv1", {**c, "switch": "LS-T"}, cid="subnet2", netns=netns)
    assert err["code"] == 7 and "no router port" in err["msg"]
    assert lsp_name("eth0", "subnet2") not in lab.lsps("LS-T")


def test_add_twice_is_refused_and_keeps_the_first(lab: Lab) -> None:
    netns = lab.new_netns("tw")
    first = _add(lab, "hv1", "twice1", netns)
    err = _error(lab, "hv1", lab.conf("hv1"), cid="twice1", netns=netns)
    assert err["code"] == 102
    assert lab.in_ns(netns, "ping", "-c1", "-W2", "10.10.1.1").returncode == 0
    assert lab.lsps()[lsp_name("eth0", "twice1")].ip == first["ips"][0]["address"].split("/")[0]
    _del(lab, "hv1", "twice1", netns)


def test_readiness_timeout_is_an_error_and_rolls_back(lab: Lab) -> None:
    """With the agent of hv2 stopped nobody marks the port ready: ADD fails with a clear message after
    readinessTimeout and removes the lsp, the port and the veth."""
    netns = lab.new_netns("rd")
    lab.sb.agent_stop("hv2")
    try:
        err = _error(lab, "hv2", lab.conf("hv2", readinessTimeout=1), cid="ready1", netns=netns)
        assert err["code"] == 11 and "did not mark port" in err["msg"] and "within 1s" in err["msg"]
        lab.assert_released("hv2", "ready1")
    finally:
        lab.sb.agent_start("hv2")
        lab.sb.wait_agents(["hv2"])
    wait_for(lambda: _add(lab, "hv2", "ready1", netns), timeout=30, what="ADD after the agent restarted")
    _del(lab, "hv2", "ready1", netns)


def test_server_answers_like_the_plugin(lab: Lab, tmp_path) -> None:
    """`tpcni serve` on hv1: runs forward to it (its log names them), answers are the plugin's, and a dead
    server (socket left behind) falls back to running in-process."""
    sock, log = str(tmp_path / "tpcni.sock"), tmp_path / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(["nsenter", f"--net=/run/netns/{lab.sb.ns('hv1')}",
                                   os.path.join(lab.bindir, "tpcni"), "serve", "--socket", sock],
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: os.path.exists(sock), timeout=30, what="tpcni server socket")
        netns = lab.new_netns("sv")
        res = _add(lab, "hv1", "served1", netns, serverSocket=sock)
        lsp = lab.lsps()[lsp_name("eth0", "served1")]
        assert res["ips"][0]["address"] == f"{lsp.ip}/24" and lsp.chassis == "hv1"
        assert lab.in_ns(netns, "ping", "-c1", "-W2", "10.10.1.1").returncode == 0
        err = _error(lab, "hv1", lab.conf("hv1", switch="nope", serverSocket=sock), cid="served2")
        assert err["code"] == 7 and "switch nope does not exist" in err["msg"]
        _del(lab, "hv1", "served1", netns, serverSocket=sock)
        lab.assert_released("hv1", "served1")
        text = log.read_text()
        assert "ADD served1 eth0 -> 0" in text and "ADD served2 eth0 -> 1" in text and "DEL served1 eth0 -> 0" in text
    finally:
        server.kill()
        server.wait()
    res = _add(lab, "hv1", "served3", netns, serverSocket=sock)  # socket file left, nobody listening
    assert "served3" not in log.read_text()
    _del(lab, "hv1", "served3", netns, serverSocket=sock)
