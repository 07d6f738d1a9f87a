"""The agent's live-trace handler (agent/livetrace.py) against recording fakes of the OpenFlow connection and
the store: what it injects for a command, what it reports for the source hop, a tunnel arrival and a port
that is not here, and that a flow missing from the switch shows as a miss in the report."""

from __future__ import annotations

from types import SimpleNamespace

from topo_helpers import build_view, tutorial_facts

from tuplenet.agent import tables as T
from tuplenet.agent.engine import Engine
from tuplenet.agent.flow import Load, Resubmit
from tuplenet.agent.livetrace import LiveTrace, mark
from tuplenet.sandbox import packets as P
from tuplenet.trace import live as L
from tuplenet.trace import livewire as W


class FakeConn:
    def __init__(self, installed: set[int] | None) -> None:
        self.installed = installed
        self.sent: list[tuple] = []

    def packet_out(self, data: bytes, actions: tuple, in_port: int) -> None:
        self.sent.append((data, actions, in_port))

    def dump_cookies(self, timeout: float = 0) -> dict[int, tuple[int, int]]:
        if self.installed is None:
            raise OSError("switch gone")
        return dict.fromkeys(self.installed, (0, 0))


class FakeStore:
    def __init__(self) -> None:
        self.puts: dict[str, str] = {}

    def lease_grant(self, ttl: int):
        return SimpleNamespace(id=ttl)

    def put(self, key: str, value: str, lease: int | None = None) -> int:
        assert lease == W.RESULT_TTL
        self.puts[key] = value
        return 1


def agent(installed_filter=None) -> tuple[LiveTrace, FakeConn, FakeStore, Engine]:
    e = Engine(build_view(tutorial_facts()))
    e.full()
    cookies = {f.cookie for f in e.active.values()}
    conn = FakeConn(cookies if installed_filter is None else {c for c in cookies if installed_filter(e, c)})
    store = FakeStore()
    return LiveTrace(store, "hv1", conn, e.view, e, lambda item: None), conn, store, e


def results(store: FakeStore) -> list[W.Result]:
    return [W.decode_result(k, v) for k, v in sorted(store.puts.items())]


FRAME = P.icmp_frame("f2:01:0a:0a:01:02", "f2:01:0a:0a:01:03", "10.10.1.2", "10.10.1.3")


def test_a_command_injects_the_marked_frame_and_reports_the_source_hop() -> None:
    lt, conn, store, _e = agent()
    lt.command(W.command_key("hv1", 42), W.encode_command(W.Command(42, "LS-A", "vm1", FRAME)))
    lt._pool.shutdown(wait=True)
    assert conn.sent == [(FRAME, (Load(T.R_FLAGS, mark(42)), Resubmit(T.CLASSIFY)), 1)]
    [r] = results(store)
    assert (r.cmd_id, r.seq, r.chassis) == (42, 0, "hv1")
    assert r.hop["source"] == "LS-A/vm1" and r.hop["sends"] == ["hv2"]
    assert r.hop["hop"]["in_port_name"] == "LS-A/vm1" and r.hop["hop"]["from_chassis"] is None
    doc = L.document(L.Pending(42, "LS-A/vm1", "hv1", results=[r]), 1)
    assert doc["outcomes"][0]["chassis"] == "hv2"  # tunnelled there, which never reported here
    assert lt.stats["commands"] == 1 and lt.stats["reports"] == 1


def test_a_port_not_here_and_a_bad_command_are_answered_or_counted() -> None:
    lt, conn, store, _e = agent()
    lt.command(W.command_key("hv1", 5), W.encode_command(W.Command(5, "LS-A", "vm2", FRAME)))  # vm2 is on hv2
    lt.command("communicate/push/hv1/cmd/6", "cmd=pkt_trace,packet=zz")
    lt._pool.shutdown(wait=True)
    assert conn.sent == []
    [r] = results(store)
    assert r.hop == {"error": "LS-A/vm2 has no interface on chassis hv1"}
    assert lt.stats["bad_commands"] == 1


def test_a_tunnel_arrival_is_reported_from_the_tunnel_port() -> None:
    lt, _conn, store, _e = agent()
    md = {"in_port": 10, "tun_src": 0xC0A86403, "tun_dst": 0xC0A86402, "tun_id": 2, "metadata": 2,
          T.R_FLAGS: mark(9), "tun_metadata0": (mark(9) << 32) | (0x0202 << 16) | 0x0101}
    frame = P.icmp_frame("f2:01:0a:0a:02:01", "f2:01:0a:0a:02:02", "10.10.1.3", "10.10.2.2", ttl=63)
    lt.trace_point(SimpleNamespace(metadata=md, data=frame, userdata=bytes([0, 0, 0, 3, 99])))
    lt.trace_point(SimpleNamespace(metadata={**md, T.R_FLAGS: 0}, data=frame, userdata=b""))  # unmarked: ignored
    drop_md = {"metadata": 1, T.R_FLAGS: mark(9), T.R_SRC_PORT: 0x102, T.R_DST_PORT: 0x103, "in_port": 1}
    lt.trace_point(SimpleNamespace(metadata=drop_md, data=FRAME, userdata=bytes([0, 0, 0, 3, T.DROP])))
    lt._pool.shutdown(wait=True)
    r, drop = results(store)
    assert (drop.seq, drop.table_id, drop.hop) == (1, T.DROP, {"switch_drop": {
        "datapath": "LS-A", "datapath_type": "switch", "from_port": "vm1", "to_port": "vm2"}})
    assert (r.cmd_id, r.table_id, r.datapath_id, r.tun_src) == (9, 99, 2, 0xC0A86403)
    hop = r.hop["hop"]
    assert hop["from_chassis"] == "hv2" and hop["in_port_name"] == "tunnel port of hv2"
    assert [o["port"] for o in r.hop["outcomes"]] == ["vm3"] and "source" not in r.hop
    # the walk is the unmarked packet's: the trace point's own copy is no outcome
    assert not [e for s in hop["steps"] for e in s["events"] if e["kind"] == "controller"]


def test_a_flow_missing_from_the_switch_shows_as_a_miss() -> None:
    def not_vm2_lookup(e: Engine, cookie: int) -> bool:
        f = next(f for f in e.active.values() if f.cookie == cookie)
        return not (f.table == T.LS_IN_LOOKUP and any(m.field == "dl_dst" and m.value == 0xF2010A0A0103
                                                      for m in f.match))

    lt, _conn, store, _e = agent(not_vm2_lookup)
    lt.command(W.command_key("hv1", 1), W.encode_command(W.Command(1, "LS-A", "vm1", FRAME)))
    lt._pool.shutdown(wait=True)
    [r] = results(store)
    assert r.hop["sends"] == []
    assert r.hop["outcomes"] == [{"result": "drop", "chassis": "hv1",
                                  "reason": "no port with destination MAC f2:01:0a:0a:01:03 in switch LS-A"}]
