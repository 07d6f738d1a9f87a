"""A sandbox of real hosts: network namespaces, userspace OVS, Geneve over an underlay bridge, real etcd.

Layout (name prefix `tn`, N hosts):

    root ns:  etcd on 127.0.0.1:<free port>, netns_relay (listens in tn-ul on 172.31.0.254:2379)
    tn-ul:    Linux bridge tn-ul 172.31.0.254/24, veth tn-hv<i> per host
    tn-hv<i>: eth0 (peer of tn-hv<i>) owned by OVS br-phy; tunnel IP 172.31.0.<i+1>/24 on br-phy;
              ovsdb-server + ovs-vswitchd (netdev datapath) + the tuplenet agent; br-int pre-created
    tn-<vm>:  eth0 (MTU 1400, tx offload off), peer tn-<vm> in its host's ns, a br-int port with iface-id

Why etcd sits in the root namespace behind a relay: tests and tpctl in the root namespace talk to it on
loopback exactly as to any test etcd, the root namespace gets no address, link or route, and agents reach it
over the underlay like a real etcd node on the physical network (cutting a host's underlay link cuts its
etcd too).

Everything created is written to <workdir>/state.json *before* it is created, so `down` works from another
process and after a failed or interrupted `up`. Daemons are stopped by pid (guarded against pid reuse by
their command line mentioning our workdir) and every process left inside our namespaces is killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import netns_etcd as ne
from . import netns_hosts as nh
from .netns_util import (
    SandboxError,
    check_name,
    kill_netns_pids,
    netns_exists,
    owned_alive,
    read_pidfile,
    run,
    stop_owned,
)
from .procs import wait_for

__all__ = ["NetnsSandbox", "SandboxError"]

DEFAULT_WORKDIR = "/tmp/tuplenet-sandbox"
UNDERLAY = "172.31.0"  # /24; host hv<i> gets .<i+1>, the etcd relay .254
RELAY_IP = f"{UNDERLAY}.254"
RELAY_PORT = 2379
VM_MTU = 1400  # 1500 underlay minus Geneve (62 bytes with TupleNet's 8-byte option), with margin
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
DEFAULT_AGENT_CMD = (sys.executable, "-m", "tuplenet.agent.main")
RESERVED = {"ul", "etcd", "root"}


class NetnsSandbox:
    """Hosts as namespaces with their own OVS and agent, VMs as namespaces on br-int; see the module doc."""

    def __init__(self, workdir: str = DEFAULT_WORKDIR, name_prefix: str = "tn",
                 agent_cmd: Sequence[str] | None = None, agent_env: Mapping[str, str] | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.workdir = os.path.abspath(workdir)
        if len(os.path.join(self.workdir, "hv250", "ovs-vswitchd.4194304.ctl")) > 107:
            raise SandboxError(f"workdir {self.workdir} is too long for the unix sockets OVS creates in it")
        self.prefix = check_name(name_prefix, "name prefix")
        if len(self.prefix) > 8:
            raise SandboxError("name prefix longer than 8 characters leaves no room in 15-byte link names")
        self.agent_cmd = list(agent_cmd) if agent_cmd else None
        self.agent_env = dict(agent_env or {})
        self.log = log or (lambda _msg: None)
        self._mutex = threading.RLock()  # guards self.state between worker threads
        self._op = threading.RLock()  # one mutating operation at a time (held across worker threads)
        self._lock_fd: int | None = None
        self._lock_depth = 0
        self.state: dict[str, Any] = self._load()

    # ----------------------------------------------------------------- state
    @property
    def state_file(self) -> str:
        return os.path.join(self.workdir, "state.json")

    def _load(self) -> dict[str, Any]:
        try:
            with open(self.state_file) as f:
                st = json.load(f)
        except FileNotFoundError:
            return self._fresh()
        except ValueError as exc:
            raise SandboxError(f"{self.state_file} is damaged ({exc}); remove what it lists by hand") from exc
        if st.get("prefix") != self.prefix:
            raise SandboxError(f"{self.state_file} belongs to prefix {st.get('prefix')!r}, "
                               f"not {self.prefix!r}")
        return st

    def _fresh(self) -> dict[str, Any]:
        return {"version": 1, "prefix": self.prefix, "workdir": self.workdir, "created_workdir": False,
                "netns": [], "netns_ino": {}, "hosts": {}, "vms": {}, "etcd": {}, "relay": {}, "agent": {},
                "complete": False}

    def _save(self) -> None:
        with self._mutex:
            tmp = self.state_file + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.state, f, indent=1, sort_keys=True)
            os.replace(tmp, self.state_file)

    def _record_netns(self, name: str) -> None:
        with self._mutex:
            if name not in self.state["netns"]:
                self.state["netns"].append(name)
            self._save()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise mutating calls, also across processes (flock on the workdir), and re-read the state."""
        with self._op:
            if self._lock_depth == 0:
                created = not os.path.isdir(self.workdir)
                os.makedirs(self.workdir, exist_ok=True)
                self._lock_fd = os.open(self.workdir, os.O_RDONLY)
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
                self.state = self._load()
                self.state["created_workdir"] = self.state["created_workdir"] or created
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0 and self._lock_fd is not None:
                    os.close(self._lock_fd)
                    self._lock_fd = None

    # ----------------------------------------------------------------- names and environments
    def ns(self, target: str) -> str:
        """Namespace name of a target: "ul", "hv<i>" or a VM name."""
        if target == "ul":
            return f"{self.prefix}-ul"
        if target not in self.state["hosts"] and target not in self.state["vms"] and self._lock_depth == 0:
            self.state = self._load()  # added by another process (e.g. the CLI) since we last looked
        if target in self.state["hosts"]:
            return self.state["hosts"][target]["netns"]
        if target in self.state["vms"]:
            return self.state["vms"][target]["netns"]
        raise SandboxError(f"unknown target {target!r} (hosts: {sorted(self.state['hosts'])}, "
                           f"vms: {sorted(self.state['vms'])})")

    def host_dir(self, host: str) -> str:
        return os.path.join(self.workdir, host)

    def ovs_env(self, host: str) -> dict[str, str]:
        d = self.host_dir(host)
        return {"OVS_RUNDIR": d, "OVS_DBDIR": d, "OVS_LOGDIR": d, "OVS_SYSCONFDIR": d}

    def command(self, target: str, cmd: Sequence[str] | str) -> tuple[list[str], dict[str, str]]:
        """argv and environment running `cmd` inside `target` (a string goes through `sh -c`)."""
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        ns, env = self.ns(target), dict(os.environ)
        if target in self.state["hosts"]:
            env.update(self.ovs_env(target))
        return ["ip", "netns", "exec", ns, *argv], env

    def exec(self, target: str, cmd: Sequence[str] | str, check: bool = True, timeout: float = 60.0,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `cmd` inside `target` ("hv1", a VM name, "ul") and capture its text output."""
        argv, env = self.command(target, cmd)
        return run(argv, check=check, timeout=timeout, input=input, env=env)

    def spawn(self, target: str, cmd: Sequence[str] | str,
              logfile: str | None = None) -> subprocess.Popen[bytes]:
        """Start a background process inside `target`; `down`/`del_vm` kill it with the namespace."""
        argv, env = self.command(target, cmd)
        out = open(logfile, "ab") if logfile else subprocess.DEVNULL  # the child keeps its own copy
        try:
            return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if logfile:
                out.close()  # type: ignore[union-attr]

    def ovs(self, host: str, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 30.0) -> str:
        """An OVS tool inside `host` with its rundir, e.g. ovs("hv1", "ovs-ofctl", "dump-flows", "br-int").
        A first argument not starting with "ovs" means ovs-vsctl."""
        self._host(host)
        argv = list(args) if args and args[0].startswith("ovs") else ["ovs-vsctl", *args]
        return self.exec(host, argv, check=check, timeout=timeout, input=input).stdout

    def ofport(self, host: str, port: str) -> int:
        """OpenFlow port number of `port` on `host`, once OVS has assigned one."""
        def get() -> int:
            n = int(self.ovs(host, "get", "Interface", port, "ofport").strip() or 0)
            return n if n > 0 else 0
        return wait_for(get, timeout=10, what=f"ofport of {port} on {host}")

    # ----------------------------------------------------------------- etcd
    @property
    def etcd_endpoint(self) -> str:
        """etcd as seen from the root namespace (tests, tpctl)."""
        ep = self.state["etcd"].get("endpoint")
        if not ep:
            raise SandboxError("no etcd in this sandbox (up(etcd=...) not run)")
        return ep

    @property
    def agent_etcd_endpoint(self) -> str:
        """etcd as seen from host namespaces: the relay on the underlay bridge."""
        return f"{RELAY_IP}:{RELAY_PORT}"

    def etcd_stop(self, kill: bool = False) -> None:
        """Stop the sandbox's own etcd (agents go headless); etcd_start brings it back with its data."""
        ne.stop_etcd(self, kill)

    def etcd_start(self) -> None:
        if self.state["etcd"].get("owned") and not ne.etcd_alive(self):
            ne.start_etcd(self)

    # ----------------------------------------------------------------- up / down
    def up(self, hosts: int = 3, etcd: bool | str = True, agents: bool = True,
           prefix: str = "/tuplenet/", grpc_proxy: bool = False) -> dict[str, Any]:
        """Create, complete or repair the sandbox; on a healthy one it changes nothing.
        `etcd`: True (own etcd), False (none) or an external root-namespace HOST:PORT. `grpc_proxy`: agents
        reach etcd through an `etcd grpc-proxy` (the fan-out tier of docs/scaling.md)."""
        if not 1 <= hosts <= 250:
            raise SandboxError("hosts must be 1..250")
        if agents and etcd is False:
            raise SandboxError("agents need etcd: use etcd=True or an endpoint")
        t0 = time.monotonic()
        with self._locked():
            self.state["complete"] = False
            old = self.state["agent"]
            self.state["agent"] = {"cmd": self.agent_cmd or old.get("cmd") or list(DEFAULT_AGENT_CMD),
                                   "prefix": prefix, "env": self.agent_env or old.get("env", {})}
            self._save()
            nh.ensure_underlay(self)
            names = [f"hv{i}" for i in range(1, hosts + 1)]
            with ThreadPoolExecutor(max_workers=min(4, hosts)) as pool:  # OVS start-up is mostly waiting
                errors = [f.exception() for f in [pool.submit(nh.ensure_host, self, h) for h in names]]
            for err in errors:
                if err is not None:
                    raise err
            if etcd is not False:
                ne.ensure_etcd(self, etcd)
                if grpc_proxy:
                    ne.ensure_proxy(self)
                ne.ensure_relay(self)
                ne.wait_etcd_from(self, names[0])
            if agents:
                for h in names:
                    if not self.agent_alive(h):
                        nh.start_agent(self, h)
            self.state["complete"] = True
            self._save()
        self.log(f"up         {hosts} hosts in {time.monotonic() - t0:.2f}s")
        return self.status()

    def down(self, keep_files: bool = False) -> None:
        """Remove every namespace, process and file this sandbox created; safe after a failed up and twice."""
        if not os.path.isdir(self.workdir):
            return
        with self._locked():
            st = self.state
            for h in st["hosts"].values():
                stop_owned(h.get("agent_pid"), h["dir"] + "/")
            ours = [ns for ns in reversed(st["netns"]) if nh.is_ours(self, ns)]  # VMs, hosts, underlay
            for ns in ours:
                kill_netns_pids(ns)
            stop_owned(st["relay"].get("pid"), self.workdir + "/")
            ne.stop_proxy(self)
            ne.stop_etcd(self)
            for ns in list(reversed(st["netns"])):
                nh.remove_netns(self, ns)
            if keep_files:
                self.state = self._fresh()
                self._save()
            elif st["created_workdir"]:
                shutil.rmtree(self.workdir, ignore_errors=True)
            else:
                for name in [*st["hosts"], "etcd", "relay.log", "relay.ready", "state.json"]:
                    path = os.path.join(self.workdir, name)
                    if os.path.isdir(path):
                        shutil.rmtree(path, ignore_errors=True)
                    elif os.path.exists(path):
                        os.unlink(path)
        self.state = self._fresh()

    # ----------------------------------------------------------------- agents
    def agent_start(self, host: str, env: Mapping[str, str] | None = None) -> int:
        """Start the agent on `host` unless it runs; `env` (e.g. GATEWAY=1) sticks to the host on restarts."""
        with self._locked():
            h = self._host(host)
            if self.agent_alive(host):
                return int(h["agent_pid"])
            return nh.start_agent(self, host, env)

    def agent_stop(self, host: str, timeout: float = 10.0) -> None:
        """SIGTERM; the agent is expected to leave flows and ports in place (headless data plane)."""
        stop_owned(self._host(host).get("agent_pid"), self.host_dir(host) + "/", timeout=timeout)

    def agent_kill(self, host: str) -> None:
        stop_owned(self._host(host).get("agent_pid"), self.host_dir(host) + "/", sig=signal.SIGKILL)

    def agent_restart(self, host: str) -> int:
        self.agent_stop(host)
        return self.agent_start(host)

    def wait_agents(self, hosts: Sequence[str] | None = None, timeout: float = 30.0) -> None:
        """Until the agents of `hosts` (default: all) have registered their chassis in etcd; raises
        SandboxError at once if one of them exits, TimeoutError after `timeout`."""
        ne.wait_agents(self, list(hosts or self.state["hosts"]), timeout)

    def agent_alive(self, host: str) -> bool:
        return owned_alive(self._host(host).get("agent_pid"), self.host_dir(host) + "/")

    def _host(self, host: str) -> dict[str, Any]:
        if host not in self.state["hosts"] and self._lock_depth == 0:
            self.state = self._load()
        try:
            return self.state["hosts"][host]
        except KeyError:
            raise SandboxError(f"unknown host {host!r}") from None

    # ----------------------------------------------------------------- VMs
    def add_vm(self, name: str, host: str = "hv1", ip: str = "10.10.1.2/24", mac: str | None = None,
               gateway: str | None = None, iface_id: str | None = None,
               ready_wait: float | None = None) -> dict[str, Any]:
        """A VM namespace with eth0 (MTU 1400, tx offload off) whose peer is a br-int port with iface-id.
        The MAC defaults to f2:01 followed by the IPv4 address bytes. eth0 comes up once the agent marks
        the port ready (at most `ready_wait` s; default 10 s if the host's agent runs, else no wait)."""
        with self._locked():
            return nh.add_vm(self, name, host, ip, mac, gateway, iface_id or name, ready_wait)

    def del_vm(self, name: str) -> None:
        """Remove the VM's namespace (and whatever runs in it) and its br-int port."""
        with self._locked():
            nh.del_vm(self, name)

    # ----------------------------------------------------------------- status
    def status(self) -> dict[str, Any]:
        """What exists and what runs, read fresh from state.json and the system."""
        if self._lock_depth == 0:
            self.state = self._load()
        st = self.state
        hosts = {}
        for name, h in st["hosts"].items():
            pids = {d: read_pidfile(os.path.join(h["dir"], f"{d}.pid"))
                    for d in ("ovsdb-server", "ovs-vswitchd")}
            hosts[name] = {"netns": h["netns"], "netns_exists": netns_exists(h["netns"]),
                           "tunnel_ip": h["tunnel_ip"], "ready": h.get("ready", False),
                           "ovsdb_server": owned_alive(pids["ovsdb-server"], h["dir"] + "/"),
                           "ovs_vswitchd": owned_alive(pids["ovs-vswitchd"], h["dir"] + "/"),
                           "agent": self.agent_alive(name), "agent_pid": h.get("agent_pid")}
        vms = {n: {**v, "netns_exists": netns_exists(v["netns"])} for n, v in st["vms"].items()}
        e, relay = st["etcd"], st["relay"].get("pid")
        etcd = {"endpoint": e.get("endpoint"), "agent_endpoint": self.agent_etcd_endpoint if e else None,
                "owned": e.get("owned", False), "pid": e.get("pid"), "alive": ne.etcd_alive(self),
                "relay_pid": relay, "relay_alive": owned_alive(relay, self.workdir + "/"),
                "grpc_proxy": (st.get("proxy") or {}).get("endpoint"), "grpc_proxy_alive": ne.proxy_alive(self)}
        healthy = bool(hosts) and all(h["ovsdb_server"] and h["ovs_vswitchd"] and h["netns_exists"]
                                      for h in hosts.values())
        return {"workdir": self.workdir, "prefix": self.prefix, "exists": os.path.exists(self.state_file),
                "complete": st["complete"],
                "healthy": healthy, "underlay": f"{UNDERLAY}.0/24", "hosts": hosts, "vms": vms, "etcd": etcd}


def default_mac(ip: str) -> str:
    """f2:01:<ipv4 bytes>: locally administered, unicast, and readable in dumps."""
    addr = ipaddress.ip_interface(ip).ip
    return "f2:01:" + ":".join(f"{b:02x}" for b in addr.packed)
