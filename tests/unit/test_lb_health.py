"""Load-balancer health checks without OVS or etcd: probe packets, the rise/fall state machine, the probe
schedule against the 2 × interval budget, HTTP checks, targets from the view, and the monitor flows."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from topo_helpers import build_view, tutorial_facts

from fuzz_settings import fuzz
from tuplenet.agent import healthprobe as hp
from tuplenet.agent.healthcheck import Checker, Health, Target, health_key
from tuplenet.agent.healthcheck_targets import TargetTracker, compute_targets
from tuplenet.agent.healthprobe import ACK, FIN, PSH, RST, SYN, Segment
from tuplenet.agent.openflow.meters import MeterSpec
from tuplenet.agent.pinctrl import checksum
from tuplenet.agent.pipeline.lbhealth import LS_IN_HC, hc_meter, health_flows
from tuplenet.agent.view import Reader
from tuplenet.model import LSP
from tuplenet.model.lb import decode_lb, parse_health_key

VM_MAC = "f2:01:0a:0a:01:02"


def target(check: str = "tcp", interval: float = 1.0, rise: int = 2, fall: int = 2, port: int = 80,
           ip: str = "10.10.1.2") -> Target:
    return Target("LS", "LS-A", "web", ip, port, check, interval, rise, fall, 5, VM_MAC)


class Backend:
    """A guest's TCP stack as far as probes see it: listening (SYN-ACK, then an HTTP answer), closed (RST)
    or silent."""

    def __init__(self, mode: str = "listen", http: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"):
        self.mode, self.http, self.isn, self.got = mode, http, 7000, []
        self.replies: list[bytes] = []

    def receive(self, _t: Target, frame: bytes) -> None:
        seg = hp.parse(frame)
        assert seg is not None and frame[:6] == hp.mac_bytes(VM_MAC) and frame[6:12] == hp.mac_bytes(hp.MONITOR_MAC)
        self.got.append(seg)
        if self.mode == "silent" or seg.flags & RST:
            return
        def answer(flags: int, seq: int, ack: int, payload: bytes = b"") -> None:
            s = Segment(seg.dst_ip, seg.src_ip, seg.dst_port, seg.src_port, seq, ack, flags, payload)
            self.replies.append(hp.tcp_frame(VM_MAC, hp.MONITOR_MAC, s))
        if seg.flags & SYN:
            if self.mode == "closed":
                answer(RST | ACK, 0, seg.seq + 1)
            else:
                answer(SYN | ACK, self.isn, seg.seq + 1)
        elif seg.payload:
            answer(ACK, self.isn + 1, seg.seq + len(seg.payload))
            answer(ACK | PSH | FIN, self.isn + 1, seg.seq + len(seg.payload), self.http)


class Harness:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.verdicts: list[tuple[Target, bool]] = []
        self.checker = Checker(backend.receive, lambda t, up: self.verdicts.append((t, up)), random.Random(1))
        self.now = 0.0

    def run(self, until: float, step: float = 0.01) -> None:
        """Advance time, delivering the backend's answers 1 ms after each tick."""
        while self.now < until:
            self.checker.tick(self.now)
            while self.backend.replies:
                self.checker.on_frame(self.backend.replies.pop(0), self.now + 0.001)
            self.now = round(self.now + step, 6)


# ------------------------------------------------------------------------------------------ packets
def test_probe_frame_round_trips_with_valid_checksums() -> None:
    seg = Segment(hp.MONITOR_IP, "10.10.1.2", 61001, 8080, 123456789, 0, SYN, b"")
    frame = hp.tcp_frame(hp.MONITOR_MAC, VM_MAC, seg)
    assert frame[12:14] == b"\x08\x00" and frame[14 + 9] == 6
    assert checksum(frame[14:34]) == 0  # IP header sums to zero with its checksum
    tcp = frame[34:]
    pseudo = frame[26:30] + frame[30:34] + struct.pack("!BBH", 0, 6, len(tcp))
    assert checksum(pseudo + tcp) == 0
    assert tcp[20:24] == struct.pack("!BBH", 2, 4, hp.MSS)  # MSS option on the SYN
    assert hp.parse(frame) == seg
    data = Segment("10.10.1.2", hp.MONITOR_IP, 8080, 61001, 1, 2, ACK | PSH, b"hello")
    assert hp.parse(hp.tcp_frame(VM_MAC, hp.MONITOR_MAC, data)) == data


def test_parse_ignores_what_is_not_a_whole_tcp_segment() -> None:
    good = hp.tcp_frame(VM_MAC, hp.MONITOR_MAC, Segment("10.0.0.1", hp.MONITOR_IP, 1, 2, 0, 0, ACK, b""))
    assert hp.parse(good[:40]) is None  # cut inside the TCP header
    udp = bytearray(good)
    udp[14 + 9] = 17
    assert hp.parse(bytes(udp)) is None
    frag = bytearray(good)
    frag[14 + 6] = 0x20  # more fragments
    assert hp.parse(bytes(frag)) is None
    arp = bytearray(good)
    arp[12:14] = b"\x08\x06"
    assert hp.parse(bytes(arp)) is None


@pytest.mark.parametrize(("head", "status"), [
    (b"HTTP/1.1 200 OK\r\n", 200), (b"HTTP/1.0 302 Found\r\nLocation: /\r\n", 302), (b"HTTP/1.1 503 x\n", 503),
    (b"HTTP/1.1 20", None), (b"SSH-2.0-OpenSSH\r\n", -1), (b"HTTP/1.1 2000 OK\r\n", -1), (b"x" * 2000, -1)])
def test_http_status_line(head: bytes, status: int | None) -> None:
    assert hp.http_status(head) == status


def test_http_request_names_path_and_host() -> None:
    req = hp.http_request("/healthz", "10.0.0.5:8080")
    assert req.startswith(b"GET /healthz HTTP/1.1\r\nHost: 10.0.0.5:8080\r\n") and req.endswith(b"\r\n\r\n")


# ------------------------------------------------------------------------------------------ verdicts
def test_health_needs_fall_failures_and_rise_successes_in_a_row() -> None:
    h = Health(rise=3, fall=2)
    assert [h.record(False), h.up] == [False, True]
    assert h.record(True) is False and h.count == 0  # an agreeing result clears the doubt
    assert h.record(False) is False and h.record(False) is True and not h.up
    assert [h.record(True), h.record(True), h.record(False), h.record(True), h.record(True)] == [False] * 5
    assert h.record(True) is True and h.up


def test_tcp_check_keeps_a_listening_backend_up_and_closes_each_probe() -> None:
    b = Backend("listen")
    hz = Harness(b)
    hz.checker.set_targets({target().key: target()}, 0.0)
    hz.run(5.0)
    assert hz.verdicts == [] and hz.checker.is_up(target().key)
    syns = [s for s in b.got if s.flags & SYN]
    rsts = [s for s in b.got if s.flags & RST]
    assert 4 <= len(syns) <= 6 and len(rsts) == len(syns)  # one probe per interval, each reset after SYN-ACK
    assert all(r.seq == s.seq + 1 for s, r in zip(syns, rsts, strict=True))
    assert len({s.src_port for s in syns}) == len(syns)
    assert all(hp.PORT_BASE <= s.src_port < hp.PORT_BASE + hp.PORT_COUNT for s in syns)


@pytest.mark.parametrize("mode", ["closed", "silent"])
@pytest.mark.parametrize("fall", [1, 2, 3, 5])
@pytest.mark.parametrize("phase", [0.0, 0.13, 0.5, 0.77, 0.99])
def test_failed_backend_is_down_within_two_intervals(mode: str, fall: int, phase: float) -> None:
    """The budget: from the moment the service dies (any phase of the probe cycle) to the verdict."""
    interval = 1.0
    b = Backend("listen")
    hz = Harness(b)
    t = target(interval=interval, fall=fall)
    hz.checker.set_targets({t.key: t}, 0.0)
    died = 3.0 + phase
    hz.run(died, step=0.005)
    assert hz.verdicts == [] and any(s.flags & SYN for s in b.got)
    b.mode = mode
    while not hz.verdicts and hz.now < died + 3 * interval:
        hz.run(hz.now + 0.005, step=0.005)
    assert [up for _, up in hz.verdicts] == [False]
    assert hz.now - died <= 2 * interval, f"down after {hz.now - died:.3f}s (fall={fall}, {mode})"


def test_backend_returns_after_rise_successes() -> None:
    b = Backend("closed")
    hz = Harness(b)
    t = target(rise=3, fall=2)
    hz.checker.set_targets({t.key: t}, 0.0)
    hz.run(3.0)
    assert [up for _, up in hz.verdicts] == [False]
    b.mode = "listen"
    came = hz.now
    while len(hz.verdicts) < 2:
        hz.run(hz.now + 0.01)
    assert hz.verdicts[1][1] is True and hz.now - came <= 2 * t.interval
    assert hz.checker.status()["down"] == 0 and hz.checker.status()["verdict_changes"] == 2


@pytest.mark.parametrize(("answer", "up"), [
    (b"HTTP/1.1 200 OK\r\n\r\n", True), (b"HTTP/1.0 301 Moved\r\n\r\n", True),
    (b"HTTP/1.1 500 Internal Server Error\r\n\r\n", False), (b"HTTP/1.1 404 Not Found\r\n\r\n", False),
    (b"garbage\r\n", False), (b"", False)])
def test_http_check_wants_2xx_or_3xx(answer: bytes, up: bool) -> None:
    b = Backend("listen", http=answer)
    hz = Harness(b)
    t = target(check="http:/healthz", fall=1)
    hz.checker.set_targets({t.key: t}, 0.0)
    hz.run(2.5)
    assert hz.checker.is_up(t.key) is up
    reqs = [s for s in b.got if s.payload]
    assert reqs and reqs[0].payload.startswith(b"GET /healthz HTTP/1.1\r\n") and reqs[0].flags == ACK | PSH
    assert reqs[0].ack == b.isn + 1
    assert any(s.flags & RST for s in b.got)  # every conversation is closed


def test_adopted_verdict_starts_down_and_removed_down_target_is_reported() -> None:
    b = Backend("closed")
    hz = Harness(b)
    t = target()
    hz.checker.set_targets({t.key: t}, 0.0, down={t.key})
    assert not hz.checker.is_up(t.key)
    hz.run(3.0)
    assert hz.verdicts == []  # still down: no change to report
    assert hz.checker.set_targets({}, hz.now) == [t]
    assert hz.checker.status()["targets"] == 0


def test_replies_from_someone_else_are_ignored() -> None:
    b = Backend("listen")
    hz = Harness(b)
    t = target()
    hz.checker.set_targets({t.key: t}, 0.0)
    hz.checker.tick(0.99)
    syn = b.got[0]
    forged = Segment("10.10.1.99", hp.MONITOR_IP, 80, syn.src_port, 1, syn.seq + 1, RST | ACK, b"")
    hz.checker.on_frame(hp.tcp_frame("f2:00:00:00:00:99", hp.MONITOR_MAC, forged), 1.0)
    wrong_ack = Segment(t.ip, hp.MONITOR_IP, 80, syn.src_port, 1, syn.seq + 5, SYN | ACK, b"")
    hz.checker.on_frame(hp.tcp_frame(VM_MAC, hp.MONITOR_MAC, wrong_ack), 1.0)
    assert hz.checker.stats.ignored == 1 and len(hz.checker.probes) == 1  # the wrong ack is not an answer
    hz.run(1.5)
    assert hz.checker.stats.ok == 1 and hz.checker.stats.failed == 0


def test_verdict_key_is_the_contract_key() -> None:
    key = health_key(target().key)
    assert key == "communicate/lb_health/LS/LS-A/web/10.10.1.2:80"
    hk = parse_health_key(key)
    assert (hk.dp_kind, hk.dp, hk.lb, hk.backend.ip, hk.backend.port) == ("LS", "LS-A", "web", "10.10.1.2", 80)


# ------------------------------------------------------------------------------------------ view side
def _lb(kind: str, dp: str, backends: str, check: str = "tcp", name: str = "web") -> object:
    return decode_lb("ls_lb" if kind == "LS" else "lr_lb", (dp, name),
                     {"vip": "10.10.9.9", "port": "80", "backends": backends, "check": check, "interval": "2",
                      "rise": "3", "fall": "4"})


def test_targets_are_the_backends_bound_here() -> None:
    f = tutorial_facts("hv1")
    f[("ls_lb", "LS-A", "web")] = _lb("LS", "LS-A", "10.10.1.2:80;10.10.1.3:80;10.10.1.77:80")
    f[("lr_lb", "LR-central", "web")] = _lb("LR", "LR-central", "10.10.1.2:8080;10.10.2.2:8080", "http:/h")
    v = build_view(f)
    got = compute_targets(v)
    assert sorted(got) == [("LR", "LR-central", "web", "10.10.1.2", 8080), ("LR", "LR-central", "web", "10.10.2.2", 8080),
                           ("LS", "LS-A", "web", "10.10.1.2", 80)]  # vm2 lives on hv2, .77 nowhere
    t = got[("LR", "LR-central", "web", "10.10.2.2", 8080)]
    assert (t.ofport, t.mac, t.check, t.interval, t.rise, t.fall) == (2, "f2:01:0a:0a:02:02", "http:/h", 2.0, 3, 4)
    assert compute_targets(build_view(tutorial_facts("hv2"))) == {}


def test_tracker_recomputes_only_the_load_balancers_a_batch_touched() -> None:
    f = tutorial_facts("hv1")
    v = build_view(f)
    tr = TargetTracker()
    assert tr.update(v, None) == {}
    assert tr.update(v, {("chassis", "hv2")}) is None  # no load balancers: nothing to do
    changed: set = set()
    v.apply(("ls_lb", "LS-A", "web"), _lb("LS", "LS-A", "10.10.1.2:80;10.10.1.9:80"), changed)
    v.apply(("ls_lb", "LS-B", "db"), _lb("LS", "LS-B", "10.10.2.2:5432", name="db"), changed)
    got = tr.update(v, changed) or {}
    assert sorted(got) == [("LS", "LS-A", "web", "10.10.1.2", 80), ("LS", "LS-B", "db", "10.10.2.2", 5432)]
    assert tr.update(v, {("tun", "hv2"), ("lsp", "LS-A", "vm2")}) is None  # nothing they read
    n = tr.recomputed
    changed = set()
    v.apply(("bind", "vm1"), None, changed)  # vm1's interface went away: only "web" is recomputed
    assert sorted(tr.update(v, changed) or {}) == [("LS", "LS-B", "db", "10.10.2.2", 5432)]
    assert tr.recomputed == n + 1
    changed = set()  # a port with the second backend's IP appears, bound here: "web" checks it
    v.apply(("lsp", "LS-A", "vm9"), LSP("LS-A", "vm9", "10.10.1.9", "f2:01:0a:0a:01:09", None, "hv1"), changed)
    v.apply(("bind", "vm9"), 7, changed)
    assert ("LS", "LS-A", "web", "10.10.1.9", 80) in (tr.update(v, changed) or {})
    changed = set()
    v.apply(("ls_lb", "LS-A", "web"), None, changed)
    v.apply(("ls_lb", "LS-B", "db"), None, changed)
    assert tr.update(v, changed) == {} and not tr.per_lb and not tr.deps and not tr.rdeps


def test_monitor_flows_in_the_switches_of_checked_load_balancers() -> None:
    f = tutorial_facts("hv1")
    v = build_view(f)
    r = Reader(v)
    ls_out = health_flows(r, ("ls_lb", "LS-A", "web"), _lb("LS", "LS-A", "10.10.1.2:80;10.10.1.77:80"))
    lr_out = health_flows(r, ("lr_lb", "LR-central", "web"), _lb("LR", "LR-central", "10.10.1.2:80;10.10.2.2:81"))
    assert health_flows(r, ("ls_lb", "LS-A", "web"), _lb("LS", "LS-A", "10.10.1.2:80", "none")) == []

    def catches(out: list) -> list[str]:
        return sorted(fl.body_text() for fl in out if getattr(fl, "table", None) == LS_IN_HC)

    # One catch flow per backend that is a port of the switch (10.10.1.77 is nobody's): only its replies.
    (text,) = catches(ls_out)
    for part in ("metadata=0x1", "in_port=1", "nw_src=10.10.1.2", f"nw_dst={hp.MONITOR_IP}", "nw_proto=0x6",
                 "tcp_src=0x50", f"meter:{hc_meter(1)}", "controller(userdata=00.00.00.11)"):
        assert part in text
    # A router's load balancer: each backend caught in its own switch, the ARP answer in both switches.
    lr = catches(lr_out)
    assert len(lr) == 2 and "metadata=0x1" in lr[0] + lr[1] and "metadata=0x2" in lr[0] + lr[1]
    assert any("nw_src=10.10.2.2" in t and "metadata=0x2" in t and "tcp_src=0x51" in t for t in lr)
    arps = [fl for fl in lr_out if getattr(fl, "table", None) == 96]
    assert len(arps) == 2 and all(hp.MONITOR_IP in fl.body_text() for fl in arps)
    meters = [o for o in lr_out if isinstance(o, MeterSpec)]
    assert sorted(m.meter_id for m in meters) == sorted({hc_meter(1), hc_meter(2)})  # vm1's and vm3's ports


# ------------------------------------------------------------------------------------------ fuzz
@pytest.mark.fuzz
@fuzz
@given(st.binary(max_size=200))
def test_fuzz_parse_and_checker_take_any_frame(data: bytes) -> None:
    hp.parse(data)
    hp.http_status(data)
    b = Backend("silent")
    hz = Harness(b)
    t = target(check="http:/")
    hz.checker.set_targets({t.key: t}, 0.0)
    hz.checker.tick(1.0)
    hz.checker.on_frame(data, 1.0)
    # a reply-shaped frame around the fuzz payload reaches the probe's state machine too
    if b.got:
        syn = b.got[0]
        seg = Segment(t.ip, hp.MONITOR_IP, t.port, syn.src_port, int.from_bytes(data[:4].ljust(4, b"\0"), "big"),
                      syn.seq + 1, data[4] if len(data) > 4 else SYN | ACK, data[5:])
        hz.checker.on_frame(hp.tcp_frame(VM_MAC, hp.MONITOR_MAC, seg), 1.0)
        hz.checker.on_frame(hp.tcp_frame(VM_MAC, hp.MONITOR_MAC, seg._replace(seq=seg.seq + 1)), 1.0)
    hz.run(2.0, step=0.5)  # the probe concludes (answer, reset or timeout); the next one starts
    assert len(hz.checker.probes) <= 1 and hz.checker.stats.probes >= 1


def test_thousands_of_targets_each_probed_once_per_interval() -> None:
    """The schedule is per target (heaps): 3,000 backends, 5 s, 1 s interval -> ~5 probes each, all up."""
    b = Backend("listen")
    hz = Harness(b)
    targets = {t.key: t for t in (target(ip=f"10.1.{i // 250}.{i % 250 + 1}") for i in range(3000))}
    hz.checker.set_targets(targets, 0.0)
    hz.run(5.0, step=0.05)
    per = {}
    for s in b.got:
        if s.flags & SYN:
            per[s.dst_ip] = per.get(s.dst_ip, 0) + 1
    assert len(per) == 3000 and 4 <= min(per.values()) and max(per.values()) <= 6
    assert hz.verdicts == [] and hz.checker.status()["up"] == 3000 and not hz.checker.probes


def test_probes_that_cannot_be_sent_decide_nothing() -> None:
    """With the switch connection down no probe leaves: no verdict may change (a reconnect of the agent's
    OpenFlow session must not take every local backend out of service)."""
    verdicts: list = []

    def broken(_t: Target, _frame: bytes) -> None:
        raise ConnectionError("not connected to br-int.mgmt")

    ch = Checker(broken, lambda t, up: verdicts.append(up), random.Random(3))
    t = target()
    ch.set_targets({t.key: t}, 0.0)
    now = 0.0
    while now < 10:
        ch.tick(now)
        now += 0.05
    assert verdicts == [] and ch.is_up(t.key) and ch.stats.unsent >= 9 and ch.stats.probes == 0


def test_status_becomes_metrics() -> None:
    from tuplenet.agent.metrics import StatusCollector

    b = Backend("closed")
    hz = Harness(b)
    t = target()
    hz.checker.set_targets({t.key: t, target(port=81).key: target(port=81)}, 0.0)
    hz.run(3.0)
    st = {"lb_health": {**hz.checker.status(), "writer": {"errors": 2}}}
    fams = {f.name: f for f in StatusCollector(lambda: st).collect()}
    assert {s.labels["state"]: s.value for s in fams["tuplenet_lb_health_backends"].samples} == {"up": 0, "down": 2}
    probes = {s.labels["result"]: s.value for s in fams["tuplenet_lb_health_probes"].samples}
    assert probes["reset"] >= 4
    assert fams["tuplenet_lb_health_verdict_changes"].samples[0].value == 2
    assert fams["tuplenet_lb_health_write_errors"].samples[0].value == 2
    empty = {f.name: f for f in StatusCollector(lambda: {}).collect()}  # an agent before its first status
    assert empty["tuplenet_lb_health_verdict_changes"].samples[0].value == 0


def test_trace_follows_a_probe_reply_to_the_agent() -> None:
    """The offline trace interpreter walks the monitor flows: a backend's answer (through its gateway MAC)
    goes to the agent; the same guest's other TCP to the monitor address does not."""
    from tuplenet.agent import tables as T
    from tuplenet.trace import packet as TP
    from tuplenet.trace.fabric import Fabric, Model

    facts = tutorial_facts("hv1")
    facts[("ls_lb", "LS-A", "web")] = _lb("LS", "LS-A", "10.10.1.2:80")
    fab = Fabric(Model(facts))
    reply = TP.l4("tcp", VM_MAC, "f2:01:0a:0a:01:01", "10.10.1.2", hp.MONITOR_IP, sport=80, dport=61001)
    (out,) = fab.trace("LS-A", "vm1", reply).outcomes
    assert (out["result"], out["chassis"], out["opcode"]) == ("controller", "hv1", T.OP_LB_HEALTH)
    other = TP.l4("tcp", VM_MAC, "f2:01:0a:0a:01:01", "10.10.1.2", hp.MONITOR_IP, sport=8080, dport=61001)
    assert all(o["result"] != "controller" for o in fab.trace("LS-A", "vm1", other).outcomes)


def test_http_probe_reads_a_status_line_split_over_segments_in_order_only() -> None:
    from tuplenet.agent.healthcheck import Probe

    t = target(check="http:/x")
    p = Probe(t, 61500, 1000, 0.0, 1.0, hp.http_request("/x", "10.10.1.2:80"))

    def seg(flags: int, seq: int, payload: bytes = b"", ack: int = 1001) -> Segment:
        return Segment(t.ip, hp.MONITOR_IP, t.port, 61500, seq, ack, flags, payload)

    assert p.on_segment(seg(ACK, 5, b"HTTP/1.1 200")) == (None, [])  # data before the handshake: ignored
    verdict, out = p.on_segment(seg(SYN | ACK, 9000))
    assert verdict is None and out[0].flags == ACK | PSH and out[0].seq == 1001 and out[0].ack == 9001
    assert p.on_segment(seg(ACK, 9005, b"xx 200 OK\r\n")) == (None, [])  # out of order: not taken
    assert p.on_segment(seg(ACK, 9001, b"HTTP/1.1 2"))[0] is None
    verdict, out = p.on_segment(seg(ACK | PSH, 9011, b"04 No Content\r\n\r\n"))
    assert verdict is True and out[0].flags == RST and out[0].seq == 1001 + len(p.request)


def test_more_silent_backends_than_probe_ports_skip_rounds_without_verdicts() -> None:
    """All 4,000 probe ports in flight (silent backends, long timeouts): further probes are skipped, counted,
    and decide nothing; the service never fails."""
    b = Backend("silent")
    hz = Harness(b)
    targets = {t.key: t for t in (target(ip=f"10.2.{i // 250}.{i % 250 + 1}", interval=6.0, fall=1)
                                  for i in range(hp.PORT_COUNT + 50))}
    hz.checker.set_targets(targets, 0.0)
    hz.run(1.2, step=0.1)
    assert len(hz.checker.probes) == hp.PORT_COUNT and hz.checker.stats.unsent == 50 and hz.verdicts == []
