"""etcd for the namespace sandbox: a root-namespace EtcdServer plus a relay so host namespaces reach it.

Why this shape: tests and tpctl in the root namespace use etcd on loopback like any test etcd; the root
namespace gets no address, route or link; agents reach etcd at 172.31.0.254:2379 over the underlay, as they
would a real etcd node, so cutting a host's underlay link also cuts it off from etcd.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from typing import TYPE_CHECKING

from .etcd import EtcdServer
from .etcd_proxy import GrpcProxy
from .netns_util import SandboxError, owned_alive, stop_owned
from .procs import wait_for

if TYPE_CHECKING:
    from .netns import NetnsSandbox


def etcd_alive(sb: NetnsSandbox) -> bool:
    """Our own etcd runs (an external one is assumed to)."""
    e = sb.state["etcd"]
    if not e:
        return False
    return not e.get("owned") or owned_alive(e.get("pid"), e["dir"] + "/")


def ensure_etcd(sb: NetnsSandbox, etcd: bool | str) -> None:
    e = sb.state["etcd"]
    if isinstance(etcd, str):
        if e.get("owned"):
            raise SandboxError("sandbox already runs its own etcd; down first to use an external one")
        sb.state["etcd"] = {"owned": False, "endpoint": etcd}
        sb._save()
        return
    if e and not e.get("owned"):
        raise SandboxError(f"sandbox uses external etcd {e['endpoint']}; down first to run its own")
    if e.get("owned"):
        if not etcd_alive(sb):
            start_etcd(sb)  # same ports and data as before
        return
    srv = EtcdServer(os.path.join(sb.workdir, "etcd"))
    sb.state["etcd"] = {"owned": True, "dir": srv.basedir, "client_port": srv.client_port,
                        "peer_port": srv.peer_port, "endpoint": srv.endpoint, "pid": None}
    sb._save()
    start_etcd(sb)


def start_etcd(sb: NetnsSandbox) -> None:
    e = sb.state["etcd"]
    srv = EtcdServer(e["dir"])
    srv.client_port, srv.peer_port = e["client_port"], e["peer_port"]
    t0 = time.monotonic()
    try:
        srv.start()
    finally:  # a start that timed out still leaves a process to stop
        e["pid"] = srv.proc.pid if srv.proc else None
        sb._save()
    sb.log(f"etcd       {srv.endpoint} (root ns) pid {e['pid']} {time.monotonic() - t0:.2f}s")


def stop_etcd(sb: NetnsSandbox, kill: bool = False) -> None:
    e = sb.state["etcd"]
    if e.get("owned"):
        stop_owned(e.get("pid"), e["dir"] + "/", sig=9 if kill else 15)


def ensure_proxy(sb: NetnsSandbox) -> None:
    """An `etcd grpc-proxy` in the root namespace in front of etcd; the relay then forwards to it, so agents
    reach etcd through the proxy as they would through a rack's proxy (gRPC only: no JSON gateway there)."""
    p = sb.state.setdefault("proxy", {})
    if p and owned_alive(p.get("pid"), p["dir"] + "/"):
        return
    px = GrpcProxy(p.get("dir") or os.path.join(sb.workdir, "grpc-proxy"), [sb.etcd_endpoint],
                   port=p.get("port"))
    sb.state["proxy"] = {"dir": px.basedir, "port": px.port, "endpoint": px.endpoint, "pid": None}
    sb._save()
    t0 = time.monotonic()
    try:
        px.start()
    finally:
        sb.state["proxy"]["pid"] = px.pid
        sb._save()
    sb.log(f"grpc-proxy {px.endpoint} (root ns) -> {sb.etcd_endpoint} pid {px.pid} "
           f"{time.monotonic() - t0:.2f}s")


def proxy_alive(sb: NetnsSandbox) -> bool:
    p = sb.state.get("proxy") or {}
    return bool(p) and owned_alive(p.get("pid"), p["dir"] + "/")


def stop_proxy(sb: NetnsSandbox) -> None:
    p = sb.state.get("proxy") or {}
    if p:
        stop_owned(p.get("pid"), p["dir"] + "/")


def relay_target(sb: NetnsSandbox) -> str:
    """What the agents' relay forwards to: the grpc-proxy if the sandbox runs one, else etcd."""
    p = sb.state.get("proxy") or {}
    return p.get("endpoint") or sb.etcd_endpoint


def ensure_relay(sb: NetnsSandbox) -> None:
    """The relay listening in the underlay namespace and forwarding to etcd's root-namespace endpoint (or to
    the sandbox's grpc-proxy)."""
    r, ep, marker = sb.state["relay"], relay_target(sb), sb.workdir + "/"
    if r.get("connect") == ep and owned_alive(r.get("pid"), marker):
        return
    stop_owned(r.get("pid"), marker)
    ready = os.path.join(sb.workdir, "relay.ready")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(ready)
    argv = [sys.executable, "-m", "tuplenet.sandbox.netns_relay", "--netns", sb.ns("ul"),
            "--listen", sb.agent_etcd_endpoint, "--connect", ep, "--ready", ready, "--tag", marker]
    with open(os.path.join(sb.workdir, "relay.log"), "ab") as logf:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
    sb.state["relay"] = {"pid": proc.pid, "connect": ep, "listen": sb.agent_etcd_endpoint}
    sb._save()

    def ready_or_dead() -> bool:
        if proc.poll() is not None:
            raise SandboxError(f"etcd relay exited {proc.returncode}; see {sb.workdir}/relay.log")
        return os.path.exists(ready)
    wait_for(ready_or_dead, timeout=10, what="etcd relay")
    sb.log(f"relay      {sb.agent_etcd_endpoint} in {sb.ns('ul')} -> {ep}")


def wait_etcd_from(sb: NetnsSandbox, host: str, timeout: float = 15.0) -> None:
    """Prove the whole path host → br-phy → underlay → relay → etcd answers."""
    probe = ("import json,sys,urllib.request as u;"
             f"r=u.urlopen('http://{sb.agent_etcd_endpoint}/health',timeout=2);"
             "sys.exit(0 if json.load(r).get('health')=='true' else 1)")
    wait_for(lambda: sb.exec(host, [sys.executable, "-c", probe], check=False).returncode == 0,
             timeout=timeout, interval=0.1, what=f"etcd reachable from {host}")


def registered_chassis(sb: NetnsSandbox) -> dict[str, str]:
    """Chassis records (`<prefix>entity_view/chassis/<id>` → value) through etcd's v3 JSON gateway, so the
    sandbox needs no etcd client library."""
    prefix = (sb.state["agent"].get("prefix") or "/tuplenet/") + "entity_view/chassis/"
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    body = json.dumps({"key": base64.b64encode(prefix.encode()).decode(),
                       "range_end": base64.b64encode(end.encode()).decode()}).encode()
    req = urllib.request.Request(f"http://{sb.etcd_endpoint}/v3/kv/range", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        kvs = json.load(resp).get("kvs", [])
    return {base64.b64decode(kv["key"]).decode()[len(prefix):]: base64.b64decode(kv.get("value", "")).decode()
            for kv in kvs}


def _tail(path: str, lines: int = 15) -> str:
    """The end of a log file (the sandbox's directory may be gone by the time someone reads a failure)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as exc:
        return f"({exc})"


def wait_agents(sb: NetnsSandbox, hosts: list[str], timeout: float = 30.0) -> None:
    """Until every agent in `hosts` has registered its chassis and, if it is TupleNet's agent, finished its
    start-up (its status file names its pid); an agent that dies meanwhile fails at once."""
    deadline = time.monotonic() + timeout
    missing = set(hosts)
    while True:
        for h in hosts:
            if not sb.agent_alive(h):
                log = os.path.join(sb.host_dir(h), "log")
                raise SandboxError(f"agent on {h} exited; see {log}/agent.out and {log}/tuplenet.log; last lines:\n"
                                   + _tail(os.path.join(log, "agent.out")))
        with contextlib.suppress(OSError, ValueError):  # etcd restarting: try again
            missing = set(hosts) - set(registered_chassis(sb))
            missing |= {h for h in hosts if not _status_written(sb, h)}
            if not missing:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"agents on {', '.join(sorted(missing))} did not register or finish starting "
                               f"within {timeout:.0f}s")
        time.sleep(0.1)


def _status_written(sb: NetnsSandbox, host: str) -> bool:
    """TupleNet's agent writes its status file last in its start-up; its chassis registration goes out
    earlier, in the background. A stand-in agent (another command) writes none."""
    from ..agent.status import read_status
    from .netns_hosts import agent_rundir, runs_tuplenet_agent

    if not runs_tuplenet_agent(sb):
        return True
    return read_status(agent_rundir(sb, host)).get("pid") == sb.state["hosts"][host].get("agent_pid")
