"""Live trace without hosts: the etcd records (trace/livewire.py) round-trip and reject anything else in one
line; hop reports from the agents' walk assemble into the offline trace's document in the order the packet
took (trace/live.py); --detect's pairs and verdicts (trace/livedetect.py); the live CLI options. Fuzzed:
whatever sits under communicate/ decodes or fails with WireError, and whatever decodes renders."""

from __future__ import annotations

import base64
import json
import random
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from topo_helpers import build_view, tutorial_facts

from fuzz_settings import fuzz
from tuplenet.agent.engine import Engine
from tuplenet.agent.livetrace import Snapshot, hop_detail, mark, unmarked_option
from tuplenet.cli import tpctl
from tuplenet.cli.trace import live_options, request_of
from tuplenet.trace import live as L
from tuplenet.trace import livedetect as D
from tuplenet.trace import livewire as W
from tuplenet.trace.compiled import owner_index
from tuplenet.trace.fabric import Model, ports_of
from tuplenet.trace.names import Names
from tuplenet.trace.packet import TraceError, decode_frame
from tuplenet.trace.report import to_text
from tuplenet.trace.request import Request, build, checked

FACTS = tutorial_facts()
MODEL = Model(FACTS)
PARSER = tpctl.build_parser(only_trace=True)


def snapshot() -> Snapshot:
    e = Engine(build_view(FACTS))
    e.full()
    return Snapshot(list(e.active.values()), owner_index(e.owner_flows), [], Names(e.view.facts),
                    ports_of(e.view, "hv1"))


SNAP = snapshot()


def source_detail(dst_ip: str) -> tuple[dict, bytes]:
    _ls, _port, pkt = build(MODEL.facts, checked(Request("LS-A/vm1", dst_ip=dst_ip)))
    frame = L.frame_of(pkt)
    return hop_detail("hv1", SNAP, SNAP.flows, decode_frame(frame), 1, None, "LS-A/vm1"), frame


# ------------------------------------------------------------------------------------------- records
def test_command_and_result_round_trip() -> None:
    frame = bytes(range(60))
    cmd = W.Command(513, "LS-A", "vm1", frame)
    key, value = W.command_key("hv1", 513), W.encode_command(cmd)
    assert key == "communicate/push/hv1/cmd/513"
    assert value == f"cmd=pkt_trace,packet={frame.hex()},port=vm1,switch=LS-A"  # 0.3's fields first
    assert W.decode_command(key, value) == cmd
    detail, _ = source_detail("10.10.1.3")
    r = W.Result(513, 0, "hv1", 0, 1, 0x102, 0x103, 0, "<UNK_PORT>", detail)
    got = W.decode_result(W.result_key(513, 0, "hv1"), W.encode_result(r))
    assert got == W.Result(513, 0, "hv1", 0, 1, 0x102, 0x103, 0, "<UNK_PORT>", json.loads(json.dumps(detail)))
    assert W.encode_result(r).startswith("cmd_type=pkt_trace,table_id=0,datapath_id=1,src_port_id=258,")
    # 0.3's own result record (no hop) decodes too
    old = "cmd_type=pkt_trace,table_id=20,datapath_id=1,src_port_id=2,dst_port_id=3,tun_src=3232261122," \
          "output_iface_id=<UNK_PORT>"
    assert W.decode_result("communicate/cmd_result/7/3/hv2", old).tun_src == 3232261122


@pytest.mark.parametrize("key,value,match", [
    ("communicate/push/hv1/cmd/x", "cmd=pkt_trace,packet=00,port=a", "command id"),
    ("communicate/push/hv1/cmd/70000", "cmd=pkt_trace,packet=00,port=a", "over 65535"),
    ("communicate/push/hv1/x/1", "cmd=pkt_trace", "not a command key"),
    ("communicate/push/hv1/cmd/1", "cmd=rm,packet=00,port=a", "unknown command"),
    ("communicate/push/hv1/cmd/1", "cmd=pkt_trace,packet=0g" + "00" * 20 + ",port=a", "not hexadecimal"),
    ("communicate/push/hv1/cmd/1", "cmd=pkt_trace,packet=00,port=a", "bytes in hex"),
    ("communicate/push/hv1/cmd/1", "cmd=pkt_trace,packet=" + "00" * 20 + ",port=a/b", "port"),
    ("communicate/push/hv1/cmd/1", "cmd=pkt_trace,packet=" + "00" * 20 + ",port=", "port"),
])
def test_bad_commands_fail_in_one_line(key: str, value: str, match: str) -> None:
    with pytest.raises(W.WireError, match=match):
        W.decode_command(key, value)


def test_hop_detail_is_checked_and_bounded() -> None:
    def rec(doc: object) -> str:
        blob = base64.urlsafe_b64encode(zlib.compress(json.dumps(doc).encode())).decode().rstrip("=")
        return "cmd_type=pkt_trace,table_id=0,hop=" + blob

    key = "communicate/cmd_result/1/0/hv1"
    detail, _ = source_detail("10.10.1.3")
    assert W.decode_result(key, rec({"error": "no such port"})).hop == {"error": "no such port"}
    for bad, match in ((["x"], "not an object"), ({**detail, "sends": [1]}, "sends"),
                       ({**detail, "outcomes": [{"result": "delivered"}]}, "without chassis, switch, port"),
                       ({**detail, "hop": {**detail["hop"], "steps": [{"table": "x"}]}}, "step")):
        with pytest.raises(W.WireError, match=match):
            W.decode_result(key, rec(bad))
    bomb = base64.urlsafe_b64encode(zlib.compress(b" " * (W.MAX_HOP_JSON + 10))).decode()
    with pytest.raises(W.WireError, match="too large"):
        W.decode_result(key, "cmd_type=pkt_trace,hop=" + bomb)


def test_mark_and_unmarked_option() -> None:
    assert mark(0x1234) == 0x12340002
    opt = (0x12340002 | 0x1) << 32 | 0x01030102  # LOOPBACK survives, the mark goes
    assert unmarked_option(opt) == (0x1 << 32) | 0x01030102


# ------------------------------------------------------------------------------------------- assembly
def arrival(chassis: str, seq: int, came_from: str, sends: list[str], outcomes: list[dict]) -> W.Result:
    hop = {"chassis": chassis, "from_chassis": came_from, "in_port": 5, "in_port_name": f"tunnel port of {came_from}",
           "steps": []}
    return W.Result(9, seq, chassis, 100, hop={"hop": hop, "outcomes": outcomes, "sends": sends})


def test_reports_assemble_in_the_order_the_packet_took() -> None:
    detail, _ = source_detail("10.10.1.3")
    src = W.Result(9, 0, "hv1", 0, hop={**detail, "sends": ["hv2"], "outcomes": []})
    p = L.Pending(9, "LS-A/vm1", "hv1")
    done = {"result": "delivered", "chassis": "hv2", "switch": "LS-A", "port": "vm2"}
    # hv1 -> hv2 -> hv1 -> hv2, reports arriving in any order
    p.results = [arrival("hv2", 1, "hv1", [], [done]), arrival("hv1", 1, "hv2", ["hv2"], []),
                 arrival("hv2", 0, "hv1", ["hv1"], []), src]
    assert L.complete(p)
    doc = L.document(p, 3.0)
    assert [(h["chassis"], h["from_chassis"]) for h in doc["hops"]] == \
        [("hv1", None), ("hv2", "hv1"), ("hv1", "hv2"), ("hv2", "hv1")]
    assert doc["result"] == "delivered" and doc["summary"].startswith("icmp 10.10.1.2 > 10.10.1.3")
    assert "hv2: in tunnel port of hv1 (Geneve from hv1)\n" in to_text(doc)

    p.results = [src]  # hv2 never reported
    assert not L.complete(p)
    doc = L.document(p, 0.5)
    assert doc["outcomes"] == [{"result": "drop", "chassis": "hv2", "reason": "tunnelled from hv1, but hv2 "
                                "reported nothing within 0.5 s (its agent is down, or the underlay lost the packet)"}]
    # ... because hv1's switch dropped it (the walk assumed a live tunnel): complete at once, the switch's word
    drop = {"datapath": "LS-A", "datapath_type": "switch", "from_port": "vm1", "to_port": "vm2"}
    p.results = [src, W.Result(9, 1, "hv1", 101, hop={"switch_drop": drop})]
    assert L.complete(p)
    doc = L.document(p, 3)
    assert doc["result"] == "dropped" and doc["live"]["switch_drops"] == [{"chassis": "hv1", **drop}]
    assert doc["outcomes"][0]["reason"].startswith("the switch dropped it in the drop stage (switch LS-A, vm1>vm2) "
                                                   "where the walk of its flows said: sent on")
    p.results = []
    with pytest.raises(TraceError, match="no report from chassis hv1 within 3 s"):
        L.document(p, 3)
    p.results = [W.Result(9, 0, "hv1", 0, hop={"error": "LS-A/vm1 has no interface on chassis hv1"})]
    assert L.complete(p)
    with pytest.raises(TraceError, match="^hv1: LS-A/vm1 has no interface"):
        L.document(p, 3)


@pytest.mark.parametrize("dst,proto", [("10.10.1.3", "icmp"), ("10.10.2.2", "tcp"), ("10.10.2.2", "udp"),
                                       ("10.10.1.1", "arp")])
def test_frames_built_for_injection_decode_to_the_requested_packet(dst: str, proto: str) -> None:
    _ls, _port, pkt = build(MODEL.facts, checked(Request("LS-A/vm1", dst_ip=dst, proto=proto, ttl=9)))
    assert decode_frame(L.frame_of(pkt)) == pkt


# ------------------------------------------------------------------------------------------- --detect
def test_detect_pairs_within_connected_switches() -> None:
    facts = {**MODEL.facts, ("LS", "LS-X"): tutorial_facts()[("LS", "LS-A")].__class__("LS-X", 9),
             ("lsp", "LS-X", "lone"): FACTS[("lsp", "LS-A", "vm1")].__class__("LS-X", "lone", "10.9.0.2",
                                                                               "f2:01:0a:09:00:02", None, "hv1")}
    pairs = D.pairs(facts, None, 100, random.Random(1))
    names = {(a[1].name, b[1].name) for a, b in pairs}
    assert len(pairs) == 6 and ("vm1", "vm3") in names  # vm1, vm2, vm3 both ways; LS-X reaches nobody
    assert not any("lone" in n for pair in names for n in pair)
    assert len(D.pairs(facts, ["LS-A"], 100, random.Random(1))) == 2
    with pytest.raises(TraceError, match="switch LS-Q does not exist"):
        D.pairs(facts, ["LS-Q"], 3, random.Random(1))
    big = dict(facts)
    for i in range(300):  # 300 ports in LS-A: 89,700 candidate pairs, drawn instead of listed
        ip = f"10.10.{100 + i // 200}.{i % 200 + 2}"
        big[("lsp", "LS-A", f"p{i}")] = FACTS[("lsp", "LS-A", "vm1")].__class__("LS-A", f"p{i}", ip, "f2:01:00:00:00:01",
                                                                             None, "hv2")
    drawn = D.pairs(big, None, 100, random.Random(2))
    assert len(drawn) == 100 and len({(a[1].name, b[1].name) for a, b in drawn}) == 100
    assert all(a[1].name != b[1].name and "LS-X" not in (a[0], b[0]) for a, b in drawn)
    req = D.request(pairs[0][0], pairs[0][1])
    assert req.icmp_type == 0  # an echo reply: routers forward it instead of answering
    dst = ("LS-A", FACTS[("lsp", "LS-A", "vm2")])
    ok = {"outcomes": [{"result": "delivered", "chassis": "hv2", "switch": "LS-A", "port": "vm2"}]}
    assert D.wrong(ok, dst) is None
    assert D.wrong({"outcomes": [{"result": "drop", "chassis": "hv1", "reason": "x"}]}, dst) == "dropped on hv1: x"


# ------------------------------------------------------------------------------------------- fuzz
def one_line(message: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message, repr(message)


def _valid() -> tuple[str, str]:
    detail, _ = source_detail("10.10.2.2")
    return W.result_key(3, 0, "hv1"), W.encode_result(W.Result(3, 0, "hv1", 0, hop=detail))


VALID_KEY, VALID_VALUE = _valid()
DETAIL_JSON = json.dumps(source_detail("10.10.1.3")[0])
keys = st.one_of(st.sampled_from([VALID_KEY, "communicate/cmd_result/1/2/hv3", "communicate/cmd_result/1/2",
                                  "communicate/cmd_result/99999/1/a", "communicate/cmd_result/1/x/hv1"]),
                 st.text(max_size=40).map(lambda t: "communicate/cmd_result/" + t))


@pytest.mark.fuzz
@fuzz
@given(keys, st.one_of(st.text(max_size=200), st.just(VALID_VALUE)), st.integers(0, 4000), st.binary(max_size=4))
def test_result_records_decode_and_render_or_fail_in_one_line(key: str, value: str, at: int, junk: bytes) -> None:
    if value == VALID_VALUE and junk:  # a valid record with a few bytes changed somewhere
        at %= len(value)
        value = value[:at] + junk.decode("latin-1") + value[at + len(junk):]
    try:
        r = W.decode_result(key, value)
    except W.WireError as exc:
        one_line(str(exc))
        return
    if r.hop is not None and "hop" in r.hop:  # whatever decodes renders as a report
        p = L.Pending(r.cmd_id, "LS-A/vm1", r.chassis, results=[r])
        if r.hop.get("source") is not None:
            to_text(L.document(p, 1.0))


# Junk for any field of a hop record: wrong types, empty and half-filled objects (sampled: cheap to draw).
JUNK = [None, True, 0, -1, 2**70, 1.5, "", "x", "\n", [], {}, [None], ["hv2"], [1], {"kind": 1},
        {"kind": "note", "text": "t"}, [{"kind": "note", "text": "t"}], [{"kind": "x"}],
        [{"result": "delivered"}], [{"result": "drop", "chassis": "h", "reason": "r"}],
        [{"result": "delivered", "chassis": "h", "switch": "s", "port": "p"}], [{"result": "lost", "chassis": "h"}],
        [{"table": 1}], {"chassis": "h", "in_port": 1, "in_port_name": "n", "steps": [], "from_chassis": None}]
hops = st.one_of(st.sampled_from(JUNK), st.integers(), st.text(max_size=4))


@pytest.mark.fuzz
@fuzz
@given(hops, st.sampled_from(["hop", "steps", "outcomes", "sends", "events", "packet", "summary", "priority",
                               "from_chassis", "chassis", "in_port_name", "rule", "stage", "table"]), st.booleans())
def test_any_hop_json_is_checked_before_it_is_rendered(junk: object, where: str, drop: bool) -> None:
    doc = json.loads(DETAIL_JSON)
    target = doc if where in doc else doc["hop"] if where in doc["hop"] else doc["hop"]["steps"][0]
    if drop:
        target.pop(where, None)  # a record may lack any field
    else:
        target[where] = junk
    try:
        checked_doc = W.check_hop(doc)
    except W.WireError as exc:
        one_line(str(exc))
        return
    p = L.Pending(1, "LS-A/vm1", "hv1", results=[W.Result(1, 0, "hv1", 0, hop=checked_doc)])
    to_text(L.document(p, 1.0))


@pytest.mark.fuzz
@fuzz
@given(st.text(max_size=30), st.text(max_size=300))
def test_command_records_decode_or_fail_in_one_line(suffix: str, value: str) -> None:
    try:
        cmd = W.decode_command("communicate/push/" + suffix, value)
    except W.WireError as exc:
        one_line(str(exc))
        return
    assert W.decode_command(W.command_key("hv", cmd.cmd_id), W.encode_command(cmd)) == cmd


OPTIONS = ["--detect", "--pairs", "--rounds", "--wait", "--simulate", "-s", "--dst-ip", "--json", "--brief"]
VALUES = ["LS-A", "LS-A,LS-B", "LS-A,", ",", "a/b", "0", "1", "100", "101", "-1", "0.5", "60", "61", "nan", "inf",
          "1e9", "LS-A/vm1", "10.10.1.3", "", " ", "x" * 300]


@pytest.mark.fuzz
@fuzz
@given(st.lists(st.one_of(st.sampled_from(OPTIONS + VALUES), st.text(max_size=6)), max_size=6))
def test_live_arguments_are_checked_or_fail_in_one_line(args: list[str]) -> None:
    if any(a.startswith("-") and "--help".startswith(a) and len(a) > 1 for a in args):
        return
    try:
        opts = PARSER.parse_args(["trace", *args])
        switches = live_options(opts)
        if opts.detect is None:
            request_of(opts)
    except tpctl.UsageError as exc:
        assert str(exc).strip()
        return
    except TraceError as exc:
        one_line(str(exc))
        return
    assert 0 < opts.wait <= 60
    assert switches is None or all(s and "," not in s and "/" not in s for s in switches)
