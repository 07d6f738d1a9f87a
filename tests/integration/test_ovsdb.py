"""LocalOvs against a real private ovsdb-server + ovs-vswitchd --enable-dummy=system per test."""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tuplenet.agent.ovsdb import LocalOvs, OvsdbError, OvsState
from tuplenet.sandbox.idl_feed import cold_view
from tuplenet.sandbox.procs import wait_for

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"

pytestmark = pytest.mark.skipif(shutil.which("ovs-vswitchd") is None, reason="Open vSwitch not installed")


def _gone(pid: int) -> bool:
    """Exited, counting a zombie as exited: the detached daemons are not our children, and PID 1 here reaps
    orphans only every second or two (procs.pid_alive would wait for that)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def stop_daemon(pidfile: str, timeout: float = 5.0) -> None:
    """SIGTERM the daemon named by `pidfile`, SIGKILL it if it lingers, and wait until it is gone."""
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        try:
            wait_for(lambda: _gone(pid), timeout, 0.005, f"pid {pid} to exit")
            return
        except TimeoutError:
            continue


class OvsHost:
    """One simulated chassis: its own run/db/log directory, daemons stopped by pid file."""

    def __init__(self) -> None:
        # Short path under /tmp: unix socket paths are limited to 108 bytes.
        self.dir = tempfile.mkdtemp(prefix="tn-ovs-")
        self.sock = os.path.join(self.dir, "db.sock")
        self.env = {**os.environ, **dict.fromkeys(("OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"),
                                                  self.dir)}

    def run(self, *args: str) -> str:
        return subprocess.run(args, env=self.env, check=True, capture_output=True, text=True, timeout=20).stdout

    def vsctl(self, *args: str) -> str:
        return self.run("ovs-vsctl", "--timeout=10", f"--db=unix:{self.sock}", *args)

    def start_db(self) -> None:
        self.run("ovsdb-server", "--detach", "--no-chdir", "--pidfile", "--log-file", "-vconsole:off",
                 f"--remote=punix:{self.sock}", os.path.join(self.dir, "conf.db"))

    def stop_db(self) -> None:
        stop_daemon(os.path.join(self.dir, "ovsdb-server.pid"))

    def start(self, system_id: str = "hv1") -> OvsHost:
        self.run("ovsdb-tool", "create", os.path.join(self.dir, "conf.db"), SCHEMA)
        self.start_db()
        self.vsctl("--no-wait", "init", "--", "set", "Open_vSwitch", ".", f"external-ids:system-id={system_id}")
        self.run("ovs-vswitchd", "--detach", "--no-chdir", "--pidfile", "--log-file", "-vconsole:off",
                 "--enable-dummy=system", f"unix:{self.sock}")
        return self

    def stop(self) -> None:
        for name in ("ovs-vswitchd", "ovsdb-server"):
            stop_daemon(os.path.join(self.dir, f"{name}.pid"))
        shutil.rmtree(self.dir, ignore_errors=True)

    def record(self, table: str, name: str) -> dict[str, Any]:
        """One row as plain Python (maps -> dict, sets -> list, uuids -> str)."""
        out = json.loads(self.vsctl("--format=json", "list", table, name))
        return {h: _decode(v) for h, v in zip(out["headings"], out["data"][0], strict=True)}

    def port_names(self, bridge: str) -> set[str]:
        return set(self.vsctl("list-ports", bridge).split())


def _decode(v: Any) -> Any:
    if isinstance(v, list) and len(v) == 2 and v[0] == "map":
        return {k: _decode(x) for k, x in v[1]}
    if isinstance(v, list) and len(v) == 2 and v[0] == "set":
        return [_decode(x) for x in v[1]]
    if isinstance(v, list) and len(v) == 2 and v[0] == "uuid":
        return v[1]
    return v


class Recorder:
    """A subscriber that keeps every state it was given (called from the IDL thread)."""

    def __init__(self) -> None:
        self.states: list[OvsState] = []
        self.lock = threading.Lock()

    def __call__(self, state: OvsState) -> None:
        with self.lock:
            self.states.append(state)

    def wait(self, pred: Callable[[OvsState], object], timeout: float = 5.0, what: str = "state") -> OvsState:
        def hit() -> OvsState | None:
            with self.lock:
                return next((s for s in reversed(self.states) if pred(s)), None)
        return wait_for(hit, timeout, 0.005, what)


@pytest.fixture
def host() -> Iterator[OvsHost]:
    h = OvsHost().start()
    yield h
    h.stop()


@pytest.fixture
def lo(host: OvsHost) -> Iterator[LocalOvs]:
    ovs = LocalOvs(host.sock).start(timeout=5)
    yield ovs
    ovs.stop()


def test_start_sync_and_system_id(host: OvsHost, lo: LocalOvs) -> None:
    st = lo.snapshot()
    assert st.connected and st.seqno >= 1
    assert lo.system_id() == "hv1"
    assert not st.bridge_exists and st.bridges == frozenset()


def test_missing_socket_is_a_clear_error(tmp_path: Any) -> None:
    path = str(tmp_path / "nothing.sock")
    t0 = time.monotonic()
    with pytest.raises(OvsdbError, match=f"cannot reach OVSDB at {path}: socket does not exist"):
        LocalOvs(path).start(timeout=0.5)
    assert time.monotonic() - t0 < 2.0


def test_ensure_bridge_creates_and_is_idempotent(host: OvsHost, lo: LocalOvs) -> None:
    lo.ensure_bridge()
    assert lo.snapshot().bridge_exists
    br = host.record("Bridge", "br-int")
    assert br["fail_mode"] == "secure"
    assert br["other_config"] == {"disable-in-band": "true"}
    assert sorted(br["protocols"]) == ["OpenFlow10", "OpenFlow13", "OpenFlow14", "OpenFlow15"]
    txns = lo.stats["txns"]
    lo.ensure_bridge()
    assert host.record("Bridge", "br-int")["_uuid"] == br["_uuid"]
    # A fresh instance (agent restart) finds it in place: no write at all.
    with LocalOvs(host.sock).start(timeout=5) as again:
        again.ensure_bridge()
        assert again.stats["txns"] == 0
    # Someone breaks fail_mode/protocols: fixed in place, never recreated.
    host.vsctl("set", "Bridge", "br-int", "fail_mode=standalone", "protocols=OpenFlow10")
    lo.ensure_bridge()
    wait_for(lambda: host.record("Bridge", "br-int")["fail_mode"] == "secure", 5, 0.01, "fail_mode fixed")
    fixed = host.record("Bridge", "br-int")
    assert fixed["_uuid"] == br["_uuid"] and len(fixed["protocols"]) == 4
    assert lo.stats["txns"] > txns


def test_ensure_bridge_copies_datapath_type(host: OvsHost, lo: LocalOvs) -> None:
    host.vsctl("add-br", "br-phy", "--", "set", "Bridge", "br-phy", "datapath_type=dummy")
    lo.ensure_bridge()
    assert host.record("Bridge", "br-int")["datapath_type"] == "dummy"


def _tunnel_ifaces(host: OvsHost) -> dict[str, dict[str, Any]]:
    return {n: host.record("Interface", n) for n in host.port_names("br-int") if n.startswith("tupleNet-")}


def test_tunnels_exact_ports_and_ofport_kept(host: OvsHost, lo: LocalOvs) -> None:
    lo.ensure_bridge()
    lo.set_tunnels({"hv2": "192.168.100.2", "hv3": "192.168.100.3"}).result(5)
    st = lo.wait_state(lambda s: len(s.tunnels) == 2 and s.flowbased_ofport)
    ifaces = _tunnel_ifaces(host)
    assert set(ifaces) == {"tupleNet-3232261122", "tupleNet-3232261123", "tupleNet-flowbased"}
    hv2 = ifaces["tupleNet-3232261122"]
    assert hv2["type"] == "geneve"
    assert hv2["options"] == {"remote_ip": "192.168.100.2", "key": "flow", "csum": "true"}
    assert hv2["external_ids"] == {"chassis-id": "hv2"}
    fb = ifaces["tupleNet-flowbased"]
    assert fb["options"] == {"remote_ip": "flow", "key": "flow", "csum": "true"}
    assert fb["external_ids"] == {"tuplenet-role": "flowbased"}
    assert st.tunnels == {"hv2": hv2["ofport"], "hv3": ifaces["tupleNet-3232261123"]["ofport"]}
    assert st.tunnel_ips == {"hv2": "192.168.100.2", "hv3": "192.168.100.3"}
    assert st.flowbased_ofport == fb["ofport"]

    # Same wish again: nothing is written, ofports stay.
    txns = lo.stats["txns"]
    lo.set_tunnels({"hv2": "192.168.100.2", "hv3": "192.168.100.3"}).result(5)
    assert lo.stats["txns"] == txns
    assert lo.snapshot().tunnels == st.tunnels

    # Agent restart: a new instance with the same wish keeps the very same rows and ofports.
    lo.stop()
    with LocalOvs(host.sock).start(timeout=5) as again:
        again.ensure_bridge()
        again.set_tunnels({"hv2": "192.168.100.2", "hv3": "192.168.100.3"}).result(5)
        assert again.stats["txns"] == 0
        assert again.snapshot().tunnels == st.tunnels
        assert host.record("Interface", "tupleNet-3232261122")["_uuid"] == hv2["_uuid"]


def test_tunnels_replace_delete_and_recreate(host: OvsHost, lo: LocalOvs) -> None:
    lo.ensure_bridge()
    lo.set_tunnels({"hv2": "192.168.100.2", "hv3": "192.168.100.3"}).result(5)
    lo.wait_state(lambda s: len(s.tunnels) == 2)
    # hv2 moves to a new IP (port replaced), hv3 leaves (port deleted), hv4 joins.
    lo.set_tunnels({"hv2": "192.168.100.12", "hv4": "192.168.100.4"}).result(5)
    lo.wait_state(lambda s: set(s.tunnels) == {"hv2", "hv4"} and s.tunnel_ips["hv2"] == "192.168.100.12")
    assert set(_tunnel_ifaces(host)) == {"tupleNet-3232261132", "tupleNet-3232261124", "tupleNet-flowbased"}
    # Deleted by hand: re-created (and the flow-based port too).
    host.vsctl("del-port", "br-int", "tupleNet-3232261124", "--", "del-port", "br-int", "tupleNet-flowbased")
    wait_for(lambda: host.port_names("br-int") >= {"tupleNet-3232261124", "tupleNet-flowbased"}, 5, 0.01,
             "tunnel ports re-created")
    lo.wait_state(lambda s: "hv4" in s.tunnels and s.flowbased_ofport is not None)
    assert host.record("Interface", "tupleNet-3232261124")["external_ids"] == {"chassis-id": "hv4"}
    # A foreign port is never touched.
    host.vsctl("add-port", "br-int", "other", "--", "set", "Interface", "other", "type=dummy")
    lo.set_tunnels({}).result(5)
    lo.wait_state(lambda s: not s.tunnels)
    assert host.port_names("br-int") == {"other", "tupleNet-flowbased"}


def test_set_tunnels_rejects_bad_input(lo: LocalOvs) -> None:
    with pytest.raises(ValueError, match="bad tunnel IPv4"):
        lo.set_tunnels({"hv2": "not-an-ip"})
    with pytest.raises(ValueError, match="share tunnel IP"):
        lo.set_tunnels({"hv2": "10.0.0.2", "hv3": "10.0.0.2"})


def test_bindings_follow_iface_id_and_subscriber_sees_them(host: OvsHost, lo: LocalOvs) -> None:
    lo.ensure_bridge()
    rec = Recorder()
    lo.subscribe(rec)
    rec.wait(lambda s: s.bridge_exists, what="replayed state")
    host.vsctl("add-port", "br-int", "vm1", "--", "set", "Interface", "vm1", "type=dummy",
               "external_ids:iface-id=lsp1")
    st = rec.wait(lambda s: "lsp1" in s.bindings, what="lsp1 bound")
    assert st.bindings["lsp1"] == host.record("Interface", "vm1")["ofport"] >= 1
    host.vsctl("set", "Interface", "vm1", "external_ids:iface-id=lsp2")
    st = rec.wait(lambda s: "lsp2" in s.bindings and "lsp1" not in s.bindings, what="lsp2 bound")
    host.vsctl("del-port", "br-int", "vm1")
    rec.wait(lambda s: not s.bindings, what="unbound")
    # Subscribers see strictly increasing seqnos, never an unchanged state twice.
    with rec.lock:
        seqnos = [s.seqno for s in rec.states]
        assert seqnos == sorted(set(seqnos))
        assert all(not a.same_as(b) for a, b in zip(rec.states, rec.states[1:], strict=False))
    # An interface without an ofport yet is not bound: every published binding has ofport >= 1.
    assert all(p >= 1 for s in rec.states for p in s.bindings.values())


def test_patch_ports_only_with_peer_bridge(host: OvsHost, lo: LocalOvs) -> None:
    lo.ensure_bridge()
    lo.set_patch_ports({"lsp-ext": "br-ext"}).result(5)
    assert "lsp-ext" not in host.port_names("br-int")
    host.vsctl("add-br", "br-ext")
    st = lo.wait_state(lambda s: "lsp-ext" in s.patch_ofports)
    inner, outer = host.record("Interface", "lsp-ext"), host.record("Interface", "lsp-ext-peer")
    assert inner["type"] == outer["type"] == "patch"
    assert inner["options"] == {"peer": "lsp-ext-peer"} and outer["options"] == {"peer": "lsp-ext"}
    assert inner["external_ids"] == {"iface-id": "lsp-ext", "tuplenet-role": "patch"}
    assert outer["external_ids"] == {"iface-id": "lsp-ext-peer", "tuplenet-role": "patch"}
    assert "lsp-ext-peer" in host.port_names("br-ext") and st.patch_ofports["lsp-ext"] == inner["ofport"]
    assert "lsp-ext" not in st.bindings  # our patch ports never stand for a VM port
    # Peer side deleted by hand: re-created.
    host.vsctl("del-port", "br-ext", "lsp-ext-peer")
    wait_for(lambda: "lsp-ext-peer" in host.port_names("br-ext"), 5, 0.01, "peer side re-created")
    lo.set_patch_ports({}).result(5)
    assert "lsp-ext" not in host.port_names("br-int") and "lsp-ext-peer" not in host.port_names("br-ext")
    lo.wait_state(lambda s: "lsp-ext" not in s.patch_ofports)


def test_bfd_and_bridge_external_ids(host: OvsHost, lo: LocalOvs) -> None:
    lo.ensure_bridge()
    lo.set_tunnels({"hv2": "192.168.100.2", "hv3": "192.168.100.3"})
    lo.set_bfd({"hv2"}, True).result(5)
    assert host.record("Interface", "tupleNet-3232261122")["bfd"] == {"enable": "true"}
    assert host.record("Interface", "tupleNet-3232261123")["bfd"] == {}  # never referenced: untouched
    lo.set_bfd({"hv2"}, False).result(5)
    assert host.record("Interface", "tupleNet-3232261122")["bfd"] == {"enable": "false"}

    lo.set_bridge_external_id("tuplenet-version", "4")
    assert host.record("Bridge", "br-int")["external_ids"] == {"tuplenet-version": "4"}
    lo.wait_state(lambda s: s.bridge_external_ids.get("tuplenet-version") == "4")
    assert lo.get_bridge_external_id("tuplenet-version") == "4"
    lo.set_bridge_external_id("tuplenet-version", None)
    assert "tuplenet-version" not in host.record("Bridge", "br-int")["external_ids"]


def test_survives_ovsdb_server_restart(host: OvsHost, lo: LocalOvs) -> None:
    lo.ensure_bridge()
    lo.set_tunnels({"hv2": "192.168.100.2"}).result(5)
    before = lo.wait_state(lambda s: "hv2" in s.tunnels)
    rec = Recorder()
    lo.subscribe(rec, replay=False)
    with open(os.path.join(host.dir, "ovsdb-server.pid")) as f:
        db_pid = int(f.read())
    host.stop_db()
    assert _gone(db_pid)
    rec.wait(lambda s: not s.connected, what="disconnected state")
    host.start_db()
    after = rec.wait(lambda s: s.connected, timeout=10, what="re-synced state")
    assert after.seqno > before.seqno and after.tunnels == before.tunnels and after.system_id == "hv1"
    # Monitoring and reconciliation work on the new session.
    host.vsctl("del-port", "br-int", "tupleNet-3232261122")
    host.vsctl("add-port", "br-int", "vm1", "--", "set", "Interface", "vm1", "type=dummy",
               "external_ids:iface-id=lsp1")
    rec.wait(lambda s: "lsp1" in s.bindings and "hv2" in s.tunnels, what="binding + re-created tunnel")
    assert lo.stats["reconnects"] == 1


def test_binding_latency(host: OvsHost, lo: LocalOvs) -> None:
    """Time from starting `ovs-vsctl add-port` to the subscriber holding the binding (median of 20), with
    ovs-vsctl's default wait for ovs-vswitchd and with --no-wait."""
    lo.ensure_bridge()
    seen: dict[str, float] = {}
    cond = threading.Condition()

    def on_state(s: OvsState) -> None:
        now = time.perf_counter()
        with cond:
            for k in s.bindings:
                seen.setdefault(k, now)
            cond.notify_all()
    lo.subscribe(on_state)
    report = []
    for mode in ("wait", "no-wait"):
        lat, vsctl, before_return = [], [], 0
        for i in range(20):
            name = f"{mode}{i}"
            opts = ["--no-wait"] if mode == "no-wait" else []
            t0 = time.perf_counter()
            host.vsctl(*opts, "add-port", "br-int", name, "--", "set", "Interface", name, "type=dummy",
                       f"external_ids:iface-id=lsp-{name}")
            t1 = time.perf_counter()
            with cond:
                assert cond.wait_for(lambda n=name: f"lsp-{n}" in seen, timeout=5)
                lat.append(seen[f"lsp-{name}"] - t0)
                before_return += seen[f"lsp-{name}"] <= t1
            vsctl.append(t1 - t0)
        med = statistics.median(lat)
        report.append(f"{mode}: median {med * 1000:.1f} ms (max {max(lat) * 1000:.1f} ms; ovs-vsctl itself "
                      f"{statistics.median(vsctl) * 1000:.1f} ms; seen before it returned {before_return}/20)")
        assert med < 0.5
    print("\nbinding latency over 20 add-ports, ovs-vsctl start -> subscriber:\n  " + "\n  ".join(report))


class FailOnce:
    """Wraps a callable so its next call raises (an unexpected bug in the IDL thread's path)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.armed = False
        self.fired = 0

    def __call__(self, *a: Any, **kw: Any) -> Any:
        if self.armed:
            self.armed = False
            self.fired += 1
            raise RuntimeError("injected failure")
        return self.fn(*a, **kw)


def _survives(host: OvsHost, lo: LocalOvs, inject: FailOnce) -> None:
    """After the injected error the thread is alive: a later wish converges and subscribers see it."""
    rec = Recorder()
    lo.subscribe(rec)
    rec.wait(lambda s: s.bridge_exists, what="replayed state")
    inject.armed = True
    lo.set_tunnels({"hv2": "192.168.100.2"})
    wait_for(lambda: inject.fired, 5, 0.005, "the injected failure")
    fut = lo.set_tunnels({"hv2": "192.168.100.2", "hv3": "192.168.100.3"})
    fut.result(10)
    rec.wait(lambda s: {"hv2", "hv3"} <= set(s.tunnels), timeout=10, what="tunnels after the failure")
    assert lo._thread is not None and lo._thread.is_alive()
    assert lo.stats["thread_errors"] == 1
    host.vsctl("add-port", "br-int", "vm1", "--", "set", "Interface", "vm1", "type=dummy",
               "external_ids:iface-id=lsp1")
    rec.wait(lambda s: "lsp1" in s.bindings, what="monitoring continues")


def test_thread_survives_an_error_while_committing(host: OvsHost, lo: LocalOvs,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import ovs.db.idl

    lo.ensure_bridge()
    inject = FailOnce(ovs.db.idl.Transaction.commit)
    monkeypatch.setattr(ovs.db.idl.Transaction, "commit", lambda self: inject(self))
    _survives(host, lo, inject)


def test_thread_survives_an_error_while_publishing(host: OvsHost, lo: LocalOvs,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tuplenet.agent.ovsdb_state import StateBuilder

    lo.ensure_bridge()
    inject = FailOnce(StateBuilder.build)
    monkeypatch.setattr(StateBuilder, "build", lambda self, *a, **kw: inject(self, *a, **kw))
    _survives(host, lo, inject)


def test_stop_during_a_turn_is_not_lost(host: OvsHost, lo: LocalOvs, monkeypatch: pytest.MonkeyPatch) -> None:
    """stop() after the thread's loop checked the stop flag but before the turn drained its wake-up pipe: the
    turn took stop()'s byte, and the thread then slept until the next OVSDB message (up to 5 s: one agent
    shutdown in five in the test suite)."""
    # Idle: connected, nothing to commit or retry, and no change of ours for ovs-vswitchd to answer.
    wait_for(lambda: not lo._dirty and lo._txn is None, 5, 0.005, "the thread idle")
    drain = lo._drain_requests

    def stop_then_drain() -> None:
        lo._stopping = True  # what stop() does, in its order
        lo._wake()
        drain()

    monkeypatch.setattr(lo, "_drain_requests", stop_then_drain)
    lo._wake()  # a turn begins
    assert lo._thread is not None
    lo._thread.join(2.0)
    assert not lo._thread.is_alive()


def test_readiness_marks_follow_the_wish(host: OvsHost, lo: LocalOvs) -> None:
    lo.ensure_bridge()
    for name in ("vm1", "vm2"):
        host.vsctl("add-port", "br-int", name, "--", "set", "Interface", name, "type=dummy",
                   f"external_ids:iface-id=lsp-{name}", "external_ids:other=kept")
    st = lo.wait_state(lambda s: {"lsp-vm1", "lsp-vm2"} <= set(s.bindings))
    lo.set_installed({"lsp-vm1": st.bindings["lsp-vm1"], "lsp-vm2": 999}).result(5)  # vm2: stale ofport
    assert host.record("Interface", "vm1")["external_ids"] == {
        "iface-id": "lsp-vm1", "other": "kept", "tuplenet-installed": "true"}
    assert "tuplenet-installed" not in host.record("Interface", "vm2")["external_ids"]
    lo.set_installed({}).result(5)
    assert host.record("Interface", "vm1")["external_ids"] == {"iface-id": "lsp-vm1", "other": "kept"}


def test_patch_port_never_touches_a_port_it_did_not_create(host: OvsHost, lo: LocalOvs) -> None:
    lo.ensure_bridge()
    host.vsctl("add-br", "br-ext", "--", "set", "Bridge", "br-ext", "datapath_type=dummy")
    host.vsctl("add-port", "br-int", "eth0", "--", "set", "Interface", "eth0", "type=dummy")
    before = host.record("Interface", "eth0")
    # eth0 is someone else's port, br-int the integration bridge itself: both ignored, nothing raised.
    lo.set_patch_ports({"eth0": "br-ext", "p-bad": "br-int", "br-int": "br-ext", "ok": "br-ext"}).result(5)
    assert host.port_names("br-int") >= {"eth0", "ok"} and "p-bad" not in host.port_names("br-int")
    assert host.port_names("br-ext") == {"ok-peer"}
    after = host.record("Interface", "eth0")
    assert (after["type"], after["options"], after["external_ids"]) == (
        before["type"], before["options"], before["external_ids"])
    assert host.record("Interface", "br-int")["type"] == "internal"
    assert lo.stats["patch_ignored"] == 2 and lo.stats["foreign_ports"] == 1


def test_incremental_view_equals_a_view_built_from_scratch(host: OvsHost) -> None:
    """TrackingIdl rebuilds only what notify() says changed: at every update the replica goes through, its
    view must equal one built from nothing (ports, interfaces, ofports, ids, bridges, mirrors, IPFIX)."""
    from tuplenet.agent import ovsdb_idl

    remote = "unix:" + host.sock
    fetch = ovsdb_idl.SchemaFetch(remote)
    wait_for(lambda: fetch.run(), 5, 0.01, "schema")
    fetch.close()
    idl = ovsdb_idl.TrackingIdl(remote, ovsdb_idl.schema_helper(fetch.result))
    checked = [0]
    wrong: list[str] = []

    def settle(pred: Callable[[Any], object], what: str) -> None:
        def step() -> bool:
            seq = idl.change_seqno
            idl.run()
            if idl.change_seqno != seq and idl.connected():
                if idl.view() != cold_view(idl):
                    wrong.append(what)
                for br in idl.tables["Bridge"].rows.values():  # read from the datum as python-ovs reads it
                    if [r.uuid for r in idl._port_rows(br)] != [p.uuid for p in br.ports if p is not None]:
                        wrong.append(f"{what}: ports of {br.name}")
                checked[0] += 1
            return idl.connected() and bool(pred(idl.view()))
        wait_for(step, 10, 0.002, what)
        assert not wrong, f"incremental view differs from a fresh one while waiting for {wrong}"

    try:
        host.vsctl("add-br", "br-int", "--", "set", "Bridge", "br-int", "fail-mode=secure")
        host.vsctl("add-br", "br-x")
        settle(lambda v: "br-int" in v.bridges and "br-x" in v.bridges, "bridges")
        for i in range(4):
            host.vsctl("add-port", "br-int", f"vm{i}", "--", "set", "Interface", f"vm{i}", "type=dummy",
                       f"external_ids:iface-id=lsp{i}")
        settle(lambda v: len(v.bridges["br-int"].ports) >= 5, "ports")
        settle(lambda v: all(i.ofport > 0 for p in v.bridges["br-int"].ports for i in p.ifaces), "ofports")
        host.vsctl("set", "Interface", "vm1", "external_ids:iface-id=other")
        settle(lambda v: any(i.external_ids.get("iface-id") == "other" for p in v.bridges["br-int"].ports
                             for i in p.ifaces), "iface-id changed")
        host.vsctl("set", "Port", "vm2", "external_ids:k=v")
        host.vsctl("del-port", "br-int", "vm0", "--", "add-port", "br-x", "vm9", "--", "set", "Interface", "vm9",
                   "type=dummy")
        settle(lambda v: "vm9" in {p.name for p in v.bridges["br-x"].ports}, "port moved between bridges")
        assert idl.relisted >= 2  # ports added and moved were listed in place, not by a rebuild
        host.vsctl("--", "--id=@m", "create", "Mirror", "name=m1", "select-all=true", "--", "add", "Bridge",
                   "br-int", "mirrors", "@m")
        settle(lambda v: v.bridges["br-int"].mirrors, "mirror")
        host.vsctl("--", "set", "Bridge", "br-int", "ipfix=@i", "--", "--id=@i", "create", "IPFIX",
                   "targets=\"127.0.0.1:4739\"", "sampling=10")
        settle(lambda v: v.bridges["br-int"].ipfix is not None, "ipfix")
        host.vsctl("set", "Open_vSwitch", ".", "external_ids:system-id=hv9")
        settle(lambda v: v.system_id == "hv9", "system-id")
        host.vsctl("del-br", "br-x")
        settle(lambda v: "br-x" not in v.bridges, "bridge deleted")
        host.stop_db()  # a reconnect: a fresh replica of new Row objects must not be served from the caches
        host.start_db()
        host.vsctl("--no-wait", "set", "Interface", "vm3", "external_ids:iface-id=after")
        settle(lambda v: any(i.external_ids.get("iface-id") == "after" for p in v.bridges["br-int"].ports
                             for i in p.ifaces), "after a reconnect")
    finally:
        idl.close()
    assert checked[0] >= 8


def test_openflow_port_status_numbers_the_interface(host: OvsHost, lo: LocalOvs) -> None:
    """The wiring with a real ovs-vswitchd: its own port-status messages parse into the number OVSDB gets,
    reach the IDL thread, and no hint outlives the port. (Which number a view shows while OVSDB has none is
    tested on a replica: tests/unit/test_ofport_hints.py.)"""
    from tuplenet.agent.openflow import OpenFlowConnection
    from tuplenet.agent.openflow import codec as c

    lo.ensure_bridge()
    heard: list[tuple] = []
    conn = OpenFlowConnection(os.path.join(host.dir, "br-int.mgmt"))
    conn.on_port_status = lambda *status: (heard.append(status), lo.port_status(*status))
    conn.start(timeout=5)
    try:
        host.vsctl("add-port", "br-int", "vm1", "--", "set", "Interface", "vm1", "type=dummy",
                   "external_ids:iface-id=lsp1")
        number = host.record("Interface", "vm1")["ofport"]
        assert number >= 1
        wait_for(lambda: (c.OFPPR_ADD, number, "vm1") in heard, 5, 0.005, "vm1's ADD")
        assert lo.wait_state(lambda s: s.bindings.get("lsp1") == number).bindings["lsp1"] == number
        host.vsctl("del-port", "br-int", "vm1")
        wait_for(lambda: (c.OFPPR_DELETE, number, "vm1") in heard, 5, 0.005, "vm1's DELETE")
        lo.wait_state(lambda s: "lsp1" not in s.bindings)
        assert lo._idl.hints.get("vm1") is None  # (read off the IDL thread: a dict lookup, for the test only)
    finally:
        conn.close()
