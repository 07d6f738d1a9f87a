"""Load balancer records and health-verdict keys: decoding, round trips, errors, and fuzzed inputs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.model import ModelError, decode, decode_kv, parse_key
from tuplenet.model.lb import (
    Backend,
    HealthKey,
    HealthVerdict,
    LoadBalancer,
    decode_health_value,
    health_key,
    parse_backends,
    parse_check,
    parse_health_key,
)


def test_defaults_and_round_trip():
    lb = decode_kv("entity_view/LS/ls1/lb/web", "vip=10.0.0.100,port=80,backends=10.0.0.2:8080;10.0.0.3:8080")
    assert isinstance(lb, LoadBalancer)
    assert (lb.kind, lb.dp, lb.name, lb.protocol, lb.affinity, lb.check, lb.interval, lb.rise, lb.fall) == (
        "ls_lb", "ls1", "web", "tcp", 0, "none", 5, 2, 2)
    assert lb.backends == (Backend("10.0.0.2", 8080), Backend("10.0.0.3", 8080))
    assert lb.key == "entity_view/LS/ls1/lb/web"
    assert decode("ls_lb", ("ls1", "web"), lb.to_value()) == lb


def test_router_lb_and_extra_fields_kept():
    lb = decode_kv("entity_view/LR/r1/lb/dns", "vip=1.2.3.4,port=53,protocol=UDP,affinity=60,future=x")
    assert lb.kind == "lr_lb" and lb.parent_kind == "LR" and lb.protocol == "udp" and lb.affinity == 60
    assert lb.backends == ()
    assert "future=x" in lb.to_value()
    assert parse_key("entity_view/LR/r1/lb/dns") == ("lr_lb", ("r1", "dns"))
    assert parse_key("entity_view/LX/r1/lb/dns") is None


@pytest.mark.parametrize("value, reason", [
    ("port=80", "missing required field vip"),
    ("vip=10.0.0.1", "missing required field port"),
    ("vip=10.0.0.1,port=0", "bad port"),
    ("vip=10.0.0.1,port=65536", "bad port"),
    ("vip=10.0.0.1,port=80,protocol=sctp", "bad protocol"),
    ("vip=10.0.0.1,port=80,backends=10.0.0.2", "bad backends"),
    ("vip=10.0.0.1,port=80,backends=10.0.0.2:1;10.0.0.2:1", "listed twice"),
    ("vip=10.0.0.1,port=80,check=http:nopath", "bad check"),
    ("vip=10.0.0.1,port=80,check=icmp", "bad check"),
    ("vip=10.0.0.1,port=80,interval=0", "bad interval"),
    ("vip=10.0.0.1,port=80,rise=101", "bad rise"),
    ("vip=10.0.0.1,port=80,affinity=-1", "bad affinity"),
])
def test_bad_records(value, reason):
    with pytest.raises(ModelError, match=reason):
        decode("ls_lb", ("ls1", "x"), value)


def test_check_forms():
    assert parse_check("none") == "none" and parse_check("TCP") == "tcp"
    assert parse_check("http:/health?x=1") == "http:/health?x=1"
    for bad in ("http:/a b", "http:/a;b", "http:", "http", "ftp:/x"):
        with pytest.raises(ModelError):
            parse_check(bad)


def test_health_keys():
    hk = HealthKey("LS", "ls1", "web", Backend("10.0.0.2", 8080))
    assert hk.key() == "communicate/lb_health/LS/ls1/web/10.0.0.2:8080"
    assert health_key("LS", "ls1", "web", Backend("10.0.0.2", 8080)) == hk.key()
    assert parse_health_key(hk.key()) == hk
    assert decode_health_value("state=down,chassis=h1") == HealthVerdict("down", "h1")
    assert decode_health_value(HealthVerdict("down", "h2").to_value()) == HealthVerdict("down", "h2")
    for bad in ("communicate/lb_health/LS/ls1/web", "communicate/lb_health/XX/a/b/1.2.3.4:1",
                "communicate/lb_health/LS/a/b/1.2.3.4", "other/LS/a/b/1.2.3.4:5",
                "communicate/lb_health/LS/ a/b/1.2.3.4:5"):
        with pytest.raises(ModelError):
            parse_health_key(bad)
    for bad in ("state=up,chassis=h1", "state=down", ""):
        with pytest.raises(ModelError):
            decode_health_value(bad)


# ---- fuzz: whatever a record or key holds, the decoders answer with a value or a ModelError -------------

_text = st.text(alphabet=st.sampled_from("0123456789.:;,=/abchtpnoedwuHTLSR \t-x\x00é"), max_size=12)
_field = st.sampled_from(["vip", "port", "protocol", "backends", "affinity", "check", "interval", "rise",
                          "fall", "x"])
# Mostly near-valid values (so decoding gets past the first field), some noise.
_value = st.one_of(st.sampled_from(["10.0.0.1", "80", "0", "65535", "65536", "tcp", "UDP", "sctp", "1.2.3.4:5",
                                    "1.2.3.4:5;1.2.3.5:6", "1.2.3.4:5;1.2.3.4:5", "none", "tcp", "http:/h",
                                    "http:/a b", "5", "100", "101", "86400", ""]), _text)


@pytest.mark.fuzz
@fuzz
@given(st.lists(st.tuples(_field, _value), max_size=6), st.sampled_from(["ls_lb", "lr_lb"]))
def test_fuzz_lb_record(pairs, kind):
    value = ",".join(f"{k}={v}" for k, v in pairs)
    try:
        lb = decode(kind, ("dp", "lb"), value)
    except ModelError as exc:
        assert "\n" not in str(exc)
        return
    assert 1 <= lb.port <= 65535 and lb.protocol in ("tcp", "udp")
    assert len(set(lb.backends)) == len(lb.backends)
    assert decode(kind, ("dp", "lb"), lb.to_value()) == lb  # what we decode, we write back identically


@pytest.mark.fuzz
@fuzz
@given(_text, _text)
def test_fuzz_health(key_tail, value):
    try:
        hk = parse_health_key("communicate/lb_health/" + key_tail)
    except ModelError:
        pass
    else:
        assert parse_health_key(hk.key()) == hk
    try:
        v = decode_health_value(value)
    except ModelError:
        return
    assert decode_health_value(v.to_value()) == v


@pytest.mark.fuzz
@fuzz
@given(_text)
def test_fuzz_backends(text):
    try:
        bs = parse_backends(text)
    except ModelError:
        return
    assert parse_backends(";".join(b.text() for b in bs)) == bs


def test_health_keys_become_view_facts_and_garbage_is_ignored():
    """The agent's health sync (etcdsync.PrefixSync): a verdict key -> ("lbh", ...) fact, whatever its value;
    keys it cannot parse are skipped; a re-listing emits only the difference."""
    from types import SimpleNamespace

    from tuplenet.agent.etcdsync import _health_fact, health_sync

    assert _health_fact("LS/ls1/web/10.0.0.2:8080") == ("lbh", "LS", "ls1", "web", "10.0.0.2:8080")
    for bad in ("LS/ls1/web", "XX/a/b/1.2.3.4:1", "LS/a/b/1.2.3.4:0", "", "LS/a/b/c/d"):
        assert _health_fact(bad) is None

    class Store:
        keys = ["communicate/lb_health/LS/ls1/web/10.0.0.2:8080", "communicate/lb_health/garbage"]

        def get_prefix(self, prefix):
            return [SimpleNamespace(key=k, value="state=down,chassis=h1") for k in self.keys], 7

    s = Store()
    sync = health_sync(s, lambda *a: None)  # type: ignore[arg-type]
    assert sync.listing() == [(("lbh", "LS", "ls1", "web", "10.0.0.2:8080"), True, None)]
    s.keys = ["communicate/lb_health/LR/r/x/10.0.0.3:53"]
    assert sync.listing() == [(("lbh", "LS", "ls1", "web", "10.0.0.2:8080"), None, None),
                              (("lbh", "LR", "r", "x", "10.0.0.3:53"), True, None)]
