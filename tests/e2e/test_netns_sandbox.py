"""The namespace sandbox: real Geneve between userspace-OVS hosts, etcd reachable everywhere, clean teardown.

Flows here are written by hand (the agent is not needed): they prove the sandbox carries real traffic, so
later agent tests can blame the agent, not the sandbox, when a ping fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import urllib.request

import pytest

from tuplenet.sandbox import netns_etcd, netns_hosts
from tuplenet.sandbox.netns import NetnsSandbox, SandboxError
from tuplenet.sandbox.netns_util import read_pidfile
from tuplenet.sandbox.procs import wait_for

pytestmark = pytest.mark.e2e

GNV = 10  # ofport of the flow-based Geneve port the test adds
VNI = 0x5
VMS = {"vm1": ("hv1", "10.10.1.2/24"), "vm2": ("hv2", "10.10.1.3/24")}


def leftovers(prefix: str, workdir: str) -> dict[str, list[str]]:
    """Anything of a sandbox still on the machine: namespaces, processes, root links, files."""
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    procs = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if (workdir + "/").encode() in f.read():
                    procs.append(pid)
        except OSError:
            pass
    etc = [f"/etc/netns/{n}" for n in os.listdir("/etc/netns")] if os.path.isdir("/etc/netns") else []
    return {"netns": [n.split()[0] for n in ns.splitlines() if n.startswith(f"{prefix}-")],
            "links": [ln.split(":")[1].strip() for ln in links.splitlines()
                      if ln.split(":")[1].strip().startswith(f"{prefix}-")],
            "procs": procs, "files": ([workdir] if os.path.exists(workdir) else [])
            + [e for e in etc if os.path.basename(e).startswith(f"{prefix}-")]}


def nothing_left(prefix: str, workdir: str) -> None:
    left = leftovers(prefix, workdir)
    assert not any(left.values()), left


def get(sb: NetnsSandbox, host: str, *args: str) -> str:
    """One OVSDB column value, unquoted."""
    return sb.ovs(host, "get", *args).strip().strip('"')


def install_geneve_l2(sb: NetnsSandbox, vms: dict[str, tuple[str, str]]) -> None:
    """Recipe 2 flows: TLV map, a remote_ip=flow Geneve port, L2 forwarding by dl_dst and tun_dst."""
    hosts = sorted({h for h, _ in vms.values()})
    for host in hosts:
        sb.ovs(host, "--may-exist", "add-port", "br-int", "gnv0", "--", "set", "Interface", "gnv0",
               "type=geneve", "options:remote_ip=flow", "options:key=flow", f"ofport_request={GNV}")
        sb.ovs(host, "ovs-ofctl", "del-tlv-map", "br-int")
        sb.ovs(host, "ovs-ofctl", "add-tlv-map", "br-int", "{class=0xffee,type=0,len=4}->tun_metadata0")
        local = {v: sb.ofport(host, sb.state["vms"][v]["port"]) for v, (h, _) in vms.items() if h == host}
        encap = f"set_field:{VNI:#x}->tun_id,set_field:0x1->tun_metadata0"
        flood_remote = ",".join(f"set_field:{sb.state['hosts'][h]['tunnel_ip']}->tun_dst,{encap},output:{GNV}"
                                for h in hosts if h != host)
        flows = []
        for v, (h, _) in vms.items():
            mac = sb.state["vms"][v]["mac"]
            if h == host:
                flows.append(f"priority=100,dl_dst={mac},actions=output:{local[v]}")
            else:
                tip = sb.state["hosts"][h]["tunnel_ip"]
                flows.append(f"priority=100,dl_dst={mac},actions=set_field:{tip}->tun_dst,{encap},output:{GNV}")
        for v, port in local.items():
            others = [f"output:{p}" for w, p in local.items() if w != v]
            flows.append(f"priority=90,in_port={port},dl_dst=ff:ff:ff:ff:ff:ff,"
                         f"actions={','.join([*others, flood_remote])}")
        flows.append(f"priority=90,in_port={GNV},tun_id={VNI:#x},tun_metadata0=0x1,dl_dst=ff:ff:ff:ff:ff:ff,"
                     f"actions={','.join(f'output:{p}' for p in local.values())}")
        flows.append(f"priority=110,in_port={GNV},tun_metadata0=0x2,actions=drop")  # must carry our option
        sb.ovs(host, "ovs-ofctl", "del-flows", "br-int")
        sb.ovs(host, "ovs-ofctl", "add-flows", "br-int", "-", input="\n".join(flows) + "\n")


@pytest.fixture(scope="module")
def vms(sandbox: NetnsSandbox) -> dict[str, tuple[str, str]]:
    for name, (host, ip) in VMS.items():
        sandbox.add_vm(name, host=host, ip=ip, gateway="10.10.1.1")
    install_geneve_l2(sandbox, VMS)
    return VMS


def test_hosts_are_built_as_the_agent_expects(sandbox: NetnsSandbox) -> None:
    st = sandbox.status()
    assert st["healthy"] and set(st["hosts"]) == {"hv1", "hv2"}
    for i, host in enumerate(["hv1", "hv2"], start=1):
        assert st["hosts"][host]["tunnel_ip"] == f"172.31.0.{i + 1}"
        assert get(sandbox, host, "Open_vSwitch", ".", "external_ids:system-id") == host
        assert get(sandbox, host, "Bridge", "br-int", "datapath_type") == "netdev"
        assert get(sandbox, host, "Bridge", "br-int", "fail_mode") == "secure"
        assert get(sandbox, host, "Bridge", "br-int", "other_config:disable-in-band") == "true"
        assert get(sandbox, host, "Bridge", "br-phy", "datapath_type") == "netdev"
        assert sandbox.ovs(host, "list-ports", "br-phy").split() == ["eth0"]
        assert sandbox.ovs(host, "ovs-ofctl", "dump-flows", "br-int", "--no-stats").strip() == ""
        assert f"172.31.0.{i + 1}/24" in sandbox.exec(host, "ip -o addr show br-phy").stdout
        assert sandbox.exec(host, ["sysctl", "-n", "net.ipv4.conf.all.arp_ignore"]).stdout.strip() == "1"


def test_etcd_reachable_from_root_and_from_hosts(sandbox: NetnsSandbox) -> None:
    with urllib.request.urlopen(f"http://{sandbox.etcd_endpoint}/health", timeout=5) as resp:
        assert json.load(resp)["health"] == "true"
    subprocess.run(["etcdctl", "--endpoints", sandbox.etcd_endpoint, "put", "/tne/k", "v1"], check=True,
                   capture_output=True, env={**os.environ, "ETCDCTL_API": "3"})
    for host in ("hv1", "hv2"):  # through br-phy, the underlay bridge and the relay
        out = sandbox.exec(host, ["etcdctl", "--endpoints", sandbox.agent_etcd_endpoint, "get", "/tne/k",
                                  "--print-value-only"]).stdout
        assert out.strip() == "v1"


def test_ping_and_tcp_between_vms_over_geneve(sandbox: NetnsSandbox, vms: dict) -> None:
    for name in vms:
        vm = sandbox.state["vms"][name]
        assert sandbox.exec(name, "cat /sys/class/net/eth0/mtu").stdout.strip() == "1400"
        assert "tx-checksumming: off" in sandbox.exec(name, ["ethtool", "-k", "eth0"]).stdout
        assert get(sandbox, vm["host"], "Interface", vm["port"], "external_ids:iface-id") == name
        assert "default via 10.10.1.1" in sandbox.exec(name, "ip route").stdout
        assert "nameserver 127.0.0.1" in sandbox.exec(name, "cat /etc/resolv.conf").stdout  # hermetic DNS
    # The first packet may be lost while OVS resolves the tunnel neighbour; ping's exit status is 0 once
    # any reply arrives within its deadline.
    ping = sandbox.exec("vm1", ["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.10.1.3"], check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    warm = sandbox.exec("vm1", ["ping", "-c", "5", "-i", "0.05", "-W", "2", "10.10.1.3"])
    rtt = re.search(r"= [\d.]+/([\d.]+)/", warm.stdout)
    assert rtt, warm.stdout
    # Exact bytes over TCP: 4 MiB of random data from vm2 to vm1, checked by length and hash.
    blob = os.urandom(4 << 20)
    src = os.path.join(sandbox.workdir, "blob")
    with open(src, "wb") as f:
        f.write(blob)
    send = ("import socket,sys;s=socket.create_server(('10.10.1.3',8000));c,_=s.accept();"
            "c.sendall(open(sys.argv[1],'rb').read());c.close()")
    recv = ("import hashlib,socket;c=socket.create_connection(('10.10.1.3',8000),timeout=20)\n"
            "h=hashlib.sha256();n=0\nwhile d:=c.recv(65536): h.update(d); n+=len(d)\nprint(n,h.hexdigest())")
    web = sandbox.spawn("vm2", [sys.executable, "-c", send, src])
    iperf = sandbox.spawn("vm2", ["iperf3", "-s", "-B", "10.10.1.3"])
    try:
        wait_for(lambda: all(p in sandbox.exec("vm2", "ss -ltn").stdout for p in (":8000", ":5201")),
                 timeout=10, interval=0.05, what="servers in vm2")
        got = sandbox.exec("vm1", [sys.executable, "-c", recv], timeout=30).stdout.split()
        assert got == [str(len(blob)), hashlib.sha256(blob).hexdigest()]
        out = sandbox.exec("vm1", ["iperf3", "-c", "10.10.1.3", "-n", "20M", "-J"], timeout=30)
        sent = json.loads(out.stdout)["end"]["sum_sent"]
        assert sent["bytes"] >= 20 << 20
        print(f"\nVM ping RTT avg {rtt.group(1)} ms; TCP {sent['bits_per_second'] / 1e6:.0f} Mbit/s "
              "over Geneve (userspace datapath)")
    finally:
        for proc in (web, iperf):
            proc.kill()
            proc.wait()
    assert "tnl_push" in sandbox.ovs("hv1", "ovs-appctl", "dpctl/dump-flows")  # native userspace tunnelling


def test_up_twice_changes_nothing(sandbox: NetnsSandbox, vms: dict) -> None:
    def pids() -> dict:
        st = sandbox.status()
        files = {h: [read_pidfile(f"{sandbox.host_dir(h)}/{d}.pid") for d in ("ovsdb-server", "ovs-vswitchd")]
                 for h in st["hosts"]}
        return {"etcd": st["etcd"]["pid"], "relay": st["etcd"]["relay_pid"], "ovs": files}
    before = pids()
    sandbox.up(hosts=2, agents=False)
    assert pids() == before
    assert sandbox.exec("vm1", ["ping", "-c", "1", "-W", "2", "10.10.1.3"]).returncode == 0
    assert sandbox.add_vm("vm1", host="hv1", ip="10.10.1.2/24", gateway="10.10.1.1")["host"] == "hv1"
    with pytest.raises(SandboxError):
        sandbox.add_vm("vm1", host="hv2", ip="10.10.1.9/24")


def test_agent_lifecycle(sandbox: NetnsSandbox) -> None:
    info_path = os.path.join(sandbox.host_dir("hv2"), "tuplenet", "fake-agent.json")

    def started() -> dict:
        with open(info_path) as f:
            return json.load(f)
    pid = sandbox.agent_start("hv2", env={"GATEWAY": "1"})
    info = wait_for(started, timeout=10, what="fake agent")
    assert info["pid"] == pid and sandbox.agent_alive("hv2")
    assert info["argv"] == ["-a", "172.31.0.254:2379", "-p", "/tuplenet/", "-f", "172.31.0.3",
                            "-l", os.path.join(sandbox.host_dir("hv2"), "log")]
    hd = sandbox.host_dir("hv2")
    assert info["env"] == {"TUPLENET_RUNDIR": f"{hd}/tuplenet", "TUPLENET_OVSDB_PATH": f"{hd}/db.sock",
                           "OVS_RUNDIR": hd, "ONDEMAND": "0", "GATEWAY": "1"}
    assert info["etcd_health"] == "true"
    sandbox.wait_agents(["hv2"], timeout=10)  # its chassis record went through the relay
    assert info["netns"] == sandbox.exec("hv2", ["readlink", "/proc/self/ns/net"]).stdout.strip()
    assert sandbox.agent_start("hv2") == pid  # already running: no second agent
    sandbox.agent_kill("hv2")
    assert not sandbox.agent_alive("hv2")
    os.unlink(info_path)
    new = sandbox.agent_restart("hv2")
    assert new != pid and wait_for(started, timeout=10, what="restarted agent")["env"]["GATEWAY"] == "1"
    sandbox.agent_stop("hv2")
    assert not sandbox.agent_alive("hv2")
    sandbox.agent_start("hv1", env={"FAKE_EXIT": "1"})  # an agent that dies is reported, not waited for
    with pytest.raises(SandboxError, match="agent on hv1 exited"):
        sandbox.wait_agents(["hv1"], timeout=20)
    sandbox.agent_start("hv2")  # left running: down must stop it


def test_del_vm(sandbox: NetnsSandbox, vms: dict) -> None:
    sandbox.add_vm("vm3", host="hv2", ip="10.10.1.4/24")
    port = sandbox.state["vms"]["vm3"]["port"]
    assert port in sandbox.ovs("hv2", "list-ports", "br-int").split()
    sandbox.spawn("vm3", ["sleep", "300"])  # a stray process in the VM goes with it
    sandbox.del_vm("vm3")
    assert "vm3" not in sandbox.status()["vms"]
    assert port not in sandbox.ovs("hv2", "list-ports", "br-int").split()
    assert "tne-vm3" not in leftovers("tne", sandbox.workdir)["netns"]


def test_same_prefix_elsewhere_is_refused_and_harmless(sandbox: NetnsSandbox, vms: dict) -> None:
    other = NetnsSandbox(workdir=f"{sandbox.workdir}-other", name_prefix="tne")
    try:
        with pytest.raises(SandboxError, match="another sandbox"):
            other.up(hosts=2, etcd=False, agents=False)
    finally:
        other.down()
    assert sandbox.status()["healthy"]
    assert sandbox.exec("vm1", ["ping", "-c", "1", "-W", "2", "10.10.1.3"]).returncode == 0


def test_zz_down_leaves_nothing(sandbox: NetnsSandbox, vms: dict) -> None:
    assert sandbox.agent_alive("hv2")
    sandbox.down()
    nothing_left("tne", sandbox.workdir)
    sandbox.down()  # twice is fine
    nothing_left("tne", sandbox.workdir)


@pytest.mark.parametrize("stage", ["host", "etcd"])
def test_down_after_failed_up(stage: str, monkeypatch: pytest.MonkeyPatch, e2e_env: None) -> None:
    workdir = f"/tmp/tn-e2e-fail-{os.getpid()}"
    sb = NetnsSandbox(workdir=workdir, name_prefix="tnf")
    real = netns_hosts.ensure_host

    def broken_host(s: NetnsSandbox, name: str) -> None:
        if name == "hv2":  # half-built: namespace and ovsdb-server exist, then the step fails
            s.state["hosts"][name] = {"netns": "tnf-hv2", "dir": s.host_dir(name), "tunnel_ip": "?"}
            s._record_netns("tnf-hv2")
            subprocess.run(["ip", "netns", "add", "tnf-hv2"], check=True)
            os.makedirs(s.host_dir(name), exist_ok=True)
            s.spawn(name, ["sleep", "300"])
            raise SandboxError("injected host failure")
        real(s, name)

    def broken_etcd_check(s: NetnsSandbox, host: str, timeout: float = 0) -> None:
        raise SandboxError("injected etcd failure")

    if stage == "host":
        monkeypatch.setattr(netns_hosts, "ensure_host", broken_host)
    else:
        monkeypatch.setattr(netns_etcd, "wait_etcd_from", broken_etcd_check)
    try:
        with pytest.raises(SandboxError, match="injected"):
            sb.up(hosts=3, agents=False)
        assert {"tnf-ul", "tnf-hv1", "tnf-hv3"} <= set(leftovers("tnf", workdir)["netns"])
        if stage == "etcd":
            assert sb.status()["etcd"]["alive"] and sb.status()["etcd"]["relay_alive"]
        assert leftovers("tnf", workdir)["procs"]
        monkeypatch.undo()
        NetnsSandbox(workdir=workdir, name_prefix="tnf").down()  # as from another process
        nothing_left("tnf", workdir)
    finally:
        NetnsSandbox(workdir=workdir, name_prefix="tnf").down()


def test_cli_round_trip(e2e_env: None) -> None:
    workdir = f"/tmp/tn-e2e-cli-{os.getpid()}"
    base = [sys.executable, "-m", "tuplenet.sandbox.cli"]
    common = ["--workdir", workdir, "--name-prefix", "tnc"]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=60)
    try:
        up = cli("up", "--hosts", "1", "--no-agents", *common)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "hv1" in up.stdout
        assert cli("add-vm", "a1", "--host", "hv1", "--ip", "10.20.0.2/24", *common).returncode == 0
        ex = cli("exec", *common, "a1", "--", "ip", "-o", "addr", "show", "eth0")
        assert "10.20.0.2/24" in ex.stdout
        assert cli("exec", *common, "a1", "--", "false").returncode == 1
        st = cli("status", "--json", *common)
        assert json.loads(st.stdout)["vms"]["a1"]["host"] == "hv1"
        assert cli("del-vm", "a1", *common).returncode == 0
        down = cli("down", *common)
        assert down.returncode == 0, down.stdout + down.stderr
        nothing_left("tnc", workdir)
    finally:
        cli("down", *common)
