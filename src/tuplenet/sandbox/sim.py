"""Simulated hosts on the OVS dummy datapath: the fast, deterministic bed of the integration suite.

Each host is a private ovsdb-server + `ovs-vswitchd --enable-dummy=system` in its own directory (`=system`
keeps real Geneve tunnelling; `=override` silently turns tunnels into dummy ports). Hosts reach each other
through the "physical" bridge `phy` of a `main` sim over unix-socket dummy links; VM ports are dummy ports
whose frames we inject with `netdev-dummy/receive` and read back from their tx pcap.

Layout of one host directory: conf.db, db.sock, daemon pid/log/ctl files, `<port>-tx.pcap`/`-rx.pcap`,
`tuplenet/` (agent rundir) and `tuplenet-log/`. Nothing touches the system OVS in /var/run/openvswitch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from .agentproc import AgentProcess
from .ovsd import SCHEMA, OvsSim, SimError, poll, process_running, run_tool, terminate
from .pcap import PcapFollower

__all__ = ["AgentProcess", "OvsSim", "SimError", "SimHost", "SimNetwork", "host_mac", "process_running",
           "terminate"]

PHY_BRIDGE = "phy"        # the L2 "physical network" on main
UPLINK_BRIDGE = "br0"     # on every host: owns the tunnel IP, as in 0.3's harness
UPLINK_PORT = "br0-phy"   # the host end of its link to main


def host_mac(ip: str) -> str:
    """A fixed, locally administered MAC for a host's uplink bridge, so peers know it without asking."""
    return "0a:00:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


class SimHost(OvsSim):
    """A simulated hypervisor: uplink bridge br0 holding the tunnel IP, VM ports on br-int, an agent."""

    def __init__(self, net: SimNetwork, name: str, ip: str, prefix_len: int, directory: str,
                 uplink: str) -> None:
        super().__init__(name, directory, net.template_db)
        self.net = net
        self.ip = ip
        self.prefix_len = prefix_len
        self.mac = host_mac(ip)
        self.uplink = uplink
        self.agents: list[AgentProcess] = []
        self._tx: dict[str, PcapFollower] = {}
        self._rx: dict[str, PcapFollower] = {}

    def _initial_config(self) -> list[str]:
        return ["--", "set", "Open_vSwitch", ".", f"external_ids:system-id={self.name}",
                f"external_ids:hostname={self.name}",
                "--", "add-br", UPLINK_BRIDGE, "--", "set", "Bridge", UPLINK_BRIDGE,
                f"other-config:hwaddr={self.mac}",
                "--", "add-port", UPLINK_BRIDGE, UPLINK_PORT, "--", "set", "Interface", UPLINK_PORT,
                "type=dummy", f"options:stream={self.uplink}"]

    def _after_vswitchd_start(self) -> None:
        self.appctl("netdev-dummy/ip4addr", UPLINK_BRIDGE, f"{self.ip}/{self.prefix_len}")
        self.appctl("ovs/route/add", f"{self.ip}/{self.prefix_len}", UPLINK_BRIDGE)
        for peer in self.net.hosts.values():
            if peer is not self:
                self.set_neighbour(peer.ip, peer.mac)

    def set_neighbour(self, ip: str, mac: str) -> None:
        """Seed the tunnel neighbour table: nothing answers ARP for tunnel endpoints in dummy mode."""
        self.appctl("tnl/neigh/set", UPLINK_BRIDGE, ip, mac)

    # -- VM ports ----------------------------------------------------------------------------------

    def pcap_path(self, port: str, direction: str = "tx") -> str:
        return os.path.join(self.dir, f"{port}-{direction}.pcap")

    def add_vm_port(self, name: str, iface_id: str | None = None, ofport_request: int | None = None,
                    bridge: str = "br-int") -> int:
        """A dummy VM port with tx/rx pcaps; creates br-int (secure) only if the agent has not yet."""
        tx, rx = self.pcap_path(name, "tx"), self.pcap_path(name, "rx")
        for path in (tx, rx):
            if os.path.exists(path):
                os.unlink(path)
        self._tx.pop(name, None)
        self._rx.pop(name, None)
        port = ["add-port", bridge, name, "--", "set", "Interface", name, "type=dummy",
                f"options:tx_pcap={tx}", f"options:rxq_pcap={rx}"]
        if ofport_request is not None:
            port.append(f"ofport_request={ofport_request}")
        if iface_id is not None:
            port.append(f"external_ids:iface-id={iface_id}")
        try:
            self.vsctl(*port)
        except SimError as exc:
            if "no bridge named" not in str(exc):
                raise
            self.vsctl("--may-exist", "add-br", bridge, "--", "set", "Bridge", bridge, "fail-mode=secure",
                       "other-config:disable-in-band=true", "--", *port)
        return poll(lambda: max(self.ofport(name), 0), 5.0, f"ofport of {name}")

    def del_vm_port(self, name: str, bridge: str = "br-int") -> None:
        self.vsctl("--if-exists", "del-port", bridge, name)
        self._tx.pop(name, None)
        self._rx.pop(name, None)

    def set_iface_id(self, name: str, iface_id: str | None) -> None:
        """Bind (or with None unbind) an interface to a logical port, the way a CMS would."""
        if iface_id is None:
            self.vsctl("remove", "Interface", name, "external_ids", "iface-id")
        else:
            self.vsctl("set", "Interface", name, f"external_ids:iface-id={iface_id}")

    # -- traffic -----------------------------------------------------------------------------------

    def inject(self, port: str, frame: bytes | str) -> None:
        """Make `frame` (bytes, hex, or an ODP flow string) arrive from the VM on `port`."""
        data = bytes(frame).hex() if isinstance(frame, bytes | bytearray) else frame
        self.appctl("netdev-dummy/receive", port, data)

    def _follower(self, port: str, direction: str = "tx") -> PcapFollower:
        cache = self._tx if direction == "tx" else self._rx
        if port not in cache:
            cache[port] = PcapFollower(self.pcap_path(port, direction))
        return cache[port]

    def tx_packets(self, port: str) -> list[bytes]:
        """Every frame OVS has sent to the VM on `port` so far."""
        return self._follower(port).frames()

    def rx_packets(self, port: str) -> list[bytes]:
        """Every frame OVS has received from the VM on `port` (what was injected)."""
        return self._follower(port, "rx").frames()

    def tx_mark(self, port: str) -> int:
        """A cursor: the number of frames sent to `port` so far, for `wait_tx_after`."""
        return self._follower(port).count()

    def wait_tx(self, port: str, count: int = 1, timeout: float = 5.0) -> list[bytes]:
        """Poll until OVS has sent at least `count` frames in total to `port`; return them all."""
        f = self._follower(port)
        poll(lambda: f.count() >= count, timeout, f"{count} frame(s) to {self.name}:{port}")
        return f.frames()

    def wait_tx_after(self, port: str, mark: int, count: int = 1, timeout: float = 5.0) -> list[bytes]:
        """Poll until `count` frames arrived after `mark`; return the frames after the mark."""
        f = self._follower(port)
        poll(lambda: f.count() >= mark + count, timeout,
             f"{count} new frame(s) to {self.name}:{port} after #{mark}")
        return f.since(mark)

    # -- agent -------------------------------------------------------------------------------------

    def start_agent(self, etcd_endpoints: str, prefix: str, extra_env: Mapping[str, str] | None = None,
                    args: Sequence[str] = ()) -> AgentProcess:
        """Run the tuplenet agent for this host, its rundir and log dir inside the host directory."""
        rundir = os.path.join(self.dir, "tuplenet")
        logdir = os.path.join(self.dir, "tuplenet-log")
        os.makedirs(rundir, exist_ok=True)
        argv = [sys.executable, "-m", "tuplenet.agent.main", "-a", etcd_endpoints, "-p", prefix,
                "-f", self.ip, "-l", logdir, *args]
        env = {**self.env, "TUPLENET_RUNDIR": rundir, "TUPLENET_OVSDB_PATH": self.db_sock,
               "ONDEMAND": "0", **(extra_env or {})}
        agent = AgentProcess(argv, env, logdir, name=f"agent{len(self.agents) or ''}").start()
        self.agents.append(agent)
        return agent

    @property
    def agent(self) -> AgentProcess | None:
        return self.agents[-1] if self.agents else None

    def stop_agents(self) -> None:
        for agent in self.agents:
            agent.stop()


class SimNetwork:
    """The main sim with the physical bridge plus the hosts joined to it; a context manager."""

    def __init__(self, basedir: str, phy_bridge: str = PHY_BRIDGE) -> None:
        self.basedir = os.path.abspath(basedir)
        os.makedirs(self.basedir, exist_ok=True)
        self.phy_bridge = phy_bridge
        self.template_db = os.path.join(self.basedir, "template.db")
        if not os.path.exists(self.template_db):
            run_tool(["ovsdb-tool", "create", self.template_db, SCHEMA], os.environ)
        self.hosts: dict[str, SimHost] = {}
        self.main = _MainSim(self)
        self._phy: dict[str, PcapFollower] = {}
        try:
            self.main.start()
        except BaseException:
            self.destroy()
            raise

    def __enter__(self) -> SimNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def __getitem__(self, name: str) -> SimHost:
        return self.hosts[name]

    def add_host(self, name: str, ip: str, prefix_len: int = 24) -> SimHost:
        """A new host linked to `phy`, with tunnel neighbours seeded both ways with every existing host."""
        if name in self.hosts or name == "main":
            raise ValueError(f"host {name!r} already exists")
        sock = os.path.join(self.main.dir, f"{name}.sock")
        self.main.vsctl("add-port", self.phy_bridge, name, "--", "set", "Interface", name, "type=dummy",
                        f"options:pstream=punix:{sock}",
                        f"options:tx_pcap={self.main.dir}/{name}-tx.pcap",
                        f"options:rxq_pcap={self.main.dir}/{name}-rx.pcap")
        host = SimHost(self, name, ip, prefix_len, os.path.join(self.basedir, name), f"unix:{sock}")
        try:
            host.start()
        except BaseException:
            host.stop()
            raise
        self.hosts[name] = host
        for peer in self.hosts.values():
            if peer is not host:
                peer.set_neighbour(host.ip, host.mac)
        return host

    def install_arp(self) -> None:
        """Seed every running host's tunnel neighbour table with every other host (idempotent)."""
        for host in self.hosts.values():
            if host.pids.get("ovs-vswitchd"):
                for peer in self.hosts.values():
                    if peer is not host:
                        host.set_neighbour(peer.ip, peer.mac)

    def phy_frames_to(self, host: str) -> list[bytes]:
        """Underlay frames the physical network delivered to `host` (Geneve and all)."""
        return self._phy_follower(host, "tx").frames()

    def phy_frames_from(self, host: str) -> list[bytes]:
        """Underlay frames `host` sent into the physical network."""
        return self._phy_follower(host, "rx").frames()

    def _phy_follower(self, host: str, direction: str) -> PcapFollower:
        key = f"{host}-{direction}"
        if key not in self._phy:
            self._phy[key] = PcapFollower(os.path.join(self.main.dir, f"{key}.pcap"))
        return self._phy[key]

    def link_down(self, host: str) -> None:
        """Cut `host` off the physical network (both directions) with drop flows on `phy`."""
        cookie = self._link_cookie(host)
        self.main.ofctl("add-flows", self.phy_bridge, "-", input=(
            f"cookie={cookie:#x},priority=1000,in_port={host},actions=drop\n"
            f"cookie={cookie:#x},priority=1000,dl_dst={self.hosts[host].mac},actions=drop\n"))
        self.main.flush_datapath()

    def link_up(self, host: str) -> None:
        self.main.ofctl("del-flows", self.phy_bridge, f"cookie={self._link_cookie(host):#x}/-1")
        self.main.flush_datapath()

    def _link_cookie(self, host: str) -> int:
        return 0x11C0000 + list(self.hosts).index(host)

    def pids(self) -> list[int]:
        """Every daemon and agent pid this network started and still tracks."""
        pids = self.main.daemon_pids()
        for host in self.hosts.values():
            pids += host.daemon_pids() + [a.pid for a in host.agents if a.proc is not None]
        return pids

    def destroy(self) -> None:
        """Stop agents, then every daemon in parallel, all by pid. Safe to call twice."""
        for host in self.hosts.values():
            host.stop_agents()
        sims: list[OvsSim] = [*self.hosts.values(), self.main]
        for sim in sims:
            sim.disconnect()
        terminate(pid for sim in sims for pid in sim.pids.values())
        for sim in sims:
            sim.pids.clear()


class _MainSim(OvsSim):
    def __init__(self, net: SimNetwork) -> None:
        super().__init__("main", os.path.join(net.basedir, "main"), net.template_db)
        self.phy_bridge = net.phy_bridge

    def _initial_config(self) -> list[str]:
        return ["--", "add-br", self.phy_bridge]
