"""Building blocks of the namespace sandbox: the underlay, one host (its own OVS), one VM.

Why separate from netns.py: these steps are the recipe from lab-findings §2 (Recipe 2) and carry its
gotchas; the class in netns.py only orders them, records them and tears them down. Every step records the
namespace in the state file *before* creating it, so an interrupted step is still cleaned up by `down`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..model.addr import normalize_mac
from .netns_util import (
    SandboxError,
    check_name,
    delete_netns,
    ifname,
    netns_exists,
    netns_inode,
    owned_alive,
    read_pidfile,
    run,
    stop_owned,
)

if TYPE_CHECKING:
    from .netns import NetnsSandbox

# Host namespaces: ARP only for addresses on the receiving interface, because the kernel also sees eth0
# (owned by OVS through AF_PACKET) and would race br-phy's answers; no IPv6 chatter on the underlay.
HOST_SYSCTLS = ["net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
                "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]
# VM namespaces: IPv4 only, so packet counters in tests see only the traffic the test sends.
QUIET_SYSCTLS = ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]


def _claim(sb: NetnsSandbox, ns: str) -> None:
    """Refuse a namespace that exists but is not in our state: another sandbox with the same name prefix
    owns it, and adopting (or later deleting) it would break that sandbox."""
    if netns_exists(ns) and not is_ours(sb, ns):
        raise SandboxError(f"netns {ns} exists but is not part of the sandbox in {sb.workdir}: another "
                           f"sandbox uses name prefix {sb.prefix!r}; pick another prefix or take it down")


def _ip_batch(ns: str, commands: list[str]) -> None:
    """Several `ip` commands in `ns` in one process (each process costs milliseconds on a busy host)."""
    run(["ip", "-n", ns, "-batch", "-"], input="".join(c + "\n" for c in commands))


def _new_netns(sb: NetnsSandbox, ns: str, sysctls: list[str], lo_up: bool = True) -> None:
    _claim(sb, ns)
    sb._record_netns(ns)
    if not netns_exists(ns):
        added = run(["ip", "netns", "add", ns], check=False)
        if added.returncode != 0:  # lost a race with another sandbox: it is theirs, forget it
            with sb._mutex:
                sb.state["netns"].remove(ns)
                sb._save()
            raise SandboxError(f"cannot create netns {ns}: {added.stderr.strip()}")
        with sb._mutex:
            sb.state.setdefault("netns_ino", {})[ns] = netns_inode(ns)
            sb._save()
        # `ip netns exec` mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf: DNS inside the sandbox
        # then fails at once on loopback instead of timing out towards the real resolver (which made
        # getfqdn(), e.g. in python -m http.server, hang for seconds) and never leaves the sandbox.
        os.makedirs(f"/etc/netns/{ns}", exist_ok=True)
        with open(f"/etc/netns/{ns}/resolv.conf", "w") as f:
            f.write("# tuplenet sandbox: no DNS inside\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    if lo_up:
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "netns", "exec", ns, "sysctl", "-qw", *sysctls])


def is_ours(sb: NetnsSandbox, ns: str) -> bool:
    """Recorded by us and, when we got to record its identity, still the same namespace."""
    if ns not in sb.state["netns"] or not netns_exists(ns):
        return False
    ino = sb.state.get("netns_ino", {}).get(ns)
    return ino is None or ino == netns_inode(ns)


def remove_netns(sb: NetnsSandbox, ns: str) -> None:
    """Delete one of our namespaces (and everything running in it) and forget it."""
    if is_ours(sb, ns):
        delete_netns(ns)
        sb.log(f"removed    netns {ns}")
    if ns in sb.state["netns"] and not netns_exists(ns):  # else someone else's namespace now has the name
        shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)
    with sb._mutex:
        if ns in sb.state["netns"]:
            sb.state["netns"].remove(ns)
        sb.state.get("netns_ino", {}).pop(ns, None)
        sb._save()


def ensure_underlay(sb: NetnsSandbox) -> None:
    """Namespace <p>-ul with Linux bridge <p>-ul (172.31.0.254/24, where the etcd relay listens)."""
    from .netns import RELAY_IP

    ns = br = sb.ns("ul")
    _claim(sb, ns)
    if netns_exists(ns) and run(["ip", "-n", ns, "link", "show", br], check=False).returncode == 0:
        return
    _new_netns(sb, ns, QUIET_SYSCTLS)
    if run(["ip", "-n", ns, "link", "show", br], check=False).returncode != 0:
        run(["ip", "-n", ns, "link", "add", br, "type", "bridge"])
    run(["ip", "-n", ns, "addr", "replace", f"{RELAY_IP}/24", "dev", br])
    # Frames the underlay's own stack sends (the relay's TCP) would reach OVS's AF_PACKET socket with the
    # checksum still to be filled in and die at the host: same fix as in VMs.
    run(["ip", "netns", "exec", ns, "ethtool", "-K", br, "tx", "off"])
    run(["ip", "-n", ns, "link", "set", br, "up"])
    sb.log(f"underlay   netns {ns}, bridge {br} {RELAY_IP}/24")


def host_healthy(sb: NetnsSandbox, name: str) -> bool:
    h = sb.state["hosts"].get(name)
    if not h or not h.get("ready") or not netns_exists(h["netns"]):
        return False
    return all(owned_alive(read_pidfile(os.path.join(h["dir"], f"{d}.pid")), h["dir"] + "/")
               for d in ("ovsdb-server", "ovs-vswitchd"))


def ensure_host(sb: NetnsSandbox, name: str) -> None:
    """Host namespace with eth0 on the underlay, its own ovsdb-server/ovs-vswitchd (netdev datapath),
    br-phy owning eth0 with the tunnel IP, and br-int pre-created for the agent to adopt."""
    from .netns import OVS_SCHEMA, UNDERLAY

    if host_healthy(sb, name):
        return
    _claim(sb, f"{sb.prefix}-{name}")
    if name in sb.state["hosts"] or netns_exists(f"{sb.prefix}-{name}"):
        teardown_host(sb, name)  # half-built or broken: rebuild from scratch
    t0 = time.monotonic()
    ns, d = f"{sb.prefix}-{name}", sb.host_dir(name)
    tunnel_ip = f"{UNDERLAY}.{int(name[2:]) + 1}"
    with sb._mutex:
        sb.state["hosts"][name] = {"netns": ns, "dir": d, "tunnel_ip": tunnel_ip, "ready": False}
    _new_netns(sb, ns, HOST_SYSCTLS)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    ul, uplink = sb.ns("ul"), ifname(sb.prefix, name)
    run(["ip", "-n", ul, "link", "add", uplink, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "-n", ul, "link", "set", uplink, "master", ul, "up"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    db, sock = os.path.join(d, "conf.db"), os.path.join(d, "db.sock")
    run(["ovsdb-tool", "create", db, OVS_SCHEMA])
    common = ["--detach", "--no-chdir", "-vconsole:off"]
    sb.exec(name, ["ovsdb-server", *common, f"--pidfile={d}/ovsdb-server.pid",
                   f"--log-file={d}/ovsdb-server.log", f"--remote=punix:{sock}", db])
    sb.ovs(name, "--no-wait", "init", "--", "set", "Open_vSwitch", ".", f"external-ids:system-id={name}")
    sb.exec(name, ["ovs-vswitchd", *common, f"--pidfile={d}/ovs-vswitchd.pid",
                   f"--log-file={d}/ovs-vswitchd.log", f"unix:{sock}"])
    sb.ovs(name, "add-br", "br-phy", "--", "set", "Bridge", "br-phy", "datapath_type=netdev",
           "--", "add-port", "br-phy", "eth0",
           "--", "add-br", "br-int", "--", "set", "Bridge", "br-int", "datapath_type=netdev",
           "fail_mode=secure", "other-config:disable-in-band=true")
    run(["ip", "-n", ns, "link", "set", "br-phy", "up"])
    run(["ip", "-n", ns, "addr", "add", f"{tunnel_ip}/24", "dev", "br-phy"])
    with sb._mutex:
        sb.state["hosts"][name]["ready"] = True
        sb._save()
    sb.log(f"host       {name}: netns {ns}, tunnel {tunnel_ip}, ovs {time.monotonic() - t0:.2f}s")


def teardown_host(sb: NetnsSandbox, name: str) -> None:
    h = sb.state["hosts"].get(name)
    ns = h["netns"] if h else f"{sb.prefix}-{name}"
    if h:
        stop_owned(h.get("agent_pid"), h["dir"] + "/")
    for vm, v in list(sb.state["vms"].items()):
        if v["host"] == name:
            del_vm(sb, vm)
    remove_netns(sb, ns)  # kills ovsdb-server/ovs-vswitchd inside; the underlay veth end goes with eth0
    shutil.rmtree(sb.host_dir(name), ignore_errors=True)
    with sb._mutex:
        sb.state["hosts"].pop(name, None)
        sb._save()


def start_agent(sb: NetnsSandbox, host: str, env: Mapping[str, str] | None = None) -> int:
    """`<agent cmd> -a <relay> -p <prefix> -f <tunnel ip> -l <log dir>` inside the host namespace, with the
    0.3 environment pointing at this host's private OVS. Returns the agent's pid."""
    h, a = sb.state["hosts"][host], sb.state["agent"]
    if not sb.state["etcd"].get("endpoint"):
        raise SandboxError("agents need etcd: up(etcd=True or an endpoint)")
    d = h["dir"]
    rundir, logdir = os.path.join(d, "tuplenet"), os.path.join(d, "log")
    os.makedirs(rundir, exist_ok=True)
    os.makedirs(logdir, exist_ok=True)
    if env is not None:
        h["agent_env"] = dict(env)
    argv = [*agent_cmd(sb), "-a", sb.agent_etcd_endpoint,
            "-p", a.get("prefix", "/tuplenet/"), "-f", h["tunnel_ip"], "-l", logdir]
    full, penv = sb.command(host, argv)
    penv.update({"TUPLENET_RUNDIR": rundir, "TUPLENET_OVSDB_PATH": os.path.join(d, "db.sock"),
                 "ONDEMAND": "0", **agent_env(sb, host)})
    with open(os.path.join(logdir, "agent.out"), "ab") as out:
        proc = subprocess.Popen(full, env=penv, cwd=d, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    h["agent_pid"] = proc.pid  # `ip netns exec` execs the agent, so this is the agent's own pid
    sb._save()
    sb.log(f"agent      {host} pid {proc.pid}")
    return proc.pid


def agent_cmd(sb: NetnsSandbox) -> list[str]:
    from .netns import DEFAULT_AGENT_CMD

    return list(sb.agent_cmd or sb.state["agent"].get("cmd") or DEFAULT_AGENT_CMD)


def agent_env(sb: NetnsSandbox, host: str) -> dict[str, str]:
    """The environment the sandbox adds for `host`'s agent (its own settings win over the defaults)."""
    own = sb.state["hosts"][host].get("agent_env", {})
    return {**sb.state["agent"].get("env", {}), **sb.agent_env, **own}


def agent_rundir(sb: NetnsSandbox, host: str) -> str:
    """Where `host`'s agent writes its status file (agent/status.py)."""
    return agent_env(sb, host).get("TUPLENET_RUNDIR") or os.path.join(sb.host_dir(host), "tuplenet")


def runs_tuplenet_agent(sb: NetnsSandbox) -> bool:
    """The hosts run TupleNet's agent, which reports its status and marks ports ready (not a stand-in)."""
    return "tuplenet.agent.main" in agent_cmd(sb)


READY_WAIT = 10.0  # s: how long add-vm waits for the agent's readiness mark before letting the VM talk anyway


def add_vm(sb: NetnsSandbox, name: str, host: str, ip: str, mac: str | None, gateway: str | None,
           iface_id: str, ready_wait: float | None = None) -> dict[str, Any]:
    """The VM's eth0 stays down until the agent marks its port ready (every flow installed, as the CNI
    plugin waits), so its first ARP is answered; `ready_wait` None: READY_WAIT if the host's agent runs
    (and reports its status), else no wait. On timeout the VM comes up anyway and `ready` is False (no
    lsp of that name, say)."""
    from .netns import RESERVED, VM_MTU, default_mac

    check_name(name, "VM name")
    if name in RESERVED or re.fullmatch(r"hv\d+", name):
        raise SandboxError(f"VM name {name!r} is reserved")
    try:
        iface = ipaddress.IPv4Interface(ip)
        gw = str(ipaddress.IPv4Address(gateway)) if gateway else None
        mac = normalize_mac(mac or default_mac(ip))  # goes into an `ip -batch` line: must be a MAC, nothing else
    except ValueError as exc:
        raise SandboxError(f"bad address: {exc}") from exc
    spec = {"host": host, "ip": str(iface), "mac": mac.lower(), "gateway": gw,
            "iface_id": iface_id}
    old = sb.state["vms"].get(name)
    if old is not None:
        if {k: old[k] for k in spec} == spec and netns_exists(old["netns"]):
            return old
        raise SandboxError(f"VM {name} exists with other settings: {old}")
    if host not in sb.state["hosts"] or not sb.state["hosts"][host].get("ready"):
        raise SandboxError(f"unknown or unfinished host {host!r}")
    ns, port, hns = f"{sb.prefix}-{name}", ifname(sb.prefix, name), sb.state["hosts"][host]["netns"]
    _claim(sb, ns)
    vm = {**spec, "netns": ns, "port": port}
    sb.state["vms"][name] = vm
    try:
        _new_netns(sb, ns, QUIET_SYSCTLS, lo_up=False)
        run(["ip", "-n", hns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns])
        _ip_batch(ns, ["link set lo up", f"link set eth0 address {vm['mac']} mtu {VM_MTU}",
                       f"addr add {vm['ip']} dev eth0"])
        # OVS 3.1's netdev datapath forwards CHECKSUM_PARTIAL frames from a veth unfixed: TCP would die.
        run(["ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off"])
        run(["ip", "-n", hns, "link", "set", port, "up"])
        sb.ovs(host, "add-port", "br-int", port, "--", "set", "Interface", port,
               f"external_ids:iface-id={iface_id}", f"external_ids:attached-mac={vm['mac']}")
        if ready_wait is None:  # a running agent that marks ports (not a stand-in) will mark this one, also
            # when it is still starting (its status file not written yet)
            reports = runs_tuplenet_agent(sb) or os.path.exists(os.path.join(agent_rundir(sb, host), "status.json"))
            ready_wait = READY_WAIT if reports and sb.agent_alive(host) else 0.0
        vm["ready"] = wait_port_ready(sb, host, port, ready_wait) if ready_wait > 0 else False
        # Only now may the VM send its first frame.
        _ip_batch(ns, ["link set eth0 up"] + ([f"route add default via {gw}"] if gw else []))
    except Exception:
        del_vm(sb, name)
        raise
    note = "" if vm["ready"] or not ready_wait else f" (not marked ready within {ready_wait:g}s: is there an lsp {iface_id}?)"
    sb.log(f"vm         {name}: {vm['ip']} {vm['mac']} on {host} port {port} iface-id {iface_id}{note}")
    return vm


def wait_port_ready(sb: NetnsSandbox, host: str, port: str, timeout: float) -> bool:
    """Until the agent marks `port` `external_ids:tuplenet-installed=true`: one OVSDB "wait", served by
    ovsdb-server as soon as the mark is written (no polling)."""
    from ..cni.ovsdb import Ovsdb

    db = Ovsdb(os.path.join(sb.host_dir(host), "db.sock"), timeout=timeout + 5)
    try:
        return db.wait_ready(port, timeout)
    finally:
        db.close()


def del_vm(sb: NetnsSandbox, name: str) -> None:
    vm = sb.state["vms"].get(name)
    if vm is None:
        raise SandboxError(f"unknown VM {name!r}")
    host = vm["host"]
    if host_healthy(sb, host) and is_ours(sb, vm["netns"]):
        sb.ovs(host, "--if-exists", "del-port", "br-int", vm["port"], check=False)
    remove_netns(sb, vm["netns"])
    with sb._mutex:
        sb.state["vms"].pop(name, None)
        sb._save()
