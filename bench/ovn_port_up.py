"""OVN 23.03 port-up in bench_port_up's window, on the same simulated hosts (issue 9: "OVN in the same run").

Central: private NB and SB ovsdb-servers and ovn-northd (unix sockets in a temp dir). Hosts: SimNetwork's hv1-3
(real ovs-vswitchd, dummy datapath, real Geneve), each running ovn-controller against its own db.sock instead
of our agent. Topology as bench_port_up.topology: one switch, `existing` ports as real dummy OVS ports on the
owner hv2 (or, `placement` "remote", on hv3, with one VIF "owner0" on hv2), optionally a distributed router on
the switch (its port counts as one of them). OVN computes flows only for datapaths with a local port, so the
peer hv1 also holds one VIF on the switch ("peer0"): without it hv1 would never get a flow to reach the new
port (ours installs it there without any local port).

Window per sample, as ours: the clock starts, then two threads at once make the NB write (insert the
Logical_Switch_Port with "MAC IP" and add it to the switch's `ports`, one transact over a persistent OVSDB
connection, the equivalent of our persistent etcd client's put) and plug the interface on the owner with our
exact ovs-vsctl command. It stops when the owner has set `external_ids:ovn-installed="true"` on the
interface (OVN's statement that all the port's flows are in; timed by an OVSDB "wait" started before the
clock) and the peer has its flow to reach the port: the remote-output flow matching the port's tunnel key
(reg15) and the switch's datapath key (metadata) that outputs to the tunnel. Its install instant comes from
the flow's age, as FlowWatch.installed_at does. The remote-output table is not assumed: it is found at setup
from hv2's own flow to reach peer0 (reg15/metadata of peer0, output to the tunnel port towards hv1).

Result keys are bench_port_up.run's; "owner" is the ovn-installed instant (= "mark"). As a check on that
statement, "owner_flows" is the install instant of the last flow that is new on the owner after the window
(a full dump before and after, flows told apart by table, priority and match), and "flows_after_mark" counts
the samples where one went in later than ovn-installed.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import proc_cpu  # noqa: E402
from bench_dir import bench_dir  # noqa: E402
from bench_port_up import BYSTANDER, HOSTS, LRNAME, LSNAME, NEW_OFPORT, OWNER, PEER, POLL, pct  # noqa: E402
from scale_topology import mac  # noqa: E402
from tuplenet.agent.openflow import codec as oc  # noqa: E402
from tuplenet.agent.openflow.conn import OpenFlowConnection  # noqa: E402
from tuplenet.agent.openflow.oxm import decode_fields  # noqa: E402
from tuplenet.cni.ovsdb import Ovsdb  # noqa: E402
from tuplenet.sandbox.ovsd import run_tool, terminate  # noqa: E402
from tuplenet.sandbox.procs import wait_for  # noqa: E402
from tuplenet.sandbox.sim import SimHost, SimNetwork  # noqa: E402

OVN_SHARE = os.environ.get("OVN_SHARE", "/usr/share/ovn")
READY = "ovn-installed"
PEER_PORT, PEER_IP = "peer0", "10.1.254.2"
# placement "remote": the owner holds this VIF, so it has the switch already (a host's first port on a datapath
# makes ovn-controller fetch and compute all of it: not the steady state the 6-port owner case measures)
OWNER_PORT, OWNER_IP = "owner0", "10.1.254.3"
ALL = (1 << 64) - 1
_STATS = struct.Struct("!HBxIIH10xQ")  # ofp_flow_stats: length, table, pad, duration sec/nsec, priority, .., cookie
_MLEN = struct.Struct("!H")      # ofp_match length, 50 bytes into the entry
KEYS = ("total", "owner", "peer", "mark", "write", "plug", "ofport", "after_ofport", "owner_after_ofport",
        "owner_flows")
FlowId = tuple[int, int, bytes]  # table, priority, raw match: a flow's identity across two dumps


def ovn_env(directory: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment keeping every OVN daemon's pid, ctl socket, log and db inside `directory`."""
    return {**(base or os.environ), "OVN_RUNDIR": directory, "OVN_LOGDIR": directory, "OVN_DBDIR": directory,
            "OVN_SYSCONFDIR": directory}


def start_daemon(prog: str, directory: str, env: dict[str, str], *args: str, ctl: bool = True) -> int:
    """Start `prog` detached with pid/log (and ctl: ovn-controller has no --unixctl, its socket goes to
    $OVN_RUNDIR) files in `directory`; its pid."""
    base = os.path.join(directory, prog)
    run_tool([prog, "--detach", "--no-chdir", f"--pidfile={base}.pid", f"--log-file={base}.log",
              *([f"--unixctl={base}.ctl"] if ctl else []), "-vconsole:off", "-vsyslog:off", *args], env)
    with open(f"{base}.pid") as f:
        return int(f.read().strip())


class Db(Ovsdb):
    """A persistent OVSDB JSON-RPC connection to one named database (Ovsdb's transact is Open_vSwitch's)."""

    def __init__(self, path: str, name: str, timeout: float = 15.0) -> None:
        super().__init__(path, timeout)
        self.name = name

    def tx(self, *ops: dict[str, Any], timeout: float | None = None) -> list[dict[str, Any]]:
        result = self.call("transact", [self.name, *ops], timeout) or []
        errors = [r for r in result if isinstance(r, dict) and r.get("error")]
        if errors or len(result) < len(ops):
            raise RuntimeError(f"{self.name} transact: {errors or result}")
        return result

    def rows(self, table: str, where: list, columns: list[str]) -> list[dict[str, Any]]:
        return self.tx({"op": "select", "table": table, "where": where, "columns": columns})[0]["rows"]


class Central:
    """NB + SB ovsdb-servers and ovn-northd in `directory`; stop() ends them by pid."""

    def __init__(self, directory: str) -> None:
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.env = ovn_env(directory)
        self.nb_sock, self.sb_sock = f"{directory}/nb.sock", f"{directory}/sb.sock"
        self.pids: list[int] = []

    def start(self) -> Central:
        for db, schema in (("nb", "ovn-nb"), ("sb", "ovn-sb")):
            run_tool(["ovsdb-tool", "create", f"{self.dir}/{db}.db", f"{OVN_SHARE}/{schema}.ovsschema"], self.env)
            sub = f"{self.dir}/{db}"
            os.makedirs(sub, exist_ok=True)
            self.pids.append(start_daemon("ovsdb-server", sub, self.env, f"--remote=punix:{self.dir}/{db}.sock",
                                          f"{self.dir}/{db}.db"))
        nb = Db(self.nb_sock, "OVN_Northbound")
        try:
            if not nb.rows("NB_Global", [], ["_uuid"]):
                nb.tx({"op": "insert", "table": "NB_Global", "row": {}})
        finally:
            nb.close()
        self.pids.append(start_daemon("ovn-northd", self.dir, self.env, f"--ovnnb-db=unix:{self.nb_sock}",
                                      f"--ovnsb-db=unix:{self.sb_sock}"))
        return self

    def stop(self) -> None:
        terminate(self.pids)
        self.pids.clear()


def start_controller(host: SimHost, sb_sock: str) -> int:
    """Configure `host` as an OVN chassis (Geneve, its uplink IP, br-int) and run ovn-controller on it."""
    host.vsctl("set", "Open_vSwitch", ".", f"external_ids:ovn-remote=unix:{sb_sock}",
               "external_ids:ovn-encap-type=geneve", f"external_ids:ovn-encap-ip={host.ip}",
               "external_ids:ovn-bridge=br-int", f"external_ids:system-id={host.name}")
    d = os.path.join(host.dir, "ovn")
    os.makedirs(d, exist_ok=True)
    return start_daemon("ovn-controller", d, ovn_env(d, host.env), f"unix:{host.db_sock}", ctl=False)


def nb_topology(nb: Db, existing: int, router: bool, owner_port: bool = False) -> list[tuple[str, str]]:
    """The switch (10.1.0.0/16), optional router, `existing` VIF ports, peer0 (and owner0); [(name, ip)] of
    the existing VIFs."""
    ops: list[dict[str, Any]] = []
    lsps: list[str] = []
    n = existing
    if router:
        ip = "10.1.0.1"
        ops += [{"op": "insert", "table": "Logical_Router_Port", "uuid-name": "lrp",
                 "row": {"name": f"{LRNAME}_to_{LSNAME}", "mac": mac(ip), "networks": f"{ip}/16"}},
                {"op": "insert", "table": "Logical_Router", "row": {"name": LRNAME, "ports": ["named-uuid", "lrp"]}},
                {"op": "insert", "table": "Logical_Switch_Port", "uuid-name": "rp",
                 "row": {"name": f"{LSNAME}_to_{LRNAME}", "type": "router", "addresses": "router",
                         "options": ["map", [["router-port", f"{LRNAME}_to_{LSNAME}"]]]}}]
        lsps.append("rp")
        n -= 1
    olds = []
    for i in range(max(0, n)):
        ip = f"10.1.{1 + i // 250}.{i % 250 + 2}"
        olds.append((f"old{i}", ip))
    for i, (name, ip) in enumerate([*olds, (PEER_PORT, PEER_IP), *([(OWNER_PORT, OWNER_IP)] if owner_port else [])]):
        ops.append({"op": "insert", "table": "Logical_Switch_Port", "uuid-name": f"p{i}",
                    "row": {"name": name, "addresses": f"{mac(ip)} {ip}"}})
        lsps.append(f"p{i}")
    ops.append({"op": "insert", "table": "Logical_Switch", "row": {
        "name": LSNAME, "ports": ["set", [["named-uuid", u] for u in lsps]]}})
    nb.tx(*ops)
    return olds


def lsp_add_ops(name: str, ip: str, requested: str | None = None) -> list[dict[str, Any]]:
    """One NB transact: the new port with its addresses (and requested-chassis), added to the switch."""
    row: dict[str, Any] = {"name": name, "addresses": f"{mac(ip)} {ip}"}
    if requested:
        row["options"] = ["map", [["requested-chassis", requested]]]
    return [{"op": "insert", "table": "Logical_Switch_Port", "uuid-name": "new", "row": row},
            {"op": "mutate", "table": "Logical_Switch", "where": [["name", "==", LSNAME]],
             "mutations": [["ports", "insert", ["set", [["named-uuid", "new"]]]]]}]


def lsp_del_ops(uuid: str) -> list[dict[str, Any]]:
    """Remove the port from the switch (the non-root row goes with it)."""
    return [{"op": "mutate", "table": "Logical_Switch", "where": [["name", "==", LSNAME]],
             "mutations": [["ports", "delete", ["set", [["uuid", uuid]]]]]}]


class Binding:
    """What the SB says about a logical port: its binding's uuid (the cookie of its physical flows) and keys."""

    def __init__(self, row: dict[str, Any], dp_key: int) -> None:
        self.uuid: str = row["_uuid"][1]
        self.cookie = int(self.uuid[:8], 16)  # ovn-controller uses the uuid's first 32 bits
        self.key: int = row["tunnel_key"]
        self.dp_key = dp_key


def binding(sb: Db, name: str, dp_key: int, wait_ms: int = 0) -> Binding:
    """Port_Binding of `name`; with wait_ms the SB server holds the request until the row exists."""
    sel = {"op": "select", "table": "Port_Binding", "where": [["logical_port", "==", name]],
           "columns": ["_uuid", "tunnel_key"]}
    ops = ([{"op": "wait", "timeout": wait_ms, "table": "Port_Binding", "where": [["logical_port", "==", name]],
             "columns": ["logical_port"], "until": "==", "rows": [{"logical_port": name}]}] if wait_ms else [])
    res = sb.tx(*ops, sel, timeout=wait_ms / 1000 + 5)
    rows = res[-1]["rows"]
    if len(rows) != 1:
        raise RuntimeError(f"{name}: {len(rows)} port bindings")
    return Binding(rows[0], dp_key)


class Flows:
    """One switch seen over a persistent OpenFlow connection; flows with their install times (from their age,
    1 ms resolution, as bench_port_up.FlowWatch), so nothing needs to poll fast during the window."""

    def __init__(self, path: str) -> None:
        self.conn = OpenFlowConnection(path).start()

    def dump(self, cookie: int = 0, mask: int = ALL, table: int = oc.OFPTT_ALL) -> dict[FlowId, tuple[int, float]]:
        """{(table, priority, raw match): (cookie, perf_counter() install time)} of the flows with `cookie`
        under `mask`. The time is exact for small dumps only (it is taken once the whole reply is in)."""
        ages: list[tuple[FlowId, int, float]] = []

        def sink(body: bytes) -> None:
            off = 8
            while off + 52 <= len(body):
                length, tab, dsec, dnsec, prio, ck = _STATS.unpack_from(body, off)
                (mlen,) = _MLEN.unpack_from(body, off + 50)
                ages.append(((tab, prio, bytes(body[off + 52:off + 48 + mlen])), ck, dsec + dnsec / 1e9))
                off += max(length, 52)

        self.conn.request(lambda x: oc.flow_stats_request(cookie, mask, table, xid=x), 10.0, "flow dump",
                          sink=sink)
        now = time.perf_counter()
        return {fid: (ck, now - age) for fid, ck, age in ages}

    def all(self) -> dict[FlowId, tuple[int, float]]:
        """Every flow (for identities and cookies only: a big dump's times come out late)."""
        return self.dump(0, 0)

    def installed(self, flows: dict[FlowId, tuple[int, float]]) -> dict[FlowId, float]:
        """Install times of `flows` (from all()), re-read cookie by cookie so each dump stays small."""
        out: dict[FlowId, float] = {}
        for ck in {ck for ck, _t in flows.values()}:
            out.update((fid, t) for fid, (_ck, t) in self.dump(ck).items() if fid in flows)
        return out

    def remote_output(self, b: Binding, table: int) -> list[float]:
        """Install times of the flows in `table` sending port `b` to a tunnel (reg15 + metadata match)."""
        out = []
        for (_tab, _prio, match), (_ck, t) in self.dump(b.cookie, ALL, table).items():
            f = decode_fields(match)
            if f.get("reg15") == b.key and f.get("metadata") == b.dp_key:
                out.append(t)
        return out

    def close(self) -> None:
        self.conn.close()


def find_remote_table(host: SimHost, b: Binding, tunnel_ofport: int) -> int:
    """The table of `host`'s flow matching b's reg15/metadata that outputs to the tunnel port: OVN's
    remote-output table, read from ovn-controller's own flows (ovs-ofctl text) rather than assumed."""
    out = host.ofctl("-O", "OpenFlow15", "--no-names", "--no-stats", "dump-flows", "br-int")
    found = set()
    for line in out.splitlines():
        if (f"reg15={b.key:#x}," in line and f"metadata={b.dp_key:#x}" in line
                and re.search(rf"output:{tunnel_ofport}\b", line)):
            found.add(int(m.group(1)) if (m := re.search(r"table=(\d+)", line)) else 0)
    if len(found) != 1:
        raise RuntimeError(f"remote-output table for reg15={b.key:#x},metadata={b.dp_key:#x} to port "
                           f"{tunnel_ofport}: {sorted(found) or 'no flow'}")
    return found.pop()


def tunnel_ofport(host: SimHost, remote_ip: str) -> int:
    """ofport of the tunnel OVN created on `host` towards `remote_ip` (0 while there is none)."""
    out = host.vsctl("--bare", "--columns=ofport", "find", "Interface", "type=geneve",
                     f"options:remote_ip={remote_ip}", wait=False).split()
    return int(out[0]) if out and int(out[0]) > 0 else 0


def settle(flows: Flows, quiet: float = 0.5, timeout: float = 60.0) -> None:
    """Wait until the switch's flows stay the same for `quiet` s: the set-up's late flows (seen with the router)
    must not be taken for a sample's port's."""
    last = set(flows.all())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = set(flows.all())
        if now == last:
            return
        last = now
    raise TimeoutError(f"the owner's flows did not settle within {timeout:.0f} s")


def run_ovn(existing: int, router: bool, samples: int, warmup: int, cpu: bool = False,
            requested: bool = False, placement: str = "owner") -> dict:
    """bench_port_up.run's measurement with OVN in place of TupleNet; the same result keys (owner = mark).
    `placement` "remote": the existing ports are OVS ports on hv3, bound there by its ovn-controller."""
    base = bench_dir("tn-bench-ovn-")
    central = Central(base + "/central")
    net: SimNetwork | None = None
    controllers: list[int] = []
    pool = ThreadPoolExecutor(max_workers=4)
    conns: list[Any] = []
    try:
        central.start()
        net = SimNetwork(base + "/sim")
        for n, ip in HOSTS.items():
            net.add_host(n, ip)
        net.install_arp()
        owner, peer = net[OWNER], net[PEER]
        for h in net.hosts.values():
            h.vsctl("--may-exist", "add-br", "br-int", "--", "set", "Bridge", "br-int", "fail-mode=secure",
                    "other-config:disable-in-band=true")
        nb, sb = Db(central.nb_sock, "OVN_Northbound"), Db(central.sb_sock, "OVN_Southbound")
        conns += [nb, sb]
        remote = placement != "owner"
        olds = nb_topology(nb, existing, router, owner_port=remote)
        host = net[BYSTANDER] if remote else owner
        for i in range(0, len(olds), 250):  # real OVS ports on their chassis, bound there (batched as ours)
            cmd: list[str] = []
            for name, _ip in olds[i:i + 250]:
                cmd += ["--", "add-port", "br-int", name, "--", "set", "Interface", name, "type=dummy",
                        f"external_ids:iface-id={name}"]
            host.vsctl(*cmd[1:])
        peer.vsctl("add-port", "br-int", PEER_PORT, "--", "set", "Interface", PEER_PORT, "type=dummy",
                   f"external_ids:iface-id={PEER_PORT}")
        if remote:
            owner.vsctl("add-port", "br-int", OWNER_PORT, "--", "set", "Interface", OWNER_PORT, "type=dummy",
                        f"external_ids:iface-id={OWNER_PORT}")
        for h in net.hosts.values():
            controllers.append(start_controller(h, central.sb_sock))
        to_peer = wait_for(lambda: tunnel_ofport(owner, peer.ip), timeout=60, what="tunnel hv2 -> hv1")
        wait_for(lambda: tunnel_ofport(peer, owner.ip), timeout=60, what="tunnel hv1 -> hv2")
        odb, pdb = Db(host.db_sock, "Open_vSwitch"), Db(peer.db_sock, "Open_vSwitch")
        conns += [odb, pdb]
        installed = ["includes", ["map", [[READY, "true"]]]]
        wait_for(lambda: len(odb.rows("Interface", [["external_ids", *installed]], ["name"])) == len(olds)
                 and pdb.rows("Interface", [["external_ids", *installed]], ["name"]),
                 timeout=120, what="existing ports ovn-installed")
        ls = wait_for(lambda: sb.rows("Datapath_Binding", [["external_ids", "includes",
                                                            ["map", [["name", LSNAME]]]]], ["tunnel_key"]),
                      timeout=30, what="switch datapath")
        dp_key = ls[0]["tunnel_key"]
        pb_peer = binding(sb, PEER_PORT, dp_key, 10000)
        # hv1's ovn-installed on peer0 says nothing of hv2's flow to reach it: wait for that flow
        table = wait_for(lambda: find_remote_table(owner, pb_peer, to_peer), timeout=30,
                         what="the owner's flow to reach peer0")
        ow, pw = Flows(owner.rundir + "/br-int.mgmt"), Flows(peer.rundir + "/br-int.mgmt")
        conns += [ow, pw]
        if olds:  # hv1's flows to reach the existing ports are in before we measure
            last = binding(sb, olds[-1][0], dp_key, 10000)
            wait_for(lambda: pw.remote_output(last, table), timeout=60, what="peer flow to the existing ports")
            if remote:  # and, ports elsewhere, the owner's too
                wait_for(lambda: ow.remote_output(last, table), timeout=60, what="owner flow to the existing ports")
        settle(ow)
        bed = Bed(nb, owner, peer, ow, pw, Db(owner.db_sock, "Open_vSwitch"), Db(owner.db_sock, "Open_vSwitch"),
                  Db(central.sb_sock, "OVN_Southbound"), pool, table, dp_key, tunnel_ofport(peer, owner.ip))
        conns += [bed.mdb, bed.odb, bed.sbw]
        rows = []
        before: dict = {}
        for i in range(warmup + samples):
            if i == warmup:
                before = proc_cpu.snapshot(base) if cpu else {}
            rows.append(sample(bed, i, check=i == 0, requested=requested))
        spent = proc_cpu.per_op(before, proc_cpu.snapshot(base), samples) if cpu else None
        rows = rows[warmup:]
        for r in rows:
            r["after_ofport"] = r["total"] - r["ofport"]
            r["owner_after_ofport"] = r["owner"] - r["ofport"]
        out: dict[str, Any] = {"impl": "ovn", "existing": existing, "router": router, "placement": placement,
                               "requested": requested,
                               "samples": len(rows), "remote_output_table": table,
                               "new_flows_median": statistics.median(r["new_flows"] for r in rows),
                               # flows of the port that went in after ovn-installed (ages have 1 ms resolution)
                               "flows_after_mark": sum(r["owner_flows"] > r["mark"] + 1 for r in rows)}
        if spent is not None:
            out["cpu_ms"] = spent
        for k in KEYS:
            xs = [r[k] for r in rows]
            out[f"{k}_median"], out[f"{k}_p99"] = round(statistics.median(xs), 1), round(pct(xs, 99), 1)
        return out
    finally:
        pool.shutdown(wait=False)
        for c in conns:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing on the way out must not hide the real error
                pass
        terminate(controllers)
        if net is not None:
            net.destroy()
        central.stop()


@dataclass
class Bed:
    """Everything a sample uses: persistent connections, the owner and peer, OVN's keys and table."""

    nb: Db
    owner: SimHost
    peer: SimHost
    ow: Flows
    pw: Flows
    mdb: Db  # owner OVSDB, for the ovn-installed wait
    odb: Db  # owner OVSDB, for the ofport wait
    sbw: Db  # SB, for the new port's binding
    pool: ThreadPoolExecutor
    table: int  # OVN's remote-output table
    dp_key: int  # the switch's datapath tunnel key
    peer_tunnel: int  # ofport of the peer's tunnel towards the owner


def sample(bed: Bed, i: int, check: bool = False, requested: bool = False) -> dict:
    """One port-up; `check` also verifies in ovs-ofctl's text that the peer flow outputs to the tunnel."""
    name = f"new{i}"
    ip = f"10.1.200.{i % 250 + 2}"
    nb, owner, ow, pw, pool, table, dp_key = bed.nb, bed.owner, bed.ow, bed.pw, bed.pool, bed.table, bed.dp_key
    mdb, odb, sbw = bed.mdb, bed.odb, bed.sbw
    marked: dict[str, float] = {}
    found: dict[str, Binding] = {}
    started = [threading.Event() for _ in range(3)]

    def mark_wait() -> None:  # OVN's readiness: every flow of the port is in on the owner
        started[0].set()
        mdb.tx({"op": "wait", "timeout": 10000, "table": "Interface",
                "where": [["name", "==", name], ["external_ids", "includes", ["map", [[READY, "true"]]]]],
                "columns": ["name"], "until": "==", "rows": [{"name": name}]}, timeout=15)
        marked["at"] = time.perf_counter()

    def ofport_wait() -> None:
        started[1].set()
        odb.tx({"op": "wait", "timeout": 10000, "table": "Interface", "where": [["name", "==", name]],
                "columns": ["ofport"], "until": "==", "rows": [{"ofport": NEW_OFPORT}]}, timeout=15)
        marked["ofport"] = time.perf_counter()

    def binding_wait() -> None:  # the SB keys of the new port, to look for the peer's flow
        started[2].set()
        found["b"] = binding(sbw, name, dp_key, 10000)

    before = set(ow.all())  # the owner's flows before the port: what is new afterwards is the port's
    waiters = [pool.submit(f) for f in (mark_wait, ofport_wait, binding_wait)]
    for e in started:
        e.wait()
    t0 = time.perf_counter()

    def timed(fn, *args):
        fn(*args)
        return time.perf_counter()

    writes = [pool.submit(timed, nb.tx, *lsp_add_ops(name, ip, OWNER if requested else None)),
              pool.submit(timed, owner.vsctl, "add-port", "br-int", name, "--", "set", "Interface", name,
                          "type=dummy", f"ofport_request={NEW_OFPORT}", f"external_ids:iface-id={name}")]
    deadline = t0 + 10
    peer_at: list[float] = []
    while time.perf_counter() < deadline:
        time.sleep(POLL)  # leave the daemons time for their own work (times come from flow ages)
        if not peer_at and "b" in found:
            peer_at = pw.remote_output(found["b"], table)
        if peer_at and "at" in marked:
            break
    wrote, plugged = (f.result() for f in writes)
    for w in waiters:
        w.result()  # re-raises a wait's timeout
    if not peer_at or "at" not in marked:
        raise RuntimeError(f"{name}: not complete within 10 s: peer flow {bool(peer_at)}, "
                           f"ovn-installed {'at' in marked}")
    b = found["b"]
    peer_t = min(pw.remote_output(b, table))  # re-read: the age is read after the window
    if check and find_remote_table(bed.peer, b, bed.peer_tunnel) != table:
        raise RuntimeError(f"{name}: the peer's flow is not in table {table}")
    new = ow.installed({fid: v for fid, v in ow.all().items() if fid not in before})
    if not new:
        raise RuntimeError(f"{name}: no new flow on the owner")
    # Clean up: remove the port and the interface, wait until the owner's and the peer's flows are gone.
    uuid = nb.rows("Logical_Switch_Port", [["name", "==", name]], ["_uuid"])[0]["_uuid"][1]
    nb.tx(*lsp_del_ops(uuid))
    owner.vsctl("del-port", "br-int", name)
    try:
        wait_for(lambda: not (new.keys() & ow.all().keys()) and not pw.remote_output(b, table), timeout=10,
                 interval=0.005, what=f"{name} flows removed")
    except TimeoutError as exc:
        left = [(t, p, decode_fields(m)) for t, p, m in new.keys() & ow.all().keys()]
        raise RuntimeError(f"{exc}: owner still has {left}, peer flow {pw.remote_output(b, table)}") from None
    ms = lambda t: (t - t0) * 1000  # noqa: E731
    return {"owner": ms(marked["at"]), "peer": ms(peer_t), "total": ms(max(marked["at"], peer_t)),
            "mark": ms(marked["at"]), "write": ms(wrote), "plug": ms(plugged), "ofport": ms(marked["ofport"]),
            "owner_flows": ms(max(new.values())), "new_flows": len(new)}


def summary(ovn: dict, ours: dict | None = None) -> str:
    """One line for OVN's figures in bench_port_up's terms, with TupleNet / OVN ratios when `ours` is given."""
    line = (f"{ovn['existing']:>5} ports ({ovn['placement']}){' + router' if ovn['router'] else '         '}, OVN 23.03, "
            f"{ovn['samples']} port-ups: all flows median {ovn['total_median']:.1f} ms p99 {ovn['total_p99']:.1f} ms "
            f"(owner = ovn-installed {ovn['owner_median']:.1f}/{ovn['owner_p99']:.1f}, peer {ovn['peer_median']:.1f}/"
            f"{ovn['peer_p99']:.1f}); owner's last new flow in {ovn['owner_flows_median']:.1f}/{ovn['owner_flows_p99']:.1f} "
            f"({ovn['new_flows_median']:.0f} flows, {ovn['flows_after_mark']} samples with one after the mark); NB write "
            f"returned {ovn['write_median']:.1f}, ovs-vsctl add-port returned {ovn['plug_median']:.1f} ms, ofport "
            f"assigned {ovn['ofport_median']:.1f} ms (medians); ofport -> all flows median "
            f"{ovn['after_ofport_median']:.1f} ms p99 {ovn['after_ofport_p99']:.1f} ms")
    if "cpu_ms" in ovn:
        line += f"\n      CPU per port up and down: {proc_cpu.describe(ovn['cpu_ms'])}"
    if ours:
        line += (f"\n      TupleNet / OVN: median {ours['total_median'] / ovn['total_median']:.2f}x, "
                 f"p99 {ours['total_p99'] / ovn['total_p99']:.2f}x")
    return line


if __name__ == "__main__":  # development: python bench/ovn_port_up.py [existing] [router 0/1] [samples] [warmup]
    a = sys.argv[1:] + ["6", "0", "10", "2"][len(sys.argv) - 1:]
    print(json.dumps(run_ovn(int(a[0]), a[1] == "1", int(a[2]), int(a[3]))))
