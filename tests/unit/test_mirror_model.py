"""Mirror records: codec round trip, validation messages, control operations, tpctl, and a decoder fuzz."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.cli import commands, tpctl
from tuplenet.control import AlreadyExists, Controller, InvalidArgument, NotFound
from tuplenet.control.memstore import MemStore
from tuplenet.model import ModelError, decode, decode_kv, parse_key
from tuplenet.model.mirror import Mirror, Target

KEY = "entity_view/mirror/m1"


def test_key_and_round_trip() -> None:
    m = decode_kv(KEY, "port=ls1/vm1,direction=in,target=erspan:10.0.0.9:7,note=x")
    assert m == Mirror("m1", "ls1", "vm1", "in", Target("erspan", ip="10.0.0.9", key=7))
    assert parse_key(KEY) == ("mirror", ("m1",)) and m.key == KEY
    assert m.to_value() == "port=ls1/vm1,direction=in,target=erspan:10.0.0.9:7,note=x"  # unknown fields kept
    assert decode_kv(KEY, m.to_value()) == m


def test_defaults() -> None:
    m = decode_kv(KEY, "port=a/b,target=erspan:1.2.3.4")
    assert (m.direction, m.target.key) == ("both", 1)
    g = decode_kv(KEY, "port=a/b,target=geneve:1.2.3.4")
    assert g.target == Target("geneve", ip="1.2.3.4", key=0)
    loc = decode_kv(KEY, "port=a/b,direction=OUT,target=local:tap-mon")
    assert (loc.direction, loc.target) == ("out", Target("local", iface="tap-mon"))


@pytest.mark.parametrize(("value", "reason"), [
    ("target=local:x", "missing required field port"),
    ("port=a/b", "missing required field target"),
    ("port=ab,target=local:x", "bad port: port must be SWITCH/PORT"),
    ("port=a/b,direction=sideways,target=local:x", "bad direction"),
    ("port=a/b,target=erspan:1.2.3.4:1024", "ERSPAN session id 1024 out of range"),
    ("port=a/b,target=geneve:1.2.3.4:16777216", "VNI 16777216 out of range"),
    ("port=a/b,target=erspan:1.2.3", "bad target"),
    ("port=a/b,target=local:", "invalid OVS port name"),
    ("port=a/b,target=local:a b", "invalid OVS port name"),
    ("port=a/b,target=gre:1.2.3.4", "target must be"),
])
def test_bad_records(value: str, reason: str) -> None:
    with pytest.raises(ModelError, match=reason) as exc:
        decode_kv(KEY, value)
    assert str(exc.value).startswith(f"{KEY}: ")


# Values made of the record's own field names and characters reach the valid paths; raw text the rest.
_JUNK = st.text(st.sampled_from("ab/:.019 é\x00,="), max_size=10)
_PORT = st.sampled_from(["a/b", "ls1/vm1", "a//b", "ab", " a / b "]) | _JUNK
_DIR = st.sampled_from(["in", "OUT", "both", "up", ""]) | _JUNK
_TARGET = st.sampled_from(["local:mon", "erspan:10.0.0.9", "erspan:10.0.0.9:7", "geneve:1.2.3.4:5", "local:a b",
                           "erspan:1.2.3.4:1024", "geneve:1.2.3.4:16777216", "gre:1.2.3.4"]) | _JUNK
# Records made of the decoder's own fields reach its valid paths; raw text covers the rest.
_VALUE = st.builds(lambda p, d, t, x: f"port={p},direction={d},target={t}{x}", _PORT, _DIR, _TARGET, _JUNK) \
    | st.text(max_size=40)


@pytest.mark.fuzz
@fuzz
@given(st.sampled_from(["m1", "x", "é", " a b "]), _VALUE)
def test_fuzz_decoder_only_model_error(name: str, value: str) -> None:
    """Whatever etcd holds, decoding gives a Mirror that round-trips, or a one-line ModelError."""
    try:
        m = decode("mirror", (name,), value)
    except ModelError as exc:
        assert "\n" not in str(exc)
        return
    assert decode("mirror", (name,), m.to_value()) == m


# ---- control + tpctl ----

@pytest.fixture
def ctl() -> Controller:
    c = Controller(MemStore())
    c.add_switch("ls1")
    c.add_switch_port("ls1", "vm1", "10.0.0.2")
    return c


def test_control_add_show_delete(ctl: Controller) -> None:
    m = ctl.add_mirror("m1", "ls1/vm1", "local:mon0", "in")
    assert ctl.get_mirror("m1") == m and ctl.list_mirrors() == [m]
    assert ctl.store.get(KEY).value == "port=ls1/vm1,direction=in,target=local:mon0"
    with pytest.raises(AlreadyExists, match="mirror m1 exists"):
        ctl.add_mirror("m1", "ls1/vm1", "local:mon0")
    ctl.delete_mirror("m1")
    assert ctl.list_mirrors() == []
    with pytest.raises(NotFound, match="unable to get mirror m1"):
        ctl.delete_mirror("m1")


def test_control_refuses_bad_input_and_writes_nothing(ctl: Controller) -> None:
    with pytest.raises(NotFound, match="switch port nope of switch ls1 does not exist"):
        ctl.add_mirror("m1", "ls1/nope", "local:mon0")
    with pytest.raises(InvalidArgument, match="ERSPAN session id"):
        ctl.add_mirror("m1", "ls1/vm1", "erspan:10.1.1.1:5000")
    with pytest.raises(InvalidArgument, match="direction"):
        ctl.add_mirror("m1", "ls1/vm1", "local:mon0", "up")
    assert ctl.store.get(KEY) is None


def test_tpctl_mirror(ctl: Controller, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands.Ctx, "ctl", property(lambda self: ctl))
    monkeypatch.setattr(commands.Ctx, "close", lambda self: None)
    assert tpctl.main(["mirror", "add", "m1", "ls1/vm1", "geneve:192.168.9.9:42", "out"]) == 0
    assert capsys.readouterr().out == "mirror m1 created\n"
    assert tpctl.main(["-j", "mirror", "show"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == [{"name": "m1", "port": "ls1/vm1", "switch": "ls1", "lsp": "vm1", "direction": "out",
                      "target": "geneve:192.168.9.9:42"}]
    assert tpctl.main(["mirror", "show", "m1"]) == 0
    assert "target   : geneve:192.168.9.9:42" in capsys.readouterr().out
    assert tpctl.main(["mirror", "add", "m2", "ls1/vm1", "erspan:bad"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad" in err
    assert tpctl.main(["mirror", "del", "m1"]) == 0
    assert ctl.list_mirrors() == []


def test_export_import_carries_mirrors_and_refuses_bad_ones(ctl: Controller) -> None:
    from tuplenet.control import format_export, parse_export

    ctl.add_mirror("m1", "ls1/vm1", "erspan:10.1.1.1:9", "out")
    records, _ = ctl.export_records()
    assert (KEY, "port=ls1/vm1,direction=out,target=erspan:10.1.1.1:9") in records
    dst = Controller(MemStore())
    dst.import_records(parse_export(format_export(records, "test")))
    assert dst.list_mirrors() == ctl.list_mirrors()
    bad = Controller(MemStore())
    with pytest.raises(InvalidArgument, match="mirror/m9: bad target"):
        bad.import_records(parse_export("entity_view/mirror/m9\tport=a/b,target=erspan:1.2.3.4:5000\n"))
    assert bad.export_records()[0] == []
