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
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .agentproc import AgentProcess
from .pcap import PcapFollower
from .procs import pid_alive, wait_for

SCHEMA = os.environ.get("OVS_SCHEMA", "/usr/share/openvswitch/vswitch.ovsschema")
PHY_BRIDGE = "phy"        # the L2 "physical network" on main
UPLINK_BRIDGE = "br0"     # on every host: owns the tunnel IP, as in 0.3's harness
UPLINK_PORT = "br0-phy"   # the host end of its link to main
POLL = 0.001              # pcap delivery takes about 1 ms, so poll finely
_DAEMONS = ("ovsdb-server", "ovs-vswitchd")


class SimError(RuntimeError):
    """An OVS command against a sim failed; the message carries the command and its stderr."""


def _run(argv: Sequence[str], env: Mapping[str, str], input: str | None = None) -> str:
    proc = subprocess.run(list(argv), env=dict(env), input=input, capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0:
        raise SimError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def host_mac(ip: str) -> str:
    """A fixed, locally administered MAC for a host's uplink bridge, so peers know it without asking."""
    return "0a:00:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


def _sort_key(line: str) -> tuple[int, int, str]:
    table = re.search(r"\btable=(\d+)", line)
    prio = re.search(r"\bpriority=(\d+)", line)
    return (int(table.group(1)) if table else 0, -int(prio.group(1)) if prio else -32768, line)


def process_running(pid: int) -> bool:
    """True while `pid` runs; a zombie counts as gone.

    Detached daemons are re-parented to PID 1, which on our VMs reaps only every couple of seconds, so a
    plain kill(pid, 0) would keep reporting an exited daemon as alive.
    """
    if not pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def terminate(pids: Iterable[int], timeout: float = 5.0) -> None:
    """SIGTERM every pid at once, then wait for each (SIGKILL after `timeout`): parallel shutdown."""
    pids = list(pids)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in pids:
        while process_running(pid):
            if time.monotonic() > deadline:
                _signal(pid, signal.SIGKILL)
            time.sleep(POLL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class OvsSim:
    """One private ovsdb-server + ovs-vswitchd pair living in `self.dir`."""

    def __init__(self, name: str, directory: str, template_db: str) -> None:
        self.name = name
        self.dir = self.rundir = os.path.abspath(directory)
        self.db_file = os.path.join(self.dir, "conf.db")
        self.db_sock = os.path.join(self.dir, "db.sock")
        self.template_db = template_db
        self.pids: dict[str, int] = {}
        self._ctl: Any = None
        self.env = {**os.environ, "OVS_RUNDIR": self.dir, "OVS_DBDIR": self.dir, "OVS_LOGDIR": self.dir,
                    "OVS_SYSCONFDIR": self.dir}

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start whichever daemon is not running; a fresh directory gets a new db and its first config."""
        os.makedirs(self.dir, exist_ok=True)
        fresh = not os.path.exists(self.db_file)
        if fresh:
            shutil.copyfile(self.template_db, self.db_file)
        if not self._alive("ovsdb-server"):
            self._daemon("ovsdb-server", f"--remote=punix:{self.db_sock}", self.db_file)
        if fresh:
            self.vsctl("init", *self._initial_config(), wait=False)
        if not self._alive("ovs-vswitchd"):
            self._daemon("ovs-vswitchd", "--enable-dummy=system", "--disable-system-route",
                         f"unix:{self.db_sock}")
            self._after_vswitchd_start()

    def stop(self, ovsdb: bool = True) -> None:
        """Stop ovs-vswitchd (and ovsdb-server unless `ovsdb=False`) by pid; the db file stays."""
        self._close_ctl()
        names = _DAEMONS if ovsdb else ("ovs-vswitchd",)
        terminate([self.pids.pop(n) for n in reversed(names) if n in self.pids])

    def restart(self, ovsdb: bool = True) -> None:
        self.stop(ovsdb)
        self.start()

    def daemon_pids(self) -> list[int]:
        return list(self.pids.values())

    def _alive(self, daemon: str) -> bool:
        pid = self.pids.get(daemon)
        return pid is not None and process_running(pid)

    def _daemon(self, daemon: str, *args: str) -> None:
        base = os.path.join(self.dir, daemon)
        _run([daemon, "--detach", "--no-chdir", f"--pidfile={base}.pid", f"--log-file={base}.log",
              "-vconsole:off", "-vsyslog:off", *args], self.env)
        with open(f"{base}.pid") as f:
            self.pids[daemon] = int(f.read().strip())

    def _initial_config(self) -> list[str]:
        """ovs-vsctl commands (after `init`) written to the db before ovs-vswitchd first starts."""
        return []

    def _after_vswitchd_start(self) -> None:
        """Re-apply the run-time state ovs-vswitchd loses on a restart (addresses, routes, neighbours)."""

    # -- tools -------------------------------------------------------------------------------------

    def vsctl(self, *args: str, wait: bool = True) -> str:
        """ovs-vsctl against this sim's db; by default waits until ovs-vswitchd applied the change."""
        opts = [f"--db=unix:{self.db_sock}", "--timeout=10"] + ([] if wait else ["--no-wait"])
        return _run(["ovs-vsctl", *opts, *args], self.env)

    def ofctl(self, *args: str, input: str | None = None) -> str:
        return _run(["ovs-ofctl", "--timeout=10", *args], self.env, input=input)

    def appctl(self, *args: str, target: str | None = None) -> str:
        """ovs-appctl; ovs-vswitchd commands go over a persistent unixctl connection (0.4 ms, not 5 ms)."""
        if target is None and (client := self._unixctl()) is not None:
            err, error, result = client.transact(args[0], list(args[1:]))
            if not err:
                if error is not None:
                    raise SimError(f"{self.name}: ovs-appctl {' '.join(args)}: {str(error).strip()}")
                return result
            self._close_ctl()
        return _run(["ovs-appctl", "--timeout=10", *(["-t", target] if target else []), *args], self.env)

    def _unixctl(self) -> Any:
        if self._ctl is None and "ovs-vswitchd" in self.pids:
            from ovs.unixctl.client import UnixctlClient

            path = os.path.join(self.dir, f"ovs-vswitchd.{self.pids['ovs-vswitchd']}.ctl")
            err, client = UnixctlClient.create(path)
            self._ctl = None if err else client
        return self._ctl

    def _close_ctl(self) -> None:
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None

    def dump_flows(self, table: int | str | None = None, cookie: int | None = None, bridge: str = "br-int",
                   names: bool = False) -> list[str]:
        """Flows as OpenFlow 1.5 text without statistics, one per line, sorted by table, -priority, text.

        Port names only with `names=True`; `cookie` matches exactly (cookie=C/-1).
        """
        filt = ([f"table={table}"] if table is not None else []) + ([f"cookie={cookie:#x}/-1"]
                                                                  if cookie is not None else [])
        out = self.ofctl("-O", "OpenFlow15", "--no-stats", "--names" if names else "--no-names",
                         "dump-flows", bridge, *([",".join(filt)] if filt else []))
        lines = [ln.strip() for ln in out.splitlines()]
        return sorted((ln for ln in lines if ln and " reply " not in ln), key=_sort_key)

    def ofport(self, iface: str) -> int:
        """The OpenFlow port number of `iface` (-1 while ovs-vswitchd has not assigned one)."""
        value = self.vsctl("get", "Interface", iface, "ofport", wait=False).strip()
        return int(value) if value not in ("", "[]") else -1


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
        return wait_for(lambda: max(self.ofport(name), 0), timeout=5.0, what=f"ofport of {name}")

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
        """Poll until `port` has received at least `count` frames in total; return them all."""
        f = self._follower(port)
        wait_for(lambda: f.count() >= count, timeout, POLL, f"{count} frame(s) to {self.name}:{port}")
        return f.frames()

    def wait_tx_after(self, port: str, mark: int, count: int = 1, timeout: float = 5.0) -> list[bytes]:
        """Poll until `count` frames arrived after `mark`; return the frames after the mark."""
        f = self._follower(port)
        wait_for(lambda: f.count() >= mark + count, timeout, POLL,
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
            _run(["ovsdb-tool", "create", self.template_db, SCHEMA], os.environ)
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

    def link_up(self, host: str) -> None:
        self.main.ofctl("del-flows", self.phy_bridge, f"cookie={self._link_cookie(host):#x}/-1")

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
            sim._close_ctl()
        terminate(pid for sim in sims for pid in sim.pids.values())
        for sim in sims:
            sim.pids.clear()


class _MainSim(OvsSim):
    def __init__(self, net: SimNetwork) -> None:
        super().__init__("main", os.path.join(net.basedir, "main"), net.template_db)
        self.phy_bridge = net.phy_bridge

    def _initial_config(self) -> list[str]:
        return ["--", "add-br", self.phy_bridge]
